"""GPU-path risks found by reading (issue 19), checked on the CPU: the network under
autocast (bf16 on the CPU takes the same lower-precision paths fp16 takes on CUDA), the
rectifier's on-device output feeding the engine without a host round trip, and the
training loader / resume state."""
import copy

import numpy as np
import pytest
import torch

from autonomy_perception.network.model import PerceptionNet

torch.set_num_threads(2)

TINY = {
    "input_hw": [32, 64],
    "cameras": ["main", "left_pillar", "right_pillar", "rear"],
    "regnet": {"depth": 4, "w0": 8, "wa": 8.0, "wm": 2.0, "group_width": 8, "stem_width": 8},
    "fpn": {"channels": 16, "layers": 1, "levels": [1, 2]},
    "bev": {"x_range": [-16.0, 16.0], "y_range": [-16.0, 16.0], "resolution": 2.0,
            "channels": 16, "heads": 2},
    "video": {"enabled": True, "hidden": 16},
    "trunk": {"channels": 16, "blocks": 1},
}


@pytest.mark.parametrize("attention", ["columns", "pillars"])
def test_network_runs_under_lower_precision_autocast(attention):
    """Attention must not see lower-precision queries with fp32 keys/values (the null token
    concatenated in fp32 promoted k/v to fp32 while q stayed bf16/fp16)."""
    torch.manual_seed(0)
    cfg = copy.deepcopy(TINY)
    cfg["bev"]["attention"] = attention
    net = PerceptionNet(cfg).eval()
    x = torch.rand(1, 4, 3, 32, 64)
    kin, dt = torch.tensor([[5.0, 0.0, 0.1]]), torch.tensor([0.1])
    with torch.no_grad():
        ref, _ = net.forward_step(x, None, kin, dt, None)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low, _ = net.forward_step(x, None, kin, dt, None)
    for key in ("obj", "seg"):
        assert torch.isfinite(low[key].float()).all(), key
        assert float((low[key].float() - ref[key]).abs().max()) < 0.1, key


@pytest.mark.parametrize("mode", ["dense", "camera"])
def test_column_attention_keys_values_take_the_query_dtype(mode, monkeypatch):
    from autonomy_perception.network import bev_transformer
    torch.manual_seed(0)
    net = PerceptionNet(TINY).eval()
    net.img2bev.mode = mode
    seen = []
    real_sdpa, real_camera = bev_transformer.F.scaled_dot_product_attention, net.img2bev._attend_camera

    def sdpa(q, k, v, **kw):
        seen.append((q.dtype, k.dtype, v.dtype))
        return real_sdpa(q, k, v, **kw)

    def camera(q, k, v, valid):
        seen.append((q.dtype, k.dtype, v.dtype))
        return real_camera(q, k, v, valid)
    monkeypatch.setattr(bev_transformer.F, "scaled_dot_product_attention", sdpa)
    monkeypatch.setattr(net.img2bev, "_attend_camera", camera)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        net.forward_step(torch.rand(1, 4, 3, 32, 64), None, torch.tensor([[5.0, 0.0, 0.1]]),
                         torch.tensor([0.1]), None)
    assert seen and all(d == (torch.bfloat16,) * 3 for d in seen), seen


def test_rectifier_device_output_feeds_the_engine_without_host_round_trip():
    """rectify_to_device (torch path, here 'torch-cpu') -> fill_camera_device gives the same
    network input as the host path (rectify -> BGR->RGB -> fill_camera), asymmetric image."""
    from autonomy_perception.inference_engine import InferenceEngine
    from autonomy_perception.rectification import Rectifier
    from autonomy_perception.virtual_camera import load_virtual_cameras
    from autonomy_vehicle.camera_models import load_rig
    torch.manual_seed(0)
    eng = InferenceEngine(PerceptionNet(TINY), device="cpu")
    rig = load_rig(width=160, height=120)
    virtuals = load_virtual_cameras(width=64, height=32)
    rng = np.random.default_rng(0)
    for i, virtual in enumerate(virtuals[name] for name in eng.camera_names):
        rect = Rectifier(virtual, rig[virtual.name], device="torch-cpu")
        bgr = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        bgr[:40, 120:] = (255, 0, 0)                                   # blue top-right block
        on_device = rect.rectify_to_device(bgr, flip_channels=True)
        host = rect.rectify(bgr)[:, :, ::-1]
        np.testing.assert_array_equal(on_device.permute(1, 2, 0).numpy(), host)
        eng.fill_camera(i, np.zeros_like(host))                        # host buffer stale on purpose
        eng.fill_camera_device(i, on_device)
    eng.run([True] * 4, (5.0, 0.0, 0.0), 0.0)
    for i in range(4):
        assert eng.dev[0, i].any() and not eng.host[0, i].any()        # the device copy was used
    assert eng.device_filled == set()                                  # next run uploads again
    with pytest.raises(ValueError):
        eng.fill_camera_device(0, torch.zeros(3, 8, 8, dtype=torch.uint8))


def test_opencv_rectifier_refuses_device_output():
    from autonomy_perception.rectification import Rectifier
    from autonomy_perception.virtual_camera import load_virtual_cameras
    from autonomy_vehicle.camera_models import load_rig
    v = load_virtual_cameras(width=64, height=32)["main"]
    rect = Rectifier(v, load_rig(width=160, height=120)["main"], device="cpu")
    with pytest.raises(RuntimeError, match="torch device"):
        rect.rectify_to_device(np.zeros((120, 160, 3), np.uint8))

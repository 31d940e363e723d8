"""BEV/video perception network: shapes, gradient flow through every block, the spatial-RNN
warp, the feature queues, the restricted image-to-BEV attention, overfitting, checkpoints."""
import math
import time

import numpy as np
import pytest
import torch

from autonomy_perception.network import ego_motion
from autonomy_perception.network.bev_transformer import ImageToBEV
from autonomy_perception.network.bifpn import BiFPN
from autonomy_perception.network.config import model_config
from autonomy_perception.network.feature_queue import FeatureQueues
from autonomy_perception.network.geometry import default_virtual_rig
from autonomy_perception.inference_engine import InferenceEngine
from autonomy_perception.network.model import CheckpointError, PerceptionNet, load_checkpoint
from autonomy_perception.network.regnet import RegNet, regnet_stages
from autonomy_perception.network.spatial_rnn import SpatialRNN

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


def test_regnet_design_space_and_shapes():
    torch.manual_seed(0)    # unseeded inputs left some parameter without gradient now and then
    widths, depths, groups = regnet_stages(8, 16, 12.0, 2.0, 8)
    assert widths == sorted(widths) and all(w % 8 == 0 for w in widths)
    assert sum(depths) == 8 and len(widths) == 4
    assert all(w % g == 0 for w, g in zip(widths, groups))
    net = RegNet(depth=8, w0=16, wa=12.0, wm=2.0, group_width=8)
    outs = net(torch.randn(2, 3, 64, 96))
    assert [o.shape[1] for o in outs] == widths
    assert [o.shape[-2:] for o in outs] == [(64 // s, 96 // s) for s in net.strides]
    (outs[-1] * torch.randn_like(outs[-1])).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_bifpn_shapes_and_fusion_weight_gradients():
    feats = [torch.randn(2, c, s, 2 * s, requires_grad=True) for c, s in ((8, 16), (16, 8), (32, 4))]
    fpn = BiFPN([8, 16, 32], 12, layers=2)
    out = fpn(feats)
    assert [o.shape for o in out] == [(2, 12, 16, 32), (2, 12, 8, 16), (2, 12, 4, 8)]
    sum(o.pow(2).mean() for o in out).backward()
    for name, p in fpn.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(f.grad.abs().sum() > 0 for f in feats)


def _img2bev(mode="dense"):
    cfg = model_config(TINY)
    cams = default_virtual_rig(cfg["cameras"], 64, 32)
    return ImageToBEV(cams, (4, 8), 8, 16, cfg["bev"], mode=mode), cams


def test_image_to_bev_restricted_attention_modes_agree_and_are_local():
    torch.manual_seed(0)
    m, cams = _img2bev()
    m.eval()
    f = torch.randn(2, 4, 16, 4, 8)
    cm = torch.tensor([[True] * 4, [True, False, True, True]])
    dense = m(f, cm)
    m.mode = "camera"
    per_cam = m(f, cm)
    assert dense.shape == (2, 16, 16, 16)
    assert torch.allclose(dense, per_cam, atol=1e-4)
    # the restriction is real: changing a camera's features only changes the cells it sees
    assert 0.0 < m.selected_fraction < 0.5
    f2 = f.clone()
    f2[:, 3] += 5.0 * torch.randn(2, 16, 4, 8)          # rear camera
    out2 = m(f2, cm)
    changed = (out2 - per_cam).abs().amax(1)[0] > 1e-5  # [H, W]
    seen_by_rear = m.dense_mask[:, 3 * 32:4 * 32].any(1).view(16, 16)
    assert changed.any()
    assert not (changed & ~seen_by_rear).any()
    assert not changed[0].any()                      # the front row is not seen by the rear cam
    # a missing camera is ignored: sample 1 does not react to camera 1's features
    f3 = f.clone()
    f3[1, 1] += 5.0 * torch.randn(16, 4, 8)
    assert torch.allclose(m(f3, cm)[1], per_cam[1], atol=1e-5)


def test_image_to_bev_gradients():
    m, _ = _img2bev()
    f = torch.randn(1, 4, 16, 4, 8, requires_grad=True)
    m(f).pow(2).mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert f.grad.abs().sum() > 0


def test_warp_moves_lit_cell_by_ego_motion_exactly():
    xr, yr, res = [-8.0, 8.0], [-8.0, 8.0], 1.0
    h = torch.zeros(1, 1, 16, 16)
    h[0, 0, 5, 9] = 1.0                               # x = 8 - 5.5 = 2.5, y = 8 - 9.5 = -1.5
    # ego drives 3 m forward (1 s at 3 m/s): the cell is 3 m closer -> 3 rows down
    rel = ego_motion.integrate(torch.tensor([3.0]), torch.tensor([0.0]), torch.tensor([1.0]))
    w = ego_motion.warp_bev(h, rel, xr, yr, res)
    assert w[0, 0, 8, 9] == pytest.approx(1.0, abs=1e-6) and w.sum() == pytest.approx(1.0, abs=1e-6)
    # ego turns left by 90 deg in place: a point ahead (x=2.5,y=-1.5) ends at (x=-1.5, y=-2.5)
    rel = torch.tensor([[0.0, 0.0, math.pi / 2]])
    w = ego_motion.warp_bev(h, rel, xr, yr, res)
    r, c = np.unravel_index(int(w[0, 0].argmax()), (16, 16))
    assert (r, c) == (int(8 + 1.5), int(8 + 2.5)) and float(w.max()) == pytest.approx(1.0, abs=1e-5)
    # the spatial RNN warps its lattice the same way
    rnn = SpatialRNN(1, 1, xr, yr, res)
    rel = ego_motion.integrate(torch.tensor([3.0]), torch.tensor([0.0]), torch.tensor([1.0]))
    assert torch.equal(rnn.warp(h, rel), ego_motion.warp_bev(h, rel, xr, yr, res))
    # arc integration: quarter circle of radius 10
    rel = ego_motion.integrate(torch.tensor([10 * math.pi / 2]), torch.tensor([math.pi / 2]),
                               torch.tensor([1.0]))
    assert torch.allclose(rel[0], torch.tensor([10.0, 10.0, math.pi / 2]), atol=1e-4)


def test_rnn_gate_closed_keeps_memory():
    rnn = SpatialRNN(2, 2, [-4.0, 4.0], [-4.0, 4.0], 1.0)
    with torch.no_grad():
        rnn.cell.gates.weight.zero_()
        rnn.cell.gates.bias.fill_(-30.0)              # z = 0: never write
    h = torch.randn(1, 2, 8, 8)
    out, z = rnn(torch.randn(1, 2, 8, 8), h, torch.zeros(1, 3))
    assert torch.allclose(out, h, atol=1e-6) and float(z.detach().max()) < 1e-6


def test_space_queue_pushes_by_distance_not_time_and_survives_standing_still():
    q = FeatureQueues(time_period=0.0275, time_length=3, space_distance=2.0, space_length=3)
    tq, sq = q.init(1, 1, 2, 2, "cpu", torch.float32)
    pushes_t, pushes_s = 0, 0

    def step(val, dt, dist):
        nonlocal tq, sq, pushes_t, pushes_s
        before_t, before_s = tq.poses.clone(), sq.poses.clone()
        tq, sq = q.update(tq, sq, torch.full((1, 1, 2, 2), float(val)), torch.tensor([[val, 0, 0.0]]),
                          torch.tensor([dt]), torch.tensor([dist]))
        pushes_t += int(not torch.equal(before_t, tq.poses))
        pushes_s += int(not torch.equal(before_s, sq.poses))

    step(1, 0.0, 0.0)                               # first frame: pushed into both
    assert pushes_t == 1 and pushes_s == 1
    for i in range(2, 12):                          # 10 frames, 1 m apart, 27.8 ms apart
        step(i, 0.0278, 1.0)
    assert pushes_t == 11 and pushes_s == 1 + 5     # time: every frame; space: every 2 m
    assert sq.feats[:, 0, 0, 0, 0].tolist() == [11.0, 9.0, 7.0]
    for i in range(12, 212):                        # 200 frames (5.6 s) standing at a light
        step(i, 0.0278, 0.0)
    assert pushes_s == 6 and sq.feats[:, 0, 0, 0, 0].tolist() == [11.0, 9.0, 7.0]
    assert tq.feats[0, 0, 0, 0, 0] == 211.0         # time queue keeps moving
    # a time period longer than the frame interval skips frames
    q2 = FeatureQueues(0.1, 2, 1.0, 2)
    tq, sq = q2.init(1, 1, 1, 1, "cpu", torch.float32)
    n = 0
    for i in range(10):
        before = tq.poses.clone()
        tq, sq = q2.update(tq, sq, torch.zeros(1, 1, 1, 1), torch.tensor([[float(i + 1), 0, 0]]),
                           torch.tensor([0.05]), torch.tensor([0.0]))
        n += int(not torch.equal(before, tq.poses))
    assert n == 1 + 4                               # first + every second 50 ms frame


def _clip_targets(net, B, rng):
    """Random but fixed detection/segmentation targets for a clip."""
    from autonomy_perception.training.targets import detection_target
    from autonomy_stack.bev_grid import BEVGrid
    from autonomy_stack.vector_space import ObjectClass, ObjectState
    grid = BEVGrid.from_config(net.cfg)
    tg = []
    for b in range(B):
        objs = [ObjectState(i, ObjectClass.CAR, float(rng.uniform(-12, 12)), float(rng.uniform(-12, 12)),
                            float(rng.uniform(-3, 3)), 4.5, 1.8, 1.5, speed=float(rng.uniform(0, 10)))
                for i in range(2)]
        d = detection_target(grid, objs, net.cfg["heads"]["detection"]["classes"])
        rr, cc = np.mgrid[0:grid.H, 0:grid.W]
        seg = np.stack([(np.cos(a) * (rr - grid.H / 2) + np.sin(a) * (cc - grid.W / 2) > o)
                        for a, o in zip(rng.uniform(0, 2 * np.pi, 3), rng.uniform(-4, 4, 3))])
        seg = seg.astype(np.float32)
        d["seg"] = seg
        tg.append(d)
    return {k: torch.from_numpy(np.stack([t[k] for t in tg])) for k in tg[0]}


def test_full_network_shapes_and_gradient_flow_through_every_block():
    torch.manual_seed(0)
    net = PerceptionNet(TINY)
    B = 2
    rng = np.random.default_rng(0)
    tgt = _clip_targets(net, B, rng)
    state, total = None, 0.0
    for t in range(2):
        out, state = net.forward_step(torch.rand(B, 4, 3, 32, 64), None,
                                      torch.tensor([[5.0, 0.0, 0.1]] * B), torch.full((B,), 0.1), state)
        total = total + sum(net.losses(out, tgt).values())
    assert out["seg"].shape == (B, 3, 16, 16) and out["obj"].shape == (B, 1, 16, 16)
    assert out["cls"].shape == (B, 5, 16, 16) and out["vel"].shape == (B, 2, 16, 16)
    total.backward()
    blocks = ["backbone", "fpn", "level_merge", "img2bev", "fuse", "rnn", "trunk", "heads"]
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert {n.split(".")[0] for n, _ in net.named_parameters()} == set(blocks)


def test_single_frame_mode_ignores_history():
    torch.manual_seed(0)
    net = PerceptionNet(TINY).eval()
    x = torch.rand(1, 4, 3, 32, 64)
    kin, dt = torch.tensor([[5.0, 0.0, 0.0]]), torch.tensor([0.1])
    with torch.no_grad():
        a, _ = net.forward_step(x, None, kin, dt, None, video=False)
        _, st = net.forward_step(torch.rand(1, 4, 3, 32, 64), None, kin, dt, None)
        b, _ = net.forward_step(x, None, kin, dt, st, video=False)
        c, _ = net.forward_step(x, None, kin, dt, st, video=True)
    assert torch.allclose(a["obj"], b["obj"]) and not torch.allclose(a["obj"], c["obj"])


@pytest.mark.timeout(900)
def test_tiny_network_overfits_a_handful_of_frames():
    """4 frames (2 clips x 2 steps); the loss must drop 10x. ~40 Adam steps: well under 60 s
    on an idle 2-core machine; the time limit is generous because this machine is shared by
    many processes (it has taken 5+ minutes under a load average of 10)."""
    torch.manual_seed(0)
    net = PerceptionNet(dict(TINY, cameras=["main", "rear"]))
    rng = np.random.default_rng(1)
    B, T = 2, 2
    imgs = torch.rand(T, B, 2, 3, 32, 64)
    tgts = [_clip_targets(net, B, rng) for _ in range(T)]
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    kin, dt = torch.tensor([[5.0, 0.0, 0.0]] * B), torch.full((B,), 0.1)

    def clip_loss():
        state, tot = None, 0.0
        for t in range(T):
            out, state = net.forward_step(imgs[t], None, kin, dt, state)
            tot = tot + sum(net.losses(out, tgts[t]).values())
        return tot / T

    first = last = None
    for it in range(150):
        opt.zero_grad()
        loss = clip_loss()
        loss.backward()
        opt.step()
        last = float(loss.detach())
        first = first if first is not None else last
        if last < first / 10:
            break
    assert last < first / 10, (first, last, it)


def test_checkpoint_roundtrip_and_clear_errors(tmp_path):
    torch.manual_seed(0)
    net = PerceptionNet(TINY).eval()
    p = tmp_path / "m.pt"
    net.save(p)
    m = InferenceEngine.from_checkpoint(p, "cpu", expect_config=TINY)
    imgs = (np.random.default_rng(0).random((4, 3, 32, 64)) * 255).astype(np.uint8)
    o1 = m.step(imgs, None, (5.0, 0.0, 0.0), 0.1)
    o2 = m.step(imgs, None, (5.0, 0.0, 0.0), 0.1)
    assert o1["seg"].shape == (3, 16, 16) and o1["obj"].shape == (16, 16)
    assert not np.allclose(o1["obj"], o2["obj"])   # video state is kept between steps
    m.reset()
    assert np.allclose(m.step(imgs, None, (5.0, 0.0, 0.0), 0.1)["obj"], o1["obj"], atol=1e-6)
    with pytest.raises(ValueError, match="images must be"):
        m.step(imgs[:3])
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    other = dict(TINY, bev=dict(TINY["bev"], resolution=1.0))
    with pytest.raises(CheckpointError, match="different model config: bev.resolution"):
        load_checkpoint(p, expect_config=other)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(bad)
    ck = torch.load(p, weights_only=False)
    ck["state_dict"].pop("trunk.inp.0.weight")
    torch.save(ck, tmp_path / "trunc.pt")
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(tmp_path / "trunc.pt")

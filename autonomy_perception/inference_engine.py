"""The one inference wrapper of the perception network (no rclpy): the node, the benches
and the evaluation tools all run the network through `InferenceEngine`, which owns the
video state (queues + spatial RNN between calls) and exposes what a caller needs — the
BEV raster geometry (`grid`, autonomy_stack.bev_grid.BEVGrid), the network's virtual
cameras (`virtual_cameras`), camera order and input size — without reaching into the net.

    engine = InferenceEngine.from_checkpoint("models/perception_tiny.pt", device="cpu")
    out = engine.step(images[8, 3, H, W] (uint8 or float 0..1), camera_mask[8],
                      (speed, accel, yaw_rate), dt)            # numpy rasters, ego frame
    # or, as the node does: engine.fill_camera(i, rgb) per camera, then
    res = engine.run(mask, kinematics, stamp)                  # + stage timings
`out` / `res.outputs` are numpy rasters in the network raster convention; use
autonomy_perception.postprocess.PostProcessor for vector-space objects and polylines.

CPU and CUDA share this code; on CUDA it adds what makes the GPU path fast:
  * one preallocated, pinned host buffer for the 8 input images and a matching device
    buffer, filled with non-blocking copies (no per-frame allocation);
  * fp16/bf16 autocast for the network;
  * optional `torch.compile` of the static-shape image encoder (RegNet + BiFPN, the bulk of
    the FLOPs); the video part keeps Python control flow (queues) and stays eager;
  * optional TensorRT for the encoder through torch-tensorrt when that package is
    installed (it is not on PyPI for this CPU machine; the option then fails with a clear
    message instead of silently running something else).
Stage timings (convert, upload, network, download) are returned per call so the node can
publish where the time goes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from autonomy_perception.network.geometry import VirtualCamera
from autonomy_perception.network.model import PerceptionNet, load_checkpoint, outputs_to_numpy
from autonomy_stack.bev_grid import BEVGrid

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class EngineError(RuntimeError):
    pass


@dataclass
class EngineResult:
    outputs: Dict[str, np.ndarray]
    stages_ms: Dict[str, float] = field(default_factory=dict)


class InferenceEngine:
    # a gap this long between frames (bag jump, dead stream) starts the video memory anew
    MAX_GAP_S = 1.0

    def __init__(self, net: PerceptionNet, device: str = "cpu", precision: str = "fp32",
                 compile_encoder: bool = False, tensorrt: bool = False, video: bool = True):
        if precision not in PRECISIONS:
            raise EngineError(f"precision must be one of {list(PRECISIONS)}, got '{precision}'")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise EngineError("device 'cuda' requested but torch.cuda.is_available() is False")
        self.net = net.to(self.device).eval()
        self.config = net.cfg
        self.video = bool(video and net.video_enabled)
        self.precision = precision
        self.autocast = self.device.type == "cuda" and precision != "fp32"
        H, W = self.input_hw
        n = len(self.camera_names)
        pin = self.device.type == "cuda"
        self.host = torch.empty((1, n, 3, H, W), dtype=torch.uint8, pin_memory=pin)
        self.host_np = self.host.numpy()
        self.dev = torch.empty((1, n, 3, H, W), dtype=torch.uint8, device=self.device)
        self.mask_dev = torch.ones((1, n), dtype=torch.bool, device=self.device)
        self.device_filled: set = set()    # cameras written by fill_camera_device for the next run
        self.state = None
        self.last_stamp: Optional[float] = None
        if tensorrt:
            self._enable_tensorrt()
        elif compile_encoder:
            self.net.encode = torch.compile(self.net.encode, dynamic=False)

    def _enable_tensorrt(self) -> None:
        try:
            import torch_tensorrt  # noqa: F401
        except ImportError as exc:
            raise EngineError("tensorrt=true but torch_tensorrt is not installed "
                              "(pip install torch-tensorrt on a CUDA machine)") from exc
        if self.device.type != "cuda":
            raise EngineError("tensorrt=true needs device 'cuda'")
        enc = self.net.encode
        self.net.encode = torch.compile(enc, backend="tensorrt", dynamic=False,
                                        options={"enabled_precisions": {PRECISIONS[self.precision]}})

    @classmethod
    def from_checkpoint(cls, path, device: str = "cpu", precision: str = "fp32",
                        compile_encoder: bool = False, tensorrt: bool = False,
                        video: bool = True, expect_config: Optional[Dict] = None
                        ) -> "InferenceEngine":
        """CheckpointError (network.model) on a missing/invalid checkpoint, EngineError on
        an unusable device/precision."""
        net, _ = load_checkpoint(path, "cpu", expect_config)
        return cls(net, device, precision, compile_encoder, tensorrt, video)

    @property
    def input_hw(self) -> Tuple[int, int]:
        return tuple(self.config["input_hw"])

    @property
    def camera_names(self) -> List[str]:
        return list(self.config["cameras"])

    @property
    def grid(self) -> BEVGrid:
        """Geometry of the output rasters (network raster convention)."""
        return self.net.bev_grid

    @property
    def virtual_cameras(self) -> List[VirtualCamera]:
        """The network's virtual cameras at its input size, in `camera_names` order."""
        return list(self.net.cams)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def reset(self) -> None:
        self.state = None
        self.last_stamp = None

    def fill_camera(self, index: int, image_hwc_rgb: Optional[np.ndarray]) -> None:
        """Write one camera's image (H x W x 3 uint8 RGB at the network's input size) into
        the (pinned) host buffer; None zeroes it (masked camera)."""
        if image_hwc_rgb is None:
            self.host_np[0, index] = 0
        else:
            np.copyto(self.host_np[0, index], image_hwc_rgb.transpose(2, 0, 1))

    def fill_camera_device(self, index: int, image_chw_rgb) -> None:
        """One camera's image already on the engine's device (uint8 [3, H, W] RGB, e.g.
        Rectifier.rectify_to_device): written into the device buffer, skipping the host
        buffer and its upload for this camera in the next run (no round trip, issue 19)."""
        if tuple(image_chw_rgb.shape) != (3, *self.input_hw) or image_chw_rgb.dtype != torch.uint8:
            raise ValueError(f"camera {index}: expected uint8 [3, {self.input_hw[0]}, {self.input_hw[1]}], "
                             f"got {image_chw_rgb.dtype} {tuple(image_chw_rgb.shape)}")
        self.dev[0, index].copy_(image_chw_rgb, non_blocking=True)
        self.device_filled.add(index)

    def step(self, images, camera_mask=None, kinematics=(0.0, 0.0, 0.0),
             dt: float = 0.0) -> Dict[str, np.ndarray]:
        """images [N, 3, H, W] (uint8 0..255 or float 0..1, numpy or torch) in the order of
        `camera_names`; camera_mask [N] bool (False = missing camera); kinematics
        (speed m/s, accel m/s^2, yaw_rate rad/s); dt seconds since the previous step.
        Returns numpy rasters: seg [S, H, W] probabilities, obj [H, W], cls [K, H, W]
        probabilities, offset [2], size [3] (log), heading [2], vel [2]."""
        x = images.detach().cpu().numpy() if torch.is_tensor(images) else np.asarray(images)
        N = len(self.camera_names)
        if x.ndim != 4 or x.shape[0] != N or x.shape[1] != 3 or tuple(x.shape[2:]) != self.input_hw:
            raise ValueError(f"images must be [{N}, 3, {self.input_hw[0]}, {self.input_hw[1]}], "
                             f"got {tuple(x.shape)}")
        if x.dtype != np.uint8:
            x = np.clip(np.rint(x.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
        np.copyto(self.host_np[0], x)
        mask = np.ones(N, bool) if camera_mask is None else np.asarray(camera_mask, dtype=bool)
        return self._forward(mask, kinematics, float(dt), {})

    def run(self, mask: Sequence[bool], kinematics: Tuple[float, float, float],
            stamp: float) -> EngineResult:
        """One frame from the host buffer (`fill_camera`); dt from the previous stamp."""
        dt = 0.0 if self.last_stamp is None else max(0.0, stamp - self.last_stamp)
        self.last_stamp = stamp
        stages: Dict[str, float] = {}
        return EngineResult(self._forward(np.asarray(mask, dtype=bool), kinematics, dt, stages),
                            stages)

    @torch.no_grad()
    def _forward(self, mask: np.ndarray, kinematics, dt: float,
                 stages: Dict[str, float]) -> Dict[str, np.ndarray]:
        """The video state and kinematics logic, once for `step` and `run`."""
        t0 = time.perf_counter()
        if not self.device_filled:
            self.dev.copy_(self.host, non_blocking=True)
        else:   # cameras filled on the device keep their data; upload only the others
            for i in set(range(self.dev.shape[1])) - self.device_filled:
                self.dev[0, i].copy_(self.host[0, i], non_blocking=True)
            self.device_filled = set()
        self.mask_dev.copy_(torch.as_tensor(mask)[None], non_blocking=True)
        if dt > self.MAX_GAP_S:
            self.state, dt = None, 0.0
        kin = torch.tensor([list(kinematics)], dtype=torch.float32, device=self.device)
        dt_t = torch.tensor([dt], dtype=torch.float32, device=self.device)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        stages["upload"] = (t1 - t0) * 1e3
        x = self.dev.float().div_(255.0)
        with torch.autocast(self.device.type, dtype=PRECISIONS[self.precision], enabled=self.autocast):
            out, st = self.net.forward_step(x, self.mask_dev, kin, dt_t,
                                            self.state if self.video else None, video=self.video)
        self.state = st if self.video else None
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        stages["network"] = (t2 - t1) * 1e3
        res = outputs_to_numpy(out)
        stages["download"] = (time.perf_counter() - t2) * 1e3
        return res

"""Device-side execution of the perception network for the node (no rclpy).

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

from autonomy_perception.network.model import PerceptionModel, outputs_to_numpy

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class EngineError(RuntimeError):
    pass


@dataclass
class EngineResult:
    outputs: Dict[str, np.ndarray]
    stages_ms: Dict[str, float] = field(default_factory=dict)


class InferenceEngine:
    def __init__(self, model: PerceptionModel, device: str = "cpu", precision: str = "fp32",
                 compile_encoder: bool = False, tensorrt: bool = False):
        if precision not in PRECISIONS:
            raise EngineError(f"precision must be one of {list(PRECISIONS)}, got '{precision}'")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise EngineError("device 'cuda' requested but torch.cuda.is_available() is False")
        self.model = model
        self.net = model.net.to(self.device).eval()
        self.precision = precision
        self.autocast = self.device.type == "cuda" and precision != "fp32"
        H, W = model.input_hw
        n = len(model.camera_names)
        pin = self.device.type == "cuda"
        self.host = torch.empty((1, n, 3, H, W), dtype=torch.uint8, pin_memory=pin)
        self.host_np = self.host.numpy()
        self.dev = torch.empty((1, n, 3, H, W), dtype=torch.uint8, device=self.device)
        self.mask_dev = torch.ones((1, n), dtype=torch.bool, device=self.device)
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
        H, W = self.model.input_hw
        n = len(self.model.camera_names)
        enc = self.net.encode
        self.net.encode = torch.compile(enc, backend="tensorrt", dynamic=False,
                                        options={"enabled_precisions": {PRECISIONS[self.precision]}})
        del H, W, n

    @property
    def input_hw(self) -> Tuple[int, int]:
        return self.model.input_hw

    @property
    def camera_names(self) -> List[str]:
        return self.model.camera_names

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

    @torch.no_grad()
    def run(self, mask: Sequence[bool], kinematics: Tuple[float, float, float],
            stamp: float) -> EngineResult:
        stages: Dict[str, float] = {}
        t0 = time.perf_counter()
        self.dev.copy_(self.host, non_blocking=True)
        self.mask_dev.copy_(torch.as_tensor(np.asarray(mask, dtype=bool))[None], non_blocking=True)
        dt = 0.0 if self.last_stamp is None else max(0.0, stamp - self.last_stamp)
        if dt > 1.0:       # a gap this long (bag jump, dead stream): start the video memory anew
            self.state, dt = None, 0.0
        self.last_stamp = stamp
        kin = torch.tensor([list(kinematics)], dtype=torch.float32, device=self.device)
        dt_t = torch.tensor([dt], dtype=torch.float32, device=self.device)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        stages["upload"] = (t1 - t0) * 1e3
        x = self.dev.float().div_(255.0)
        with torch.autocast(self.device.type, dtype=PRECISIONS[self.precision], enabled=self.autocast):
            out, st = self.net.forward_step(x, self.mask_dev, kin, dt_t,
                                            self.state if self.model.video else None,
                                            video=self.model.video)
        self.state = st if self.model.video else None
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        stages["network"] = (t2 - t1) * 1e3
        res = outputs_to_numpy(out)
        stages["download"] = (time.perf_counter() - t2) * 1e3
        return EngineResult(res, stages)

"""Camera sensor effects applied to rendered images (no ROS, seeded).

`SensorEffects(config).apply(rgb, cam, rng, depth=..., speed=..., yaw_rate=...)` runs, in
the order a real camera would:

1. motion blur: the exposure integrates the scene while the car moves; the per-pixel image
   motion over the exposure follows from the rendered range, the camera model and the ego
   motion (forward speed and yaw rate), and is averaged over `blur_samples` sub-exposures
   (cv2.remap along the flow), so near ground and side views smear more than the sky ahead;
2. vignetting: radial gain 1 - strength * rho^3 (rho: distance from the principal point
   over the half diagonal; per calibration, cached);
3. exposure: gain 2^exposure_ev (optionally auto-exposure to a target mean) with
   saturation and a mild tone curve;
4. noise: shot noise (variance proportional to the signal) + read noise, in 8-bit counts.

Every random draw comes from the `np.random.Generator` passed in (seeded by the caller).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import cv2
import numpy as np

from autonomy_vehicle.camera_models import CameraCalibration, rotate
from autonomy_simulator.rendering import dense_pixel_rays


@dataclass
class SensorEffectsConfig:
    motion_blur: bool = True
    exposure_time: float = 0.008      # s
    blur_samples: int = 5
    vignetting: float = 0.3           # corner darkening (0 = none, 1 = black corners)
    exposure_ev: float = 0.0          # fixed gain in stops
    auto_exposure: bool = False
    auto_exposure_target: float = 110.0
    shot_noise: float = 0.25          # variance (counts^2) per count of signal
    read_noise: float = 1.5           # std (counts)

    @staticmethod
    def off() -> "SensorEffectsConfig":
        return SensorEffectsConfig(motion_blur=False, vignetting=0.0, exposure_ev=0.0,
                                   shot_noise=0.0, read_noise=0.0)


class SensorEffects:
    def __init__(self, config: Optional[SensorEffectsConfig] = None):
        self.config = config or SensorEffectsConfig()
        self._rays: Dict[str, np.ndarray] = {}
        self._vig: Dict[str, np.ndarray] = {}

    def _key(self, cam: CameraCalibration) -> str:
        return f"{cam.name}:{cam.width}x{cam.height}:{hash(cam.K.tobytes() + cam.D.tobytes())}"

    def rays(self, cam: CameraCalibration) -> np.ndarray:
        k = self._key(cam)
        if k not in self._rays:
            self._rays[k] = dense_pixel_rays(cam).astype(np.float32)
        return self._rays[k]

    def vignetting_gain(self, cam: CameraCalibration) -> np.ndarray:
        """Radial fall-off 1 - strength * rho^3, rho = distance from the principal point
        over the half diagonal (the same look for pinhole and fisheye lenses)."""
        k = self._key(cam) + f":{self.config.vignetting}"
        if k not in self._vig:
            H, W = cam.height, cam.width
            u, v = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
            rho = np.hypot(u - cam.K[0, 2], v - cam.K[1, 2]) / (0.5 * np.hypot(W, H))
            g = 1.0 - self.config.vignetting * np.clip(rho, 0, 1.2) ** 3
            self._vig[k] = np.clip(g, 0.0, 1.0).astype(np.float32)
        return self._vig[k]

    def motion_flow(self, cam: CameraCalibration, range_img: np.ndarray, speed: float,
                    yaw_rate: float, dt: float) -> np.ndarray:
        """HxWx2 pixel displacement over `dt` of the static scene seen from a car moving at
        `speed` (m/s, along base_link x) turning at `yaw_rate` (rad/s)."""
        rays = self.rays(cam)
        H, W = range_img.shape
        r = np.where(np.isfinite(range_img), range_img, 1e6).astype(np.float64)
        pc = (np.nan_to_num(rays).reshape(-1, 3) * r.reshape(-1, 1))
        pb = rotate(cam.T_base_camera[:3, :3], pc) + cam.T_base_camera[:3, 3]
        dyaw = yaw_rate * dt
        c, s = np.cos(-dyaw), np.sin(-dyaw)
        Rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
        moved = rotate(Rz, pb - np.array([speed * dt, 0.0, 0.0]))
        uv1, ok = cam.project(moved, check_image=False)
        u0, v0 = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
        flow = np.stack([uv1[:, 0].reshape(H, W) - u0, uv1[:, 1].reshape(H, W) - v0], axis=2)
        flow[~ok.reshape(H, W) | ~np.isfinite(flow).all(axis=2)] = 0.0
        return np.clip(flow, -50, 50).astype(np.float32)

    def apply(self, rgb: np.ndarray, cam: CameraCalibration, rng: np.random.Generator,
              range_img: Optional[np.ndarray] = None, speed: float = 0.0,
              yaw_rate: float = 0.0) -> np.ndarray:
        cfg = self.config
        img = rgb.astype(np.float32)
        moving = abs(speed) > 1e-3 or abs(yaw_rate) > 1e-4
        if cfg.motion_blur and range_img is not None and moving:
            flow = self.motion_flow(cam, range_img, speed, yaw_rate, cfg.exposure_time)
            H, W = flow.shape[:2]
            u0, v0 = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
            acc = np.zeros_like(img)
            n = max(2, int(cfg.blur_samples))
            for k in range(n):
                a = k / (n - 1) - 0.5        # centred on the mid-exposure image
                acc += cv2.remap(img, u0 + a * flow[..., 0], v0 + a * flow[..., 1],
                                 cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            img = acc / n
        if cfg.vignetting > 0:
            img *= self.vignetting_gain(cam)[..., None]
        gain = 2.0 ** cfg.exposure_ev
        if cfg.auto_exposure:
            gain *= cfg.auto_exposure_target / max(float(img.mean()), 1.0)
        if gain != 1.0:
            img = 255.0 * (1.0 - np.exp(-img * gain / 255.0 * 1.2)) / (1.0 - np.exp(-1.2))
        if cfg.shot_noise > 0 or cfg.read_noise > 0:
            std = np.sqrt(cfg.shot_noise * np.maximum(img, 0.0) + cfg.read_noise ** 2)
            img = img + std * rng.standard_normal(img.shape, dtype=np.float32)
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)

"""SE(2) ego-motion helpers (torch, batched) and the BEV raster warp.

Poses are (x, y, yaw) in the odom frame. `integrate(speed, yaw_rate, dt)` is the motion of
base_link over dt as a pose in the *previous* base_link frame (constant speed and yaw rate,
exact arc). `warp_bev(src, rel, ...)` resamples a BEV raster captured at pose P_src into the
current ego frame, where rel = P_src^-1 * P_cur. Raster convention (bev_transformer.
bev_cell_centres): row 0 = front (x max), column 0 = left (y max)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def integrate(speed: torch.Tensor, yaw_rate: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
    dyaw = yaw_rate * dt
    ds = speed * dt
    small = dyaw.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(dyaw), dyaw)
    sx = torch.where(small, ds, ds * torch.sin(safe) / safe)
    sy = torch.where(small, ds * dyaw / 2.0, ds * (1.0 - torch.cos(safe)) / safe)
    return torch.stack([sx, sy, dyaw], -1)


def compose(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a * b for poses (..., 3)."""
    c, s = torch.cos(a[..., 2]), torch.sin(a[..., 2])
    x = a[..., 0] + c * b[..., 0] - s * b[..., 1]
    y = a[..., 1] + s * b[..., 0] + c * b[..., 1]
    yaw = torch.atan2(torch.sin(a[..., 2] + b[..., 2]), torch.cos(a[..., 2] + b[..., 2]))
    return torch.stack([x, y, yaw], -1)


def inverse(a: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(a[..., 2]), torch.sin(a[..., 2])
    x = -(c * a[..., 0] + s * a[..., 1])
    y = -(-s * a[..., 0] + c * a[..., 1])
    return torch.stack([x, y, -a[..., 2]], -1)


def relative(p_src: torch.Tensor, p_cur: torch.Tensor) -> torch.Tensor:
    return compose(inverse(p_src), p_cur)


def warp_bev(src: torch.Tensor, rel: torch.Tensor, x_range, y_range, res: float,
             mode: str = "bilinear") -> torch.Tensor:
    """src [B, C, H, W] (raster in the source ego frame), rel [B, 3] = current ego pose in
    the source frame. Returns the raster in the current ego frame (zeros where unseen)."""
    B, C, H, W = src.shape
    dev, dt = src.device, src.dtype
    xs = x_range[1] - (torch.arange(H, device=dev, dtype=dt) + 0.5) * res
    ys = y_range[1] - (torch.arange(W, device=dev, dtype=dt) + 0.5) * res
    X, Y = torch.meshgrid(xs, ys, indexing="ij")                  # current-frame cell centres
    c, s = torch.cos(rel[:, 2]).to(dt), torch.sin(rel[:, 2]).to(dt)
    Xs = rel[:, 0, None, None].to(dt) + c[:, None, None] * X - s[:, None, None] * Y
    Ys = rel[:, 1, None, None].to(dt) + s[:, None, None] * X + c[:, None, None] * Y
    gx = ((y_range[1] - Ys) / res) / W * 2.0 - 1.0                # columns
    gy = ((x_range[1] - Xs) / res) / H * 2.0 - 1.0                # rows
    grid = torch.stack([gx, gy], -1)
    return F.grid_sample(src, grid, mode=mode, padding_mode="zeros", align_corners=False)

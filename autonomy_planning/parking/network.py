"""Policy/value network for the parking MCTS and its inputs.

Input: an ego-centred, heading-aligned BEV raster (channels: obstacles, goal footprint;
64 x 64 cells of 0.75 m, i.e. 48 m x 48 m around the rear axle: the whole aisle and
both bay rows of a lot) and the car state (goal pose in the ego frame, last driving
direction). Output: logits over the motion primitives and a value = predicted cost-to-go
(in units of `VALUE_SCALE`).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from torch import nn
from scipy import ndimage

from autonomy_planning.parking.lot import car_corners

RASTER = 64
RASTER_RES = 0.75
VALUE_SCALE = 50.0
STATE_DIM = 8


class SceneFeatures:
    """Per-problem rasters (obstacles blurred so thin curbs survive subsampling, goal
    footprint) and the ego-raster sampler."""

    def __init__(self, space):
        g = space.grid
        self.space = space
        k = max(1, int(round(RASTER_RES / g.res)))
        self.obst = ndimage.maximum_filter(g.occ, size=k).astype(np.float32)
        # goal: car footprint at the goal pose
        vp = space.vp
        gx, gy, gyaw = space.goal
        corners = car_corners((gx, gy, gyaw), vp)
        xs = g.x0 + (np.arange(g.nx) + 0.5) * g.res
        ys = g.y0 + (np.arange(g.ny) + 0.5) * g.res
        X, Y = np.meshgrid(xs, ys, indexing="ij")
        c, s = math.cos(gyaw), math.sin(gyaw)
        cx, cy = corners.mean(0)
        lx = (X - cx) * c + (Y - cy) * s
        ly = -(X - cx) * s + (Y - cy) * c
        goal = (np.abs(lx) <= vp.length / 2 + k * g.res / 2) & (np.abs(ly) <= vp.width / 2 + k * g.res / 2)
        # mark the car's front half brighter so the goal heading is visible
        goal = goal.astype(np.float32) * np.where(lx > 0, 1.0, 0.5).astype(np.float32)
        self.goal = goal
        u = (np.arange(RASTER) - RASTER / 2 + 0.5) * RASTER_RES
        self.UX, self.UY = np.meshgrid(u, u, indexing="ij")       # ego x (forward), y (left)
        self.x0, self.y0, self.res, self.nx, self.ny = g.x0, g.y0, g.res, g.nx, g.ny

    def raster(self, x: float, y: float, yaw: float) -> np.ndarray:
        c, s = math.cos(yaw), math.sin(yaw)
        px = x + self.UX * c - self.UY * s
        py = y + self.UX * s + self.UY * c
        ix = ((px - self.x0) / self.res).astype(np.int64)
        iy = ((py - self.y0) / self.res).astype(np.int64)
        inside = (ix >= 0) & (ix < self.nx) & (iy >= 0) & (iy < self.ny)
        ixc = np.clip(ix, 0, self.nx - 1)
        iyc = np.clip(iy, 0, self.ny - 1)
        ob = np.where(inside, self.obst[ixc, iyc], 1.0)
        go = np.where(inside, self.goal[ixc, iyc], 0.0)
        return np.stack([ob, go]).astype(np.float32)

    def state(self, x: float, y: float, yaw: float, prev_dir: int) -> np.ndarray:
        gx, gy, gyaw = self.space.goal
        c, s = math.cos(yaw), math.sin(yaw)
        dx, dy = gx - x, gy - y
        ex, ey = dx * c + dy * s, -dx * s + dy * c
        dpsi = gyaw - yaw
        d = math.hypot(dx, dy)
        return np.array([ex / 20.0, ey / 20.0, math.cos(dpsi), math.sin(dpsi), d / 30.0,
                         float(prev_dir == 1), float(prev_dir == -1), float(prev_dir == 0)],
                        np.float32)


class PolicyValueNet(nn.Module):
    def __init__(self, n_actions: int = 10, width: int = 32):
        super().__init__()
        w = width
        self.n_actions = n_actions
        self.conv = nn.Sequential(
            nn.Conv2d(2, w // 2, 5, stride=2, padding=2), nn.ReLU(),       # 32
            nn.Conv2d(w // 2, w, 3, stride=2, padding=1), nn.ReLU(),       # 16
            nn.Conv2d(w, w, 3, stride=2, padding=1), nn.ReLU(),            # 8
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),        # 4
        )
        feat = 2 * w * 4 * 4
        self.fc = nn.Sequential(nn.Linear(feat + STATE_DIM, 128), nn.ReLU(),
                                nn.Linear(128, 128), nn.ReLU())
        self.policy = nn.Linear(128, n_actions)
        self.value = nn.Linear(128, 1)

    def forward(self, raster: torch.Tensor, state: torch.Tensor):
        z = self.conv(raster).flatten(1)
        z = self.fc(torch.cat([z, state], dim=1))
        return self.policy(z), self.value(z).squeeze(1)


def save_model(net: PolicyValueNet, path: str, meta: Optional[dict] = None):
    torch.save({"state_dict": net.state_dict(), "n_actions": net.n_actions,
                "meta": meta or {}}, path)


def load_model(path: str) -> PolicyValueNet:
    ck = torch.load(path, map_location="cpu", weights_only=False)
    net = PolicyValueNet(ck.get("n_actions", 10))
    net.load_state_dict(ck["state_dict"])
    net.eval()
    return net


def random_model(seed: int = 0, n_actions: int = 10) -> PolicyValueNet:
    """An untrained network (deterministic initialisation from `seed`)."""
    torch.manual_seed(seed)
    net = PolicyValueNet(n_actions)
    net.eval()
    return net

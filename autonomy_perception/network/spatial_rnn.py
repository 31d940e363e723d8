"""Spatial RNN (video module).

The hidden state is a 2-D lattice of feature vectors on the ground. It is stored in the
current ego frame; at every step ego motion (integrated from kinematics, ego_motion.
integrate) moves the car through the lattice: the state is warped (shift + rotation,
bilinear, zeros where new ground enters the raster). This is the same as a lattice fixed
in the ground frame whose window travels with the car. A convolutional GRU then updates
it: its update gate z (per cell, per channel) is the learned *write* decision: where z ~ 0
the cell keeps its memory (e.g. a car hidden behind a passing truck), where z ~ 1 it is
overwritten with current evidence."""
from __future__ import annotations

import torch
from torch import nn

from .ego_motion import warp_bev


class ConvGRUCell(nn.Module):
    def __init__(self, in_ch: int, hidden: int, k: int = 3):
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(in_ch + hidden, 2 * hidden, k, padding=k // 2)
        self.cand = nn.Conv2d(in_ch + hidden, hidden, k, padding=k // 2)
        nn.init.constant_(self.gates.bias, 0.0)

    def forward(self, x: torch.Tensor, h: torch.Tensor):
        zr = torch.sigmoid(self.gates(torch.cat([x, h], 1)))
        z, r = zr.chunk(2, 1)
        n = torch.tanh(self.cand(torch.cat([x, r * h], 1)))
        return (1.0 - z) * h + z * n, z


class SpatialRNN(nn.Module):
    def __init__(self, in_ch: int, hidden: int, x_range, y_range, res):
        super().__init__()
        self.cell = ConvGRUCell(in_ch, hidden)
        self.hidden = hidden
        self.grid = (list(x_range), list(y_range), float(res))

    def warp(self, h: torch.Tensor, rel: torch.Tensor) -> torch.Tensor:
        """Move the lattice by the ego motion rel [B, 3] (current pose in previous frame)."""
        return warp_bev(h, rel, *self.grid)

    def forward(self, x: torch.Tensor, h_prev: torch.Tensor, rel: torch.Tensor):
        """x [B, Cin, H, W]; h_prev [B, hidden, H, W] in the previous ego frame."""
        h, z = self.cell(x, self.warp(h_prev, rel))
        return h, z

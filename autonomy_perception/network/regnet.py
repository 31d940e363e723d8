"""RegNet backbone (Radosavovic et al., "Designing Network Design Spaces", 2020).

The design space: block widths u_j = w0 + wa * j (j < depth) are quantised on a log grid
with ratio wm (s_j = round(log(u_j / w0) / log(wm)), w_j = w0 * wm^s_j, rounded to a
multiple of 8); equal consecutive widths form a stage; group convolutions have a fixed
group width (widths are made divisible by it). Y-blocks (bottleneck + group conv + SE).
The first block of every stage has stride 2. Shared across cameras; returns every stage
output (strides 4, 8, 16, 32, ... for the default configs): high resolution/low channels
at the bottom, low resolution/high channels at the top."""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
import torch
from torch import nn


def regnet_stages(depth: int, w0: int, wa: float, wm: float, group_width: int,
                  bottleneck: float = 1.0, q: int = 8) -> Tuple[List[int], List[int], List[int]]:
    """(stage widths, stage depths, stage group widths) of a RegNet."""
    if depth < 1 or w0 < 8 or wa < 0 or wm <= 1.0:
        raise ValueError("RegNet needs depth >= 1, w0 >= 8, wa >= 0, wm > 1")
    j = np.arange(depth)
    u = w0 + wa * j
    s = np.round(np.log(u / w0) / np.log(wm))
    w = np.maximum(q, np.round(w0 * np.power(wm, s) / q) * q).astype(int)
    widths, depths = [], []
    for wj in w:
        if widths and widths[-1] == wj:
            depths[-1] += 1
        else:
            widths.append(int(wj))
            depths.append(1)
    groups = []
    out_w = []
    for wi in widths:
        wb = int(round(wi * bottleneck))
        g = min(group_width, wb)
        wb = int(max(g, round(wb / g) * g))
        out_w.append(int(round(wb / bottleneck)))
        groups.append(g)
    return out_w, depths, groups


class SqueezeExcite(nn.Module):
    def __init__(self, ch: int, se_ch: int):
        super().__init__()
        self.fc1 = nn.Conv2d(ch, se_ch, 1)
        self.fc2 = nn.Conv2d(se_ch, ch, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))


class YBlock(nn.Module):
    def __init__(self, w_in: int, w_out: int, stride: int, group_width: int,
                 bottleneck: float, se_ratio: float):
        super().__init__()
        wb = int(round(w_out * bottleneck))
        groups = max(1, wb // group_width)
        self.a = nn.Sequential(nn.Conv2d(w_in, wb, 1, bias=False), nn.BatchNorm2d(wb),
                               nn.ReLU(inplace=True))
        self.b = nn.Sequential(nn.Conv2d(wb, wb, 3, stride, 1, groups=groups, bias=False),
                               nn.BatchNorm2d(wb), nn.ReLU(inplace=True))
        self.se = SqueezeExcite(wb, max(1, int(round(w_in * se_ratio)))) if se_ratio > 0 \
            else nn.Identity()
        self.c = nn.Sequential(nn.Conv2d(wb, w_out, 1, bias=False), nn.BatchNorm2d(w_out))
        self.proj = None
        if stride != 1 or w_in != w_out:
            self.proj = nn.Sequential(nn.Conv2d(w_in, w_out, 1, stride, bias=False),
                                      nn.BatchNorm2d(w_out))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.c(self.se(self.b(self.a(x))))
        return self.act(y + (x if self.proj is None else self.proj(x)))


class RegNet(nn.Module):
    def __init__(self, depth: int = 8, w0: int = 16, wa: float = 12.0, wm: float = 2.0,
                 group_width: int = 8, bottleneck: float = 1.0, stem_width: int = 16,
                 se_ratio: float = 0.25):
        super().__init__()
        widths, depths, groups = regnet_stages(depth, w0, wa, wm, group_width, bottleneck)
        self.widths, self.depths = widths, depths
        self.stem = nn.Sequential(nn.Conv2d(3, stem_width, 3, 2, 1, bias=False),
                                  nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True))
        stages = []
        w_in = stem_width
        for w, d, g in zip(widths, depths, groups):
            blocks = [YBlock(w_in if i == 0 else w, w, 2 if i == 0 else 1, g, bottleneck,
                             se_ratio) for i in range(d)]
            stages.append(nn.Sequential(*blocks))
            w_in = w
        self.stages = nn.ModuleList(stages)
        self.strides = [2 ** (i + 2) for i in range(len(stages))]

    @classmethod
    def from_config(cls, c: Dict) -> "RegNet":
        return cls(**c)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.stem(x)
        outs = []
        for s in self.stages:
            x = s(x)
            outs.append(x)
        return outs

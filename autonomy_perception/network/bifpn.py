"""BiFPN (Tan et al., EfficientDet 2020): weighted bidirectional feature pyramid.

Each layer runs a top-down pass (coarse -> fine) then a bottom-up pass (fine -> coarse);
every fusion node takes a *fast normalised weighted sum* of its inputs
(w_i = relu(a_i) / (sum_j relu(a_j) + eps)) followed by a depthwise-separable conv.
Layers are repeatable (`layers`)."""
from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import nn


class SepConv(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.dw = nn.Conv2d(ch, ch, 3, 1, 1, groups=ch, bias=False)
        self.pw = nn.Conv2d(ch, ch, 1, bias=False)
        self.bn = nn.BatchNorm2d(ch)

    def forward(self, x):
        return F.silu(self.bn(self.pw(self.dw(x))))


class WeightedFusion(nn.Module):
    def __init__(self, n_inputs: int, ch: int, eps: float = 1e-4):
        super().__init__()
        self.w = nn.Parameter(torch.ones(n_inputs))
        self.eps = eps
        self.conv = SepConv(ch)

    def weights(self) -> torch.Tensor:
        w = torch.relu(self.w)
        return w / (w.sum() + self.eps)

    def forward(self, xs: List[torch.Tensor]) -> torch.Tensor:
        w = self.weights()
        return self.conv(sum(w[i] * x for i, x in enumerate(xs)))


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    if x.shape[-2:] == tuple(size):
        return x
    if x.shape[-2] > size[0]:  # downsample
        x = F.max_pool2d(x, 3, 2, 1)
        if x.shape[-2:] == tuple(size):
            return x
    return F.interpolate(x, size=size, mode="nearest")


class BiFPNLayer(nn.Module):
    def __init__(self, n_levels: int, ch: int):
        super().__init__()
        self.n = n_levels
        self.td = nn.ModuleList([WeightedFusion(2, ch) for _ in range(n_levels - 1)])
        self.bu = nn.ModuleList([WeightedFusion(3 if i < n_levels - 1 else 2, ch)
                                 for i in range(1, n_levels)])

    def forward(self, feats: List[torch.Tensor]) -> List[torch.Tensor]:
        n = self.n
        td = [None] * n
        td[n - 1] = feats[n - 1]
        for i in range(n - 2, -1, -1):  # top-down
            td[i] = self.td[i]([feats[i], _resize(td[i + 1], feats[i].shape[-2:])])
        out = [None] * n
        out[0] = td[0]
        for i in range(1, n):  # bottom-up
            down = _resize(out[i - 1], feats[i].shape[-2:])
            ins = [feats[i], td[i], down] if i < n - 1 else [feats[i], down]
            out[i] = self.bu[i - 1](ins)
        return out


class BiFPN(nn.Module):
    def __init__(self, in_channels: List[int], ch: int, layers: int):
        super().__init__()
        self.lateral = nn.ModuleList([nn.Sequential(nn.Conv2d(c, ch, 1, bias=False),
                                                    nn.BatchNorm2d(ch)) for c in in_channels])
        self.layers = nn.ModuleList([BiFPNLayer(len(in_channels), ch) for _ in range(layers)])

    def forward(self, feats: List[torch.Tensor]) -> List[torch.Tensor]:
        x = [l(f) for l, f in zip(self.lateral, feats)]
        for layer in self.layers:
            x = layer(x)
        return x

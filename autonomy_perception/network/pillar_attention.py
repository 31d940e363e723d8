"""Geometry-aware image-to-BEV attention (BEVFormer-style spatial cross-attention).

The reference design is kept: BEV queries are sin/cos positional encodings of each cell
centre through an MLP, and multi-head attention pulls image features into every cell. What
changes is where the keys come from: camera geometry is *given*, not learned. Every BEV
cell is a pillar; points on it at the configured heights are projected into every virtual
camera with the rig's own intrinsics/extrinsics (`geometry.VirtualCamera.project`), and the
image features are sampled there bilinearly (`grid_sample`). Range is therefore explicit:
a cell 30 m ahead samples the image row where the ground 30 m ahead is, not a token row
shared by everything from 10 to 34 m (the failure of column-restricted attention at
stride 16 measured in issue 14).

Two passes:
1. *reference*: the mean of the features at the pillar's valid reference points (cameras
   that see it, all heights) gives each query image content;
2. *deformable attention*: from (query + content) each head predicts a small learned
   offset per (height, point) around each reference point and one attention logit per
   (camera, height, point); the softmax runs over the valid hits only plus a learned
   "null" logit, so cells no camera sees (or whose camera is missing) read the null value.
Because the rectified virtual cameras are fixed, the reference points are a constant of the
model config, computed once at construction (buffers, not weights)."""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .geometry import VirtualCamera


def fourier(x: torch.Tensor, n_freqs: int, max_period: float) -> torch.Tensor:
    """sin/cos features of the last dim at geometric frequencies up to 2*pi/max_period*2^k."""
    freqs = (2.0 * math.pi / max_period) * (2.0 ** torch.arange(n_freqs, dtype=x.dtype))
    a = x[..., None] * freqs
    return torch.cat([torch.sin(a), torch.cos(a)], -1).flatten(-2)


def pillar_reference_points(cams: Sequence[VirtualCamera], centres: np.ndarray,
                            heights: Sequence[float]):
    """Project every cell's pillar points into every camera.

    centres [H, W, 2] (x, y) in base_link -> (grid [N, Q, Z, 2] in grid_sample's normalised
    coordinates (-1..1, align_corners=False), valid [N, Q, Z] bool)."""
    pts = centres.reshape(-1, 2)
    q = pts.shape[0]
    grid = np.zeros((len(cams), q, len(heights), 2), np.float32)
    valid = np.zeros((len(cams), q, len(heights)), bool)
    for ci, cam in enumerate(cams):
        for zi, h in enumerate(heights):
            p3 = np.concatenate([pts, np.full((q, 1), float(h))], 1)
            u, v, ok = cam.project(p3)
            # geometry puts pixel centres at +0.5, so u / width is grid_sample's convention
            grid[ci, :, zi, 0] = np.where(ok, 2.0 * u / cam.width - 1.0, 0.0)
            grid[ci, :, zi, 1] = np.where(ok, 2.0 * v / cam.height - 1.0, 0.0)
            valid[ci, :, zi] = ok
    return grid, valid


class PillarAttention(nn.Module):
    """feat [B, N cams, Cin, Hf, Wf] -> BEV [B, C, Hb, Wb] (raster convention of
    autonomy_stack.bev_grid: row 0 = front, column 0 = left)."""

    def __init__(self, cams: Sequence[VirtualCamera], feat_hw, in_ch: int, bev_cfg: Dict,
                 centres: np.ndarray):
        super().__init__()
        C = int(bev_cfg["channels"])
        self.heads = int(bev_cfg["heads"])
        if C % self.heads:
            raise ValueError(f"bev channels {C} not divisible by heads {self.heads}")
        self.C, self.d = C, C // self.heads
        self.points = int(bev_cfg.get("points", 2))
        self.n_cams = len(cams)
        self.bev_hw = tuple(centres.shape[:2])
        heights = list(bev_cfg.get("heights", [0.0, 1.0]))
        self.Z = len(heights)
        grid, valid = pillar_reference_points(cams, centres, heights)
        self.register_buffer("ref", torch.from_numpy(grid), persistent=False)        # [N, Q, Z, 2]
        self.register_buffer("ref_valid", torch.from_numpy(valid), persistent=False)  # [N, Q, Z]
        for c in range(len(cams)):   # the cells camera c sees at some pillar height
            qi = torch.from_numpy(np.nonzero(valid[c].any(1))[0])
            self.register_buffer(f"cam_q_{c}", qi, persistent=False)
        hf, wf = feat_hw
        # offsets are predicted in feature-map cells; this turns them into grid units
        self.register_buffer("cell_to_grid", torch.tensor([2.0 / wf, 2.0 / hf]), persistent=False)
        nf = int(bev_cfg.get("pe_freqs", 6))
        span = max(bev_cfg["x_range"][1] - bev_cfg["x_range"][0],
                   bev_cfg["y_range"][1] - bev_cfg["y_range"][0]) * 2
        pe = fourier(torch.tensor(centres.reshape(-1, 2), dtype=torch.float32), nf, span)
        self.register_buffer("bev_pe", pe, persistent=False)
        self.query_mlp = nn.Sequential(nn.Linear(pe.shape[1], C), nn.ReLU(), nn.Linear(C, C))
        self.value = nn.Conv2d(in_ch, C, 1)
        self.cam_embed = nn.Parameter(torch.zeros(self.n_cams, C))
        self.content = nn.Linear(C, C)
        P, Z, h, N = self.points, self.Z, self.heads, self.n_cams
        self.offsets = nn.Linear(C, h * Z * P * 2)
        self.logits = nn.Linear(C, h * N * Z * P)
        self.null_logit = nn.Parameter(torch.full((h,), -2.0))
        self.null_value = nn.Parameter(torch.zeros(C))
        for lin in (self.offsets, self.logits):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        with torch.no_grad():  # start with points spread around the reference (+-1 cell)
            base = torch.linspace(-1.0, 1.0, P) if P > 1 else torch.zeros(1)
            self.offsets.bias.view(h, Z, P, 2)[..., 1] = base
        self.out = nn.Linear(C, C)
        self.norm1 = nn.LayerNorm(C)
        self.ffn = nn.Sequential(nn.Linear(C, 2 * C), nn.ReLU(), nn.Linear(2 * C, C))
        self.norm2 = nn.LayerNorm(C)

    @property
    def seen_fraction(self) -> float:
        """Share of BEV cells that at least one camera sees (at some pillar height)."""
        return float(self.ref_valid.any(2).any(0).float().mean())

    def _sample(self, v: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """v [B, h, d, Hf, Wf] (one camera); grid [B, h, Qc, K, 2] -> [B, h, d, Qc, K]."""
        B, h, d, Hf, Wf = v.shape
        Qc, K = grid.shape[2:4]
        s = F.grid_sample(v.reshape(B * h, d, Hf, Wf), grid.reshape(B * h, Qc, K, 2),
                          mode="bilinear", padding_mode="zeros", align_corners=False)
        return s.view(B, h, d, Qc, K)

    def forward(self, feat: torch.Tensor, camera_mask: Optional[torch.Tensor] = None):
        B, N, Cin, Hf, Wf = feat.shape
        h, d, Z, P = self.heads, self.d, self.Z, self.points
        Q = self.ref.shape[1]
        v = self.value(feat.flatten(0, 1)).view(B, N, self.C, Hf, Wf)
        v = (v + self.cam_embed.view(1, N, self.C, 1, 1)).view(B, N, h, d, Hf, Wf)
        valid = self.ref_valid[None].expand(B, -1, -1, -1)                 # [B, N, Q, Z]
        if camera_mask is not None:
            valid = valid & camera_mask.bool()[:, :, None, None]
        query = self.query_mlp(self.bev_pe)                                  # [Q, C]
        # Each camera is sampled only at the cells it sees (~1/3 of N x Q for the 8-camera
        # rig); results are scattered back with index_add.
        cams = [(c, getattr(self, f"cam_q_{c}")) for c in range(N)]

        # pass 1: mean of the reference-point features (no offsets)
        acc = feat.new_zeros(B, h, d, Q)
        for c, qi in cams:
            if qi.numel() == 0:
                continue
            g = self.ref[c, qi][None, None].expand(B, h, -1, -1, -1)         # [B, h, Qc, Z, 2]
            w = valid[:, c, qi].to(v.dtype)[:, None, None]                   # [B, 1, 1, Qc, Z]
            # under autocast grid_sample runs in fp32 while acc has the features' dtype
            acc = acc.index_add(3, qi, (self._sample(v[:, c], g) * w).sum(-1).to(acc.dtype))
        cnt = valid.to(v.dtype).sum((1, 3)).clamp_min(1.0)[:, None, None]   # [B, 1, 1, Q]
        content = (acc / cnt).reshape(B, self.C, Q).transpose(1, 2)          # [B, Q, C]
        q2 = query[None] + self.content(content)                             # [B, Q, C]

        # pass 2: deformable multi-head attention around the reference points, one softmax
        # over the valid (camera, height, point) hits of a cell and the null token
        off = self.offsets(q2).view(B, Q, h, Z, P, 2) * self.cell_to_grid
        off = off.permute(0, 2, 1, 3, 4, 5)                                  # [B, h, Q, Z, P, 2]
        lg = self.logits(q2).view(B, Q, h, N, Z, P).permute(0, 2, 1, 3, 4, 5)  # [B, h, Q, N, Z, P]
        vm = valid.permute(0, 2, 1, 3)[:, None, :, :, :, None]               # [B, 1, Q, N, Z, 1]
        lg = lg.masked_fill(~vm, float("-inf")).reshape(B, h, Q, N * Z * P)
        lg = torch.cat([lg, self.null_logit.view(1, h, 1, 1).expand(B, h, Q, 1)], -1)
        a = torch.softmax(lg, -1)
        a_img = a[..., :-1].reshape(B, h, Q, N, Z * P)
        o = a[..., -1][:, :, None] * self.null_value.view(1, h, d, 1)        # [B, h, d, Q]
        for c, qi in cams:
            if qi.numel() == 0:
                continue
            g = (self.ref[c, qi][None, None, :, :, None] + off[:, :, qi]).flatten(3, 4)
            s2 = self._sample(v[:, c], g)                                    # [B, h, d, Qc, ZP]
            # autocast: the einsum runs in fp16/bf16, o (softmax x null value) in fp32
            o = o.index_add(3, qi, torch.einsum("bhdqk,bhqk->bhdq", s2, a_img[:, :, qi, c]).to(o.dtype))
        o = o.reshape(B, self.C, Q).transpose(1, 2)                          # [B, Q, C]
        x = self.norm1(query[None] + self.out(o))
        x = self.norm2(x + self.ffn(x))
        return x.transpose(1, 2).reshape(B, self.C, *self.bev_hw)

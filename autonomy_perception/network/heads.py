"""HydraNet: a shared BEV trunk and independent task heads.

Heads are registered in HEAD_REGISTRY by name; the model config's `heads:` section lists
which to build (name -> kwargs). A head owns its layers, its output decoding and its loss,
so a new head (traffic lights, static objects...) is added by registering a class and a
config entry, without touching the other heads. Each head can be fine-tuned alone (from
cached features, see training/cache_features.py)."""
from __future__ import annotations

from typing import Dict, List, Type

import torch
import torch.nn.functional as F
from torch import nn

HEAD_REGISTRY: Dict[str, Type["Head"]] = {}


def register_head(name: str):
    def deco(cls):
        HEAD_REGISTRY[name] = cls
        cls.head_name = name
        return cls
    return deco


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.n1 = nn.GroupNorm(8 if ch % 8 == 0 else 1, ch)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.n2 = nn.GroupNorm(8 if ch % 8 == 0 else 1, ch)

    def forward(self, x):
        y = F.relu(self.n1(self.c1(x)))
        return F.relu(x + self.n2(self.c2(y)))


class Trunk(nn.Module):
    def __init__(self, in_ch: int, ch: int, blocks: int):
        super().__init__()
        self.inp = nn.Sequential(nn.Conv2d(in_ch, ch, 1), nn.ReLU())
        self.blocks = nn.Sequential(*[ResBlock(ch) for _ in range(blocks)])

    def forward(self, x):
        return self.blocks(self.inp(x))


class Head(nn.Module):
    head_name = "head"

    def forward(self, x) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    def loss(self, out: Dict[str, torch.Tensor], tgt: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        raise NotImplementedError


def _tower(in_ch: int, out_ch: int, mid: int = 32) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, mid, 3, padding=1), nn.ReLU(), nn.Conv2d(mid, out_ch, 1))


@register_head("segmentation")
class SegmentationHead(Head):
    """Per-cell logits of drivable area, lane lines, road edges, curbs (multi-label)."""

    def __init__(self, in_ch: int, classes: List[str], pos_weight: float = 3.0):
        super().__init__()
        self.classes = list(classes)
        self.net = _tower(in_ch, len(classes))
        self.pos_weight = pos_weight

    def forward(self, x):
        return {"seg": self.net(x)}

    def loss(self, out, tgt):
        logit, y = out["seg"], tgt["seg"]
        w = tgt.get("seg_valid")
        pw = torch.full((logit.shape[1], 1, 1), self.pos_weight, device=logit.device)
        pw[0] = 1.0  # drivable area is not thin
        bce = F.binary_cross_entropy_with_logits(logit, y, pos_weight=pw, reduction="none")
        if w is not None:
            bce = bce * w
        p = torch.sigmoid(logit)
        inter = (p * y).sum((0, 2, 3))
        dice = 1.0 - (2 * inter + 1.0) / (p.sum((0, 2, 3)) + y.sum((0, 2, 3)) + 1.0)
        return {"seg_bce": bce.mean(), "seg_dice": dice.mean()}


def focal_heatmap_loss(logit: torch.Tensor, heat: torch.Tensor, ignore=None,
                       alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet penalty-reduced focal loss on a Gaussian-splatted centre heatmap."""
    p = torch.sigmoid(logit).clamp(1e-4, 1 - 1e-4)
    pos = (heat >= 0.999).float()
    neg = 1.0 - pos
    if ignore is not None:
        neg = neg * (1.0 - ignore)
    pos_l = -torch.log(p) * (1 - p) ** alpha * pos
    neg_l = -torch.log(1 - p) * p ** alpha * (1 - heat) ** beta * neg
    n = pos.sum().clamp_min(1.0)
    return (pos_l.sum() + neg_l.sum()) / n


@register_head("detection")
class DetectionHead(Head):
    """One-stage detection on the BEV raster (YOLO/CenterNet-like): per cell an objectness
    logit, class logits, centre offset (m, from the cell centre), log size (l, w, h),
    heading (sin, cos), velocity (vx, vy in the ego frame, m/s, over ground)."""

    def __init__(self, in_ch: int, classes: List[str]):
        super().__init__()
        self.classes = list(classes)
        self.obj = _tower(in_ch, 1)
        nn.init.constant_(self.obj[-1].bias, -2.19)  # prior 0.1
        self.cls = _tower(in_ch, len(classes))
        self.box = _tower(in_ch, 2 + 3 + 2)
        self.vel = _tower(in_ch, 2)

    def forward(self, x):
        b = self.box(x)
        return {"obj": self.obj(x), "cls": self.cls(x), "offset": b[:, 0:2],
                "size": b[:, 2:5], "heading": b[:, 5:7], "vel": self.vel(x)}

    def loss(self, out, tgt):
        heat, ign = tgt["obj_heat"], tgt.get("obj_ignore")
        l_obj = focal_heatmap_loss(out["obj"], heat, ign)
        m = tgt["reg_mask"]                                   # [B, 1, H, W]
        n = m.sum().clamp_min(1.0)

        def l1(a, b):
            return (F.smooth_l1_loss(a, b, reduction="none", beta=0.1) * m).sum() / n

        cls_t = tgt["cls"]                                    # [B, H, W] long, -1 = none
        ce = F.cross_entropy(out["cls"], cls_t.clamp_min(0), reduction="none")
        l_cls = (ce * (cls_t >= 0).float()).sum() / (cls_t >= 0).float().sum().clamp_min(1.0)
        vm = tgt.get("vel_mask", m)
        nv = vm.sum().clamp_min(1.0)
        l_vel = (F.smooth_l1_loss(out["vel"], tgt["vel"], reduction="none", beta=0.5) * vm).sum() / nv
        return {"det_obj": l_obj, "det_cls": 0.5 * l_cls, "det_offset": l1(out["offset"], tgt["offset"]),
                "det_size": l1(out["size"], tgt["size"]), "det_heading": l1(out["heading"], tgt["heading"]),
                "det_vel": l_vel}


def build_heads(in_ch: int, cfg: Dict[str, Dict]) -> nn.ModuleDict:
    heads = nn.ModuleDict()
    for name, kw in cfg.items():
        if name not in HEAD_REGISTRY:
            raise KeyError(f"unknown head '{name}' (registered: {sorted(HEAD_REGISTRY)})")
        heads[name] = HEAD_REGISTRY[name](in_ch, **(kw or {}))
    return heads

"""The BEV/video perception network and its inference API.

    images [B, N cams, 3, H, W] (rectified, virtual cameras)
      -> RegNet (shared across cameras) -> BiFPN (multi-scale)          `encode`
      -> image-to-BEV transformer (one BiFPN level)                      `to_bev`
      -> [BEV | kinematics | pos. enc.] -> time queue + space queue
      -> fusion of the warped queue entries -> spatial RNN (ConvGRU)     `temporal`
      -> HydraNet trunk -> heads (segmentation, detection, ...)          `decode`

Single-frame mode (`video=False`) is the same network with the video memory cut: the queues
and the RNN state are reset at every step, so only the current frame is seen.

The one inference wrapper (node, bench, evaluation tools) is
autonomy_perception.inference_engine.InferenceEngine (`from_checkpoint`, `step`, `run`,
`grid`, `virtual_cameras`); this module holds the network and its checkpoints."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autonomy_stack.bev_grid import BEVGrid

from . import ego_motion
from .bev_transformer import ImageToBEV
from .bifpn import BiFPN
from .config import arch_diff, model_config
from .feature_queue import FeatureQueues, Queue
from .geometry import rig_from_config
from .heads import Trunk, build_heads
from .pillar_attention import PillarAttention
from .regnet import RegNet
from .spatial_rnn import SpatialRNN

CHECKPOINT_FORMAT = "autonomy_perception.bev_video/1"
N_KIN = 3  # speed, accel, yaw_rate


class CheckpointError(RuntimeError):
    pass


@dataclass
class VideoState:
    pose: torch.Tensor            # [B, 3] odom pose integrated from kinematics
    h: torch.Tensor               # [B, hidden, H, W] spatial RNN lattice (current ego frame)
    tq: Queue
    sq: Queue

    def detach(self) -> "VideoState":
        d = lambda q: Queue(q.feats.detach(), q.poses.detach(), q.valid, q.acc.detach())
        return VideoState(self.pose.detach(), self.h.detach(), d(self.tq), d(self.sq))


class PerceptionNet(nn.Module):
    def __init__(self, cfg: Dict):
        super().__init__()
        cfg = model_config(cfg)
        self.cfg = cfg
        H, W = cfg["input_hw"]
        self.cams = rig_from_config(cfg)
        self.n_cams = len(self.cams)
        self.backbone = RegNet.from_config(cfg["regnet"])
        levels = cfg["fpn"]["levels"]
        if max(levels) >= len(self.backbone.widths):
            raise ValueError(f"fpn levels {levels} but RegNet has {len(self.backbone.widths)} stages")
        self.levels = levels
        C = cfg["fpn"]["channels"]
        self.fpn = BiFPN([self.backbone.widths[i] for i in levels], C, cfg["fpn"]["layers"])
        bc = cfg["bev"]
        li = bc["feature_level"]
        stride = self.backbone.strides[levels[li]]
        self.bev_level = li
        # all BiFPN levels are merged at the resolution of `feature_level` before the BEV
        # attention (coarse levels bring context, the fine level position)
        self.level_merge = nn.Sequential(nn.Conv2d(C * len(levels), C, 1, bias=False),
                                         nn.BatchNorm2d(C), nn.SiLU())
        self.grid = (list(bc["x_range"]), list(bc["y_range"]), float(bc["resolution"]))
        self.bev_grid = BEVGrid(*self.grid)
        centres = self.bev_grid.cell_centres()
        if bc["attention"] == "pillars":
            # camera geometry given: pillar reference points sampled in every camera
            self.img2bev = PillarAttention(self.cams, (H // stride, W // stride), C, bc, centres)
        elif bc["attention"] == "columns":
            # geometry learned: attention over the tokens of the image columns that see a cell
            self.img2bev = ImageToBEV(self.cams, (H // stride, W // stride), stride, C, bc)
        else:
            raise ValueError(f"bev.attention must be 'pillars' or 'columns', got {bc['attention']!r}")
        self.bev_hw = self.img2bev.bev_hw
        Cb = bc["channels"]
        qc = cfg["queue"]
        self.queues = FeatureQueues(qc["time_period"], qc["time_length"], qc["space_distance"],
                                    qc["space_length"])
        self.entry_ch = Cb + N_KIN + 4
        n_entries = qc["time_length"] + qc["space_length"]
        hid = cfg["video"]["hidden"]
        self.video_enabled = bool(cfg["video"]["enabled"])
        if self.video_enabled:
            self.fuse = nn.Sequential(nn.Conv2d(n_entries * (self.entry_ch + 1), hid, 1), nn.ReLU(),
                                      nn.Conv2d(hid, hid, 3, padding=1), nn.ReLU())
            self.rnn = SpatialRNN(hid, hid, *self.grid)
            trunk_in = hid + Cb
        else:
            trunk_in = Cb
        self.trunk = Trunk(trunk_in, cfg["trunk"]["channels"], cfg["trunk"]["blocks"])
        self.heads = build_heads(cfg["trunk"]["channels"], cfg["heads"])
        self.register_buffer("img_mean", torch.tensor([0.45, 0.45, 0.45]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("img_std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1), persistent=False)
        cc = torch.tensor(centres, dtype=torch.float32)
        span = max(self.grid[0][1] - self.grid[0][0], self.grid[1][1] - self.grid[1][0])
        pe = torch.cat([torch.sin(cc * np.pi / span), torch.cos(cc * np.pi / span)], -1)
        self.register_buffer("pe_planes", pe.permute(2, 0, 1).contiguous(), persistent=False)

    # ------------------------------------------------------------------ blocks
    def encode(self, images: torch.Tensor) -> List[torch.Tensor]:
        """images [B, N, 3, H, W] float 0..1 -> BiFPN levels, each [B, N, C, h, w]."""
        B, N = images.shape[:2]
        x = (images.flatten(0, 1) - self.img_mean) / self.img_std
        feats = self.backbone(x)
        fp = self.fpn([feats[i] for i in self.levels])
        return [f.view(B, N, *f.shape[1:]) for f in fp]

    def to_bev(self, feats: List[torch.Tensor], camera_mask: Optional[torch.Tensor]) -> torch.Tensor:
        ref = feats[self.bev_level]
        B, N = ref.shape[:2]
        size = ref.shape[-2:]
        ups = [f.flatten(0, 1) if f.shape[-2:] == size else
               F.interpolate(f.flatten(0, 1), size=size, mode="bilinear", align_corners=False)
               for f in feats]
        f = self.level_merge(torch.cat(ups, 1)).view(B, N, -1, *size)
        if camera_mask is not None:
            f = f * camera_mask.to(f.dtype).view(*camera_mask.shape, 1, 1, 1)
        return self.img2bev(f, camera_mask)

    def init_state(self, B: int, device=None, dtype=torch.float32) -> VideoState:
        device = device or self.pe_planes.device
        H, W = self.bev_hw
        hid = self.cfg["video"]["hidden"]
        tq, sq = self.queues.init(B, self.entry_ch, H, W, device, dtype)
        return VideoState(torch.zeros(B, 3, device=device, dtype=dtype),
                          torch.zeros(B, hid, H, W, device=device, dtype=dtype), tq, sq)

    def temporal(self, bev: torch.Tensor, kin: torch.Tensor, dt: torch.Tensor,
                 state: Optional[VideoState], video: bool = True):
        """bev [B, C, H, W]; kin [B, 3] (speed m/s, accel m/s^2, yaw_rate rad/s); dt [B] s
        since the previous step. Returns (trunk input, new state, extras)."""
        if not self.video_enabled:
            return bev, state, {}
        B = bev.shape[0]
        if state is None or not video:
            state = self.init_state(B, bev.device, bev.dtype)
            rel = torch.zeros(B, 3, device=bev.device, dtype=bev.dtype)
            dist = torch.zeros(B, device=bev.device, dtype=bev.dtype)
        else:
            rel = ego_motion.integrate(kin[:, 0], kin[:, 2], dt)
            dist = kin[:, 0] * dt
        pose = ego_motion.compose(state.pose, rel)
        H, W = self.bev_hw
        kin_planes = torch.stack([kin[:, 0] / 10.0, kin[:, 1] / 3.0, kin[:, 2]], 1)
        entry = torch.cat([bev, kin_planes[:, :, None, None].expand(B, N_KIN, H, W),
                           self.pe_planes[None].expand(B, -1, -1, -1)], 1)
        tq, sq = self.queues.update(state.tq, state.sq, entry, pose, dt, dist)
        parts = []
        for q in (tq, sq):
            r = self.queues.read(q, pose, *self.grid)
            L = q.valid.shape[0]
            vm = q.valid.t().to(bev.dtype)[:, :, None, None].expand(B, L, H, W)
            parts += [r, vm]
        x = self.fuse(torch.cat(parts, 1))
        h, z = self.rnn(x, state.h, rel)
        return torch.cat([h, bev], 1), VideoState(pose, h, tq, sq), {"write_gate": z}

    def decode(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        t = self.trunk(x)
        out = {}
        for name, head in self.heads.items():
            out.update(head(t))
        return out

    def forward_step(self, images=None, camera_mask=None, kin=None, dt=None, state=None,
                     video: bool = True, feats: Optional[List[torch.Tensor]] = None):
        """One frame for a batch. Either `images` or precomputed `feats` (feature cache)."""
        if feats is None:
            feats = self.encode(images)
        B = feats[0].shape[0]
        dev = feats[0].device
        if camera_mask is None:
            camera_mask = torch.ones(B, self.n_cams, dtype=torch.bool, device=dev)
        if kin is None:
            kin = torch.zeros(B, N_KIN, device=dev)
        if dt is None:
            dt = torch.zeros(B, device=dev)
        bev = self.to_bev(feats, camera_mask)
        x, state, extra = self.temporal(bev, kin, dt, state, video)
        out = self.decode(x)
        out.update(extra)
        return out, state

    def forward(self, images=None, kin=None, dt=None, state=None, video: bool = True,
                camera_mask=None, feats=None):
        """A clip (the DistributedDataParallel entry point): images [B, L, N, 3, H, W] float
        0..1 (or feats: list over levels of [B, L, N, C, h, w]), kin [B, L, 3], dt [B, L].
        Returns (list of per-frame output dicts, final state)."""
        L = (images if images is not None else feats[0]).shape[1]
        outs = []
        for t in range(L):
            cm = None if camera_mask is None else camera_mask[:, t]
            if feats is not None:
                o, state = self.forward_step(None, cm, kin[:, t], dt[:, t], state, video,
                                             feats=[f[:, t] for f in feats])
            else:
                o, state = self.forward_step(images[:, t], cm, kin[:, t], dt[:, t], state, video)
            outs.append(o)
        return outs, state

    def losses(self, out, tgt) -> Dict[str, torch.Tensor]:
        ls = {}
        for name, head in self.heads.items():
            ls.update(head.loss(out, tgt))
        return ls

    # ------------------------------------------------------------------ checkpoints
    def save(self, path, **extra):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"format": CHECKPOINT_FORMAT, "config": self.cfg,
                    "state_dict": self.state_dict(), **extra}, path)


def load_checkpoint(path, device="cpu", expect_config: Optional[Dict] = None):
    """-> (PerceptionNet, checkpoint dict). CheckpointError on missing file, wrong format,
    config mismatch (lists the differing keys) or incompatible weights."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"perception checkpoint not found: {p}")
    try:
        ck = torch.load(p, map_location=device, weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise CheckpointError(f"cannot read perception checkpoint {p}: {e}") from e
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{p} is not a {CHECKPOINT_FORMAT} checkpoint "
                              f"(format={ck.get('format') if isinstance(ck, dict) else type(ck)})")
    cfg = ck["config"]
    if expect_config is not None:
        diffs = arch_diff(model_config(expect_config), cfg)
        if diffs:
            raise CheckpointError(f"checkpoint {p} was trained with a different model config: "
                                  + "; ".join(diffs[:8]))
    net = PerceptionNet(cfg)
    missing, unexpected = net.load_state_dict(ck["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {p} does not match the network: missing "
                              f"{missing[:5]}, unexpected {unexpected[:5]}")
    return net.to(device).eval(), ck


def outputs_to_numpy(out: Dict[str, torch.Tensor]) -> Dict[str, np.ndarray]:
    """Raw head outputs of batch element 0 -> numpy rasters: probabilities for seg/obj
    (sigmoid) and cls (softmax over classes), the regression maps as they are."""
    res = {}
    for k, v in out.items():
        v = v[0].float()
        if k in ("seg", "obj"):
            v = torch.sigmoid(v)
        elif k == "cls":
            v = torch.softmax(v, 0)
        res[k] = v.cpu().numpy()
    if "obj" in res:
        res["obj"] = res["obj"][0]
    return res

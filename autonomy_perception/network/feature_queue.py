"""Feature queues of the video module.

Entries are BEV feature maps concatenated with kinematics planes (speed, acceleration, yaw
rate) and positional-encoding planes, stored with the odom pose (integrated from
kinematics) at which they were pushed:
* the *time-based* queue pushes every `time_period` seconds of sensor time (~27 ms, one
  camera frame at 36 Hz);
* the *space-based* queue pushes every `space_distance` metres travelled, so it does not
  push while the car stands still (at a red light it still holds the lane markings and
  signs seen `space_length * space_distance` metres earlier).
The very first frame after a reset is pushed into both. Everything is functional (new
tensors, no in-place writes) so gradients flow through the queue in training, with a per-
sample push decision (samples of a batch move differently). `read` warps every entry into
the current ego frame."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from .ego_motion import relative, warp_bev


@dataclass
class Queue:
    feats: torch.Tensor    # [L, B, C, H, W]
    poses: torch.Tensor    # [L, B, 3]
    valid: torch.Tensor    # [L, B] bool
    acc: torch.Tensor      # [B] time (s) or distance (m) accumulated since the last push


def empty_queue(length: int, B: int, C: int, H: int, W: int, device, dtype) -> Queue:
    return Queue(torch.zeros(length, B, C, H, W, device=device, dtype=dtype),
                 torch.zeros(length, B, 3, device=device, dtype=dtype),
                 torch.zeros(length, B, dtype=torch.bool, device=device),
                 torch.zeros(B, device=device, dtype=dtype))


def push_where(q: Queue, push: torch.Tensor, feat: torch.Tensor, pose: torch.Tensor) -> Queue:
    """Push (feat, pose) into the samples where push[b] is True (newest at index 0)."""
    pf = push.view(1, -1, 1, 1, 1)
    feats = torch.where(pf, torch.cat([feat[None], q.feats[:-1]], 0), q.feats)
    poses = torch.where(push.view(1, -1, 1), torch.cat([pose[None], q.poses[:-1]], 0), q.poses)
    valid = torch.where(push.view(1, -1),
                        torch.cat([torch.ones_like(q.valid[:1]), q.valid[:-1]], 0), q.valid)
    return Queue(feats, poses, valid, q.acc)


class FeatureQueues:
    """Stateless policy object; the queue tensors live in the model's video state."""

    def __init__(self, time_period: float, time_length: int, space_distance: float,
                 space_length: int):
        if time_length < 1 or space_length < 1 or time_period <= 0 or space_distance <= 0:
            raise ValueError("queue lengths must be >= 1, period and distance > 0")
        self.time_period = float(time_period)
        self.time_length = int(time_length)
        self.space_distance = float(space_distance)
        self.space_length = int(space_length)

    def init(self, B, C, H, W, device, dtype) -> Tuple[Queue, Queue]:
        return (empty_queue(self.time_length, B, C, H, W, device, dtype),
                empty_queue(self.space_length, B, C, H, W, device, dtype))

    def update(self, tq: Queue, sq: Queue, entry: torch.Tensor, pose: torch.Tensor,
               dt: torch.Tensor, distance: torch.Tensor) -> Tuple[Queue, Queue]:
        """entry [B, C, H, W] at odom pose [B, 3]; dt [B] seconds and distance [B] metres
        travelled since the previous update."""
        first_t = ~tq.valid[0]
        t_acc = tq.acc + dt
        push_t = first_t | (t_acc >= self.time_period - 1e-6)
        tq = push_where(tq, push_t, entry, pose)
        tq.acc = torch.where(push_t & ~first_t, torch.remainder(t_acc, self.time_period),
                             torch.where(first_t, torch.zeros_like(t_acc), t_acc))
        first_s = ~sq.valid[0]
        s_acc = sq.acc + distance.abs()
        push_s = first_s | (s_acc >= self.space_distance - 1e-6)
        sq = push_where(sq, push_s, entry, pose)
        sq.acc = torch.where(push_s & ~first_s, s_acc - self.space_distance,
                             torch.where(first_s, torch.zeros_like(s_acc), s_acc))
        return tq, sq

    @staticmethod
    def read(q: Queue, pose: torch.Tensor, x_range, y_range, res) -> torch.Tensor:
        """All entries warped to the current ego frame, zeroed where invalid:
        [B, L * C, H, W]."""
        L, B, C, H, W = q.feats.shape
        rel = relative(q.poses.reshape(L * B, 3), pose.repeat(L, 1))
        w = warp_bev(q.feats.reshape(L * B, C, H, W), rel, x_range, y_range, res)
        w = w * q.valid.reshape(L * B, 1, 1, 1).to(w.dtype)
        return w.view(L, B, C, H, W).permute(1, 0, 2, 3, 4).reshape(B, L * C, H, W)

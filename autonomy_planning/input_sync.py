"""Pairs each perception frame with the odometry (and road) of its own stamp, for planning
once per frame (`trigger: objects`).

Why: objects, road and odometry arrive on three topics, and a node's executor takes
ready messages in its own order, not in the order they were sent. Planning on "the latest
odometry" when the objects arrive then plans from the previous step's state in one run and
from this step's in another: lockstep runs with the same seed drifted apart by metres.
Here a frame is planned when the odometry at (or after) its stamp is there (the state at
the frame's stamp: the exact one, else the newest before it) and, with `sync_road`, the road
of the same stamp (perception publishes both per frame); after `wait_s` of wall time
without them it is planned with what is there, flagged late (a real vehicle's odometry
does not share the cameras' stamps exactly, and a lost message must not stall planning).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Deque, List, Optional, Sequence, Tuple

from autonomy_stack.vector_space import EgoState


@dataclass
class SyncedFrame:
    stamp: float                 # the objects' stamp: the plan's time origin
    objects: list
    ego: EgoState
    road: Optional[list]
    late: bool = False           # planned after `wait_s` without a matching input
    missing: List[str] = field(default_factory=list)


class PlanInputSync:
    def __init__(self, wait_s: float = 0.2, sync_road: bool = False,
                 tolerance: float = 1e-4, keep: int = 64):
        self.wait_s, self.sync_road, self.tol = float(wait_s), bool(sync_road), float(tolerance)
        self.odoms: Deque[EgoState] = deque(maxlen=keep)
        self.roads: Deque[Tuple[float, list]] = deque(maxlen=8)
        self.pending: Optional[Tuple[float, list, float]] = None   # (stamp, objects, wall)
        self.superseded = 0      # frames replaced by a newer one before they could be planned
        self.late = 0

    def add_odom(self, ego: EgoState) -> None:
        if self.odoms and ego.stamp < self.odoms[-1].stamp - self.tol:
            self.odoms.clear()   # time went back (a replay restarted): old states are void
        self.odoms.append(ego)

    def add_road(self, stamp: float, lines: Sequence) -> None:
        self.roads.append((float(stamp), list(lines)))

    def add_objects(self, stamp: float, objects: Sequence, wall_now: float) -> None:
        if self.pending is not None:
            self.superseded += 1
        self.pending = (float(stamp), list(objects), float(wall_now))

    def latest_road(self) -> Optional[list]:
        return self.roads[-1][1] if self.roads else None

    def _ego_at(self, stamp: float) -> Tuple[Optional[EgoState], bool]:
        """(state at `stamp`: exact, else newest before, else oldest; whether the odometry
        has reached the stamp)."""
        if not self.odoms:
            return None, False
        before = [e for e in self.odoms if e.stamp <= stamp + self.tol]
        reached = self.odoms[-1].stamp >= stamp - self.tol
        return (before[-1] if before else self.odoms[0]), reached

    def _road_at(self, stamp: float) -> Optional[list]:
        for s, lines in reversed(self.roads):
            if abs(s - stamp) <= self.tol:
                return lines
        return None

    def ready(self, wall_now: float) -> Optional[SyncedFrame]:
        """The pending frame when its inputs are there (or `wait_s` passed), else None."""
        if self.pending is None:
            return None
        stamp, objects, t_wall = self.pending
        ego, reached = self._ego_at(stamp)
        road = self._road_at(stamp) if self.sync_road else self.latest_road()
        missing = ([] if reached else ["odometry at the frame's stamp"]) + (
            ["road of the frame's stamp"] if self.sync_road and road is None else [])
        timed_out = wall_now - t_wall >= self.wait_s
        if (missing and not timed_out) or ego is None:
            return None
        if road is None:
            road = self.latest_road()
        self.pending = None
        if missing:
            self.late += 1
        return SyncedFrame(stamp, objects, ego, road, late=bool(missing), missing=missing)

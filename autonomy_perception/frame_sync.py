"""Approximate time synchroniser for the camera rig (no rclpy).

message_filters is not installable from PyPI, and its ApproximateTime policy stalls when
one camera dies. This one:
  * keeps a bounded buffer per camera (never queues unboundedly);
  * a frame is the set of images whose stamps lie within `tolerance` of a reference stamp;
    it is *complete* when every live camera contributed;
  * a camera that has not delivered anything for `dead_after` seconds (receive clock) is
    declared dead: frames complete without it and it is masked for the network;
  * `pop_newest()` returns the newest complete frame and counts older complete/partial
    frames it discards as skipped (when the network is slower than the cameras).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple


@dataclass
class Frame:
    stamp: float                              # reference stamp (s): the newest image stamp
    images: Dict[str, Any]                    # camera -> payload (None if masked)
    mask: List[bool]                          # per camera in rig order: True = present
    receive_times: Dict[str, float] = field(default_factory=dict)

    @property
    def missing(self) -> List[str]:
        return [c for c, v in self.images.items() if v is None]


class FrameSynchronizer:
    def __init__(self, cameras: Sequence[str], tolerance: float = 0.005, dead_after: float = 0.5,
                 buffer_size: int = 4):
        self.cameras = list(cameras)
        self.tolerance = float(tolerance)
        self.dead_after = float(dead_after)
        self.buffers: Dict[str, Deque[Tuple[float, float, Any]]] = {
            c: deque(maxlen=buffer_size) for c in self.cameras}
        self.last_receive: Dict[str, Optional[float]] = {c: None for c in self.cameras}
        self.last_emitted_stamp = float("-inf")
        self.skipped = 0            # frames discarded because a newer one was complete
        self.out_of_order = 0       # images older than the last emitted frame
        self.started_at: Optional[float] = None

    def add(self, camera: str, stamp: float, payload: Any, now: float) -> bool:
        """Buffer one image. Returns False (and counts it) if it is older than the last
        emitted frame (out-of-order / late)."""
        if self.started_at is None:
            self.started_at = now
        self.last_receive[camera] = now
        if stamp <= self.last_emitted_stamp + self.tolerance:
            self.out_of_order += 1
            return False
        buf = self.buffers[camera]
        if buf and stamp < buf[-1][0]:
            self.out_of_order += 1       # keep it, the buffer stays sorted
            items = sorted(list(buf) + [(stamp, now, payload)], key=lambda x: x[0])
            buf.clear()
            buf.extend(items[-buf.maxlen:])
        else:
            buf.append((stamp, now, payload))
        return True

    def dead_cameras(self, now: float) -> List[str]:
        dead = []
        for c in self.cameras:
            last = self.last_receive[c]
            ref = last if last is not None else self.started_at
            if ref is not None and now - ref > self.dead_after:
                dead.append(c)
        return dead

    def pop_newest(self, now: float) -> Optional[Frame]:
        """Newest complete frame (live cameras all present within tolerance) or None."""
        dead = set(self.dead_cameras(now))
        live = [c for c in self.cameras if c not in dead]
        if not live:
            return None
        # candidate reference stamps: every buffered stamp of a live camera, newest first
        candidates = sorted({s for c in live for s, _, _ in self.buffers[c]}, reverse=True)
        for ref in candidates:
            chosen: Dict[str, Tuple[float, float, Any]] = {}
            for c in live:
                best = None
                for item in self.buffers[c]:
                    d = abs(item[0] - ref)
                    if d <= self.tolerance and (best is None or d < abs(best[0] - ref)):
                        best = item
                if best is None:
                    break
                chosen[c] = best
            else:
                return self._emit(ref, chosen)
        return None

    def _emit(self, ref: float, chosen: Dict[str, Tuple[float, float, Any]]) -> Frame:
        stamp = max(item[0] for item in chosen.values())
        # every buffered image at or before this frame is consumed; the distinct older
        # stamps among them were frames we skip
        older = set()
        for c in self.cameras:
            buf = self.buffers[c]
            while buf and buf[0][0] <= stamp + self.tolerance:
                s, _, _ = buf.popleft()
                if abs(s - ref) > self.tolerance:
                    older.add(round(s / max(self.tolerance, 1e-6)))
        self.skipped += len(older)
        self.last_emitted_stamp = stamp
        images = {c: (chosen[c][2] if c in chosen else None) for c in self.cameras}
        return Frame(stamp=stamp, images=images, mask=[c in chosen for c in self.cameras],
                     receive_times={c: chosen[c][1] for c in chosen})

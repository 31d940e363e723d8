"""Sliding-window message-rate bookkeeping (pure Python; used by the stack monitor and
the nodes' diagnostics)."""
from __future__ import annotations

from collections import deque
from typing import Deque, Optional


class RateMeter:
    def __init__(self, window_s: float = 2.0):
        self.window_s = window_s
        self.times: Deque[float] = deque()
        self.count = 0
        self.bytes = 0

    def tick(self, now: float, nbytes: int = 0) -> None:
        self.times.append(now)
        self.count += 1
        self.bytes += nbytes
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self.times and now - self.times[0] > self.window_s:
            self.times.popleft()

    def rate(self, now: float) -> float:
        self._trim(now)
        if len(self.times) < 2:
            return 0.0
        span = self.times[-1] - self.times[0]
        return (len(self.times) - 1) / span if span > 0 else 0.0

    def age(self, now: float) -> Optional[float]:
        return now - self.times[-1] if self.times else None

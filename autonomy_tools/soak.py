"""Soak test of a running graph (issue 15, `bench/run soak`): start a graph mode through the
runner, sample every node process's resident memory and CPU from /proc at a fixed wall
period, count deaths and the supervisor's events, and report the memory slope per node.

The slope is a least-squares line through the samples after the warm-up (MB per minute of
wall time): what a leak looks like at this time scale, insensitive to one-off allocations.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def read_rss_mb(pid: int) -> Optional[float]:
    """Resident set size of `pid` in MB (VmRSS of /proc/<pid>/status); None when gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def read_cpu_s(pid: int) -> Optional[float]:
    """User + system CPU seconds of `pid` (/proc/<pid>/stat fields 14 and 15); None when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name (field 2) may contain spaces: split after its closing parenthesis
    rest = raw[raw.rfind(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / CLOCK_TICKS


def slope_per_minute(t_s: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of `values` against time, per minute (nan with < 2 samples)."""
    t = np.asarray(t_s, float)
    v = np.asarray(values, float)
    if len(t) < 2 or np.ptp(t) <= 0:
        return float("nan")
    return float(np.polyfit(t / 60.0, v, 1)[0])


@dataclass
class NodeSamples:
    key: str
    pid: int
    t: List[float] = field(default_factory=list)        # s since the soak started
    rss_mb: List[float] = field(default_factory=list)
    cpu_s: List[float] = field(default_factory=list)
    died_at: Optional[float] = None
    exit_code: Optional[int] = None

    def summary(self, warmup_s: float) -> Dict[str, float]:
        t = np.asarray(self.t, float)
        keep = t >= warmup_s
        rss = np.asarray(self.rss_mb, float)
        cpu = np.asarray(self.cpu_s, float)
        span = float(t[-1] - t[0]) if len(t) > 1 else 0.0
        return {
            "rss_mb_first": round(float(rss[0]), 1) if len(rss) else float("nan"),
            "rss_mb_after_warmup": round(float(rss[keep][0]), 1) if keep.any() else float("nan"),
            "rss_mb_last": round(float(rss[-1]), 1) if len(rss) else float("nan"),
            "rss_slope_mb_per_min": round(slope_per_minute(t[keep], rss[keep]), 3),
            "cpu_pct_mean": round(100.0 * float(cpu[-1] - cpu[0]) / span, 1) if span > 0 else float("nan"),
            "samples": int(len(t)),
            "died": self.died_at is not None,
        }


class ProcessSampler:
    """Samples a set of (key, pid) processes every `period` s in a background thread."""

    def __init__(self, processes: Sequence[Tuple[str, "object"]], period: float = 10.0):
        # processes: (key, subprocess.Popen) -- poll() tells a death and its exit code
        self.procs = list(processes)
        self.period = period
        self.nodes = {k: NodeSamples(k, p.pid) for k, p in self.procs}
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "ProcessSampler":
        self.sample()
        self._thread.start()
        return self

    def sample(self) -> None:
        now = time.monotonic() - self.t0
        for key, proc in self.procs:
            ns = self.nodes[key]
            if ns.died_at is not None:
                continue
            code = proc.poll()
            rss, cpu = read_rss_mb(proc.pid), read_cpu_s(proc.pid)
            if code is not None or rss is None or cpu is None:
                ns.died_at, ns.exit_code = now, code
                continue
            ns.t.append(now)
            ns.rss_mb.append(rss)
            ns.cpu_s.append(cpu)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.period + 1.0)
        self.sample()

    def deaths(self) -> List[Dict[str, object]]:
        return [{"node": n.key, "at_s": round(n.died_at, 1), "exit_code": n.exit_code}
                for n in self.nodes.values() if n.died_at is not None]

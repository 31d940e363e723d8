"""The stack's own health from every node's diagnostics (ROS-free; the stack monitor node
feeds it). Each status name (e.g. "supervisor", "planning: planner") keeps its latest
report; the stack is ERROR while any node's latest report is ERROR and younger than
`stale_after_s`. A report that stops being refreshed does not keep the stack in ERROR for
ever: past `stale_after_s` it counts as WARN ("stale"), so a dead reporter is still seen."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

OK, WARN, ERROR, STALE = 0, 1, 2, 3          # diagnostic_msgs/DiagnosticStatus levels
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}


@dataclass
class Report:
    name: str
    level: int
    message: str
    received: float          # steady-clock seconds


@dataclass
class StackHealth:
    level: int
    message: str
    errors: List[str]        # names whose latest fresh report is ERROR
    stale: List[str]         # names whose latest ERROR/WARN report is older than the limit


class HealthAggregator:
    """Latest report per status name -> one stack-level status."""

    def __init__(self, stale_after_s: float, own_prefix: str = "stack_monitor"):
        self.stale_after_s = float(stale_after_s)
        self.own_prefix = own_prefix
        self.reports: Dict[str, Report] = {}

    def update(self, statuses: Iterable[Tuple[str, int, str]], now: float) -> None:
        """statuses: (name, level, message) of one /diagnostics message; the monitor's own
        statuses are left out (it would otherwise latch on its own summary)."""
        for name, level, message in statuses:
            if name.startswith(self.own_prefix):
                continue
            self.reports[name] = Report(name, int(level), message, now)

    def health(self, now: float, own: Iterable[Tuple[str, int, str]] = ()) -> StackHealth:
        """The stack's status at `now`; `own` adds the monitor's own checks (topics)."""
        errors, warns, stale = [], [], []       # (name, text)
        for r in sorted(self.reports.values(), key=lambda r: r.name):
            age = now - r.received
            if r.level >= WARN and age > self.stale_after_s:
                stale.append((r.name, f"stale: last {LEVEL_NAMES[r.level]} '{r.message}' "
                                      f"{age:.1f} s ago, no report since"))
            elif r.level >= ERROR:
                errors.append((r.name, r.message))
            elif r.level == WARN:
                warns.append((r.name, r.message))
        for name, level, message in own:
            if level >= ERROR:
                errors.append((name, message))
            elif level == WARN:
                warns.append((name, message))
        if errors:
            level, parts = ERROR, errors
        elif warns or stale:
            level, parts = WARN, warns + stale
        else:
            level, parts = OK, []
        message = "ok" if not parts else f"{LEVEL_NAMES[level]} from " + "; ".join(
            f"{n}: {t}" for n, t in parts)
        return StackHealth(level, message, [n for n, _ in errors], [n for n, _ in stale])

    def level_of(self, name: str) -> Optional[int]:
        r = self.reports.get(name)
        return None if r is None else r.level

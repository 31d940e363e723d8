"""Input watchdog of the controller (no rclpy).

Static checks run when a trajectory arrives (`check_trajectory`); dynamic checks (age of
the trajectory and of the odometry, odometry validity, where the car is relative to the
trajectory) run every control step (`Watchdog.evaluate`). Any fault -> the controller
performs a comfortable stop and reports ERROR; when every check has passed for
`recovery_time` the controller resumes tracking.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from autonomy_stack.vector_space import Trajectory

OK, WARN, ERROR = 0, 1, 2


@dataclass
class WatchdogConfig:
    max_trajectory_age: float = 0.3     # s (now - trajectory stamp)
    max_odom_age: float = 0.2           # s (now - odometry stamp)
    max_future_stamp: float = 0.5       # s a stamp may lie ahead of `now` (clock skew)
    max_curvature: float = 0.3          # 1/m (the car can do tan(max_steer)/wheelbase)
    max_speed: float = 40.0             # m/s
    max_accel: float = 10.0             # m/s^2, |trajectory acceleration|
    max_deviation: float = 3.0          # m, car farther than this from the path -> fault
    behind_tolerance: float = 1.0       # m the car may be past the trajectory's end
    recovery_time: float = 0.2          # s of good inputs before tracking resumes
    resume_after_valid: int = 3         # after a rejected trajectory the stop holds until
                                        # this many valid trajectories in a row arrived
                                        # (bad and good interleaved -> no flip-flop)
    frames: Sequence[str] = ("odom", "world")


def check_trajectory(traj: Trajectory, cfg: WatchdogConfig) -> Optional[str]:
    """None if the trajectory is usable, else the reason it is not."""
    n = len(traj)
    if n < 2:
        return f"trajectory has {n} point(s) (need >= 2)"
    if cfg.frames and traj.frame_id not in cfg.frames:
        return f"trajectory frame '{traj.frame_id}' is not one of {list(cfg.frames)}"
    for name in ("t", "x", "y", "yaw", "speed", "accel", "curvature"):
        a = np.asarray(getattr(traj, name), float)
        if a.shape[0] != n:
            return f"trajectory field '{name}' has {a.shape[0]} values for {n} points"
        if not np.all(np.isfinite(a)):
            return f"trajectory field '{name}' is not finite (NaN/inf)"
    if not math.isfinite(traj.stamp):
        return "trajectory stamp is not finite"
    if np.any(np.diff(traj.t) <= 0.0):
        return "trajectory times are not strictly increasing"
    k = float(np.max(np.abs(traj.curvature)))
    if k > cfg.max_curvature:
        return f"trajectory curvature {k:.3g} 1/m exceeds {cfg.max_curvature:.3g} 1/m"
    v = float(np.max(np.abs(traj.speed)))
    if v > cfg.max_speed:
        return f"trajectory speed {v:.3g} m/s exceeds {cfg.max_speed:.3g} m/s"
    a = float(np.max(np.abs(traj.accel)))
    if a > cfg.max_accel:
        return f"trajectory acceleration {a:.3g} m/s^2 exceeds {cfg.max_accel:.3g} m/s^2"
    return None


@dataclass
class WatchdogResult:
    faults: List[str] = field(default_factory=list)
    tracking_allowed: bool = False      # no fault for recovery_time

    @property
    def ok(self) -> bool:
        return not self.faults


class Watchdog:
    def __init__(self, cfg: WatchdogConfig = WatchdogConfig()):
        self.cfg = cfg
        self.good_since: Optional[float] = None

    def evaluate(self, now: float, traj_stamp: Optional[float], traj_fault: Optional[str],
                 odom_stamp: Optional[float], odom_fault: Optional[str],
                 geometry_fault: Optional[str], extra: Sequence[str] = ()) -> WatchdogResult:
        """`extra`: faults the caller holds itself (a supervisor stop, a stop held after a
        rejected trajectory); they stop the car like the others."""
        c = self.cfg
        faults = list(extra)
        if traj_fault:
            faults.append(traj_fault)
        if traj_stamp is None:
            faults.append("no trajectory received")
        else:
            age = now - traj_stamp
            if age > c.max_trajectory_age:
                faults.append(f"trajectory is stale ({age:.3f} s old > {c.max_trajectory_age} s)")
            elif age < -c.max_future_stamp:
                faults.append(f"trajectory stamp is {-age:.3f} s in the future")
        if odom_fault:
            faults.append(odom_fault)
        if odom_stamp is None:
            faults.append("no odometry received")
        else:
            age = now - odom_stamp
            if age > c.max_odom_age:
                faults.append(f"odometry stopped ({age:.3f} s old > {c.max_odom_age} s)")
            elif age < -c.max_future_stamp:
                faults.append(f"odometry stamp is {-age:.3f} s in the future")
        if geometry_fault:
            faults.append(geometry_fault)
        if faults:
            self.good_since = None
        elif self.good_since is None:
            self.good_since = now
        allowed = not faults and (now - self.good_since) >= c.recovery_time - 1e-9
        return WatchdogResult(faults, allowed)

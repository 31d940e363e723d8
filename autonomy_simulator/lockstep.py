"""Lockstep (synchronous) stepping of the simulator: what the world waits for after a step
before it moves on, like CARLA's synchronous mode. Pure: no rclpy; the simulator node feeds
it the stamps of the stack's answers and the wall clock.

After every step at sim time t the gate waits for a /control/command stamped >= t (control
answers every /odom). After a step that published a frame (camera images, or the ground
truth in a graph without cameras) it waits first for a /planning/trajectory stamped >= the
frame time and then for a command received after that trajectory, so the stack's answer to
frame k is applied before the world moves on. Each wait has a wall-clock timeout; the
first answer of each kind (model loading, DDS discovery) gets `startup_timeout_s`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

from autonomy_stack.params import param

STAMP_EPS = 1e-6        # s: stamps travel as sec/nanosec; equal times compare equal


@dataclass
class LockstepConfig:
    timeout_s: float = param(2.0, "s (wall) the lockstep simulator waits for an answer of the "
                                  "stack before it steps on with the latest command (reported)",
                             min=0.01, max=600.0)
    resend_s: float = param(0.5, "s (wall) of an open wait after which the simulator publishes "
                                 "again what the stack answers (the frame while the plan is "
                                 "awaited, else the odometry), same stamp: a dropped frame or "
                                 "a command that never came costs this, not the timeout",
                            min=0.01, max=600.0)
    startup_timeout_s: float = param(60.0, "s (wall) for the stack's first command and first "
                                           "trajectory (model loading, discovery)",
                                     min=0.01, max=3600.0)


@dataclass
class Wait:
    """One step's wait: sim time of the step, whether it carried a frame, progress."""
    t: float
    frame: bool
    since: float                      # wall time the current phase began
    sent: float = 0.0                 # wall time of the last (re)publication
    trajectory_ok: bool = False
    command_ok: bool = False


@dataclass
class LockstepGate:
    cfg: LockstepConfig = field(default_factory=LockstepConfig)
    wait: Optional[Wait] = None
    timeouts: Dict[str, int] = field(default_factory=lambda: {"command": 0, "trajectory": 0})
    commands_answered: int = 0        # commands that answered a wait
    trajectories_answered: int = 0
    resends: int = 0                  # re-publications of an unanswered step / frame
    waits: int = 0                    # steps waited for (answered or timed out)
    wait_sum_s: float = 0.0           # wall s spent waiting, over all steps
    wait_max_s: float = 0.0
    _step_wall: float = 0.0

    def stepped(self, t: float, frame: bool, wall: float) -> None:
        """The simulator stepped to sim time `t` and published its outputs at wall time
        `wall`; `frame`: a camera frame / ground truth went out with this step."""
        self.wait = Wait(t=t, frame=frame, since=wall, sent=wall, trajectory_ok=not frame)
        self._step_wall = wall

    def on_command(self, stamp: float, wall: float, trajectory_stamp: float = 0.0) -> None:
        """`trajectory_stamp`: of the trajectory the command follows (0: not given). After a
        frame, a command that follows an older trajectory is not its answer (control answered
        the step's odometry before the frame's plan reached it; taking that one made the run
        depend on message timing)."""
        w = self.wait
        if (w is not None and w.frame and trajectory_stamp > 0.0
                and trajectory_stamp < w.t - STAMP_EPS):
            return
        if w is not None and w.trajectory_ok and stamp >= w.t - STAMP_EPS:
            w.command_ok = True
            self.commands_answered += 1

    def on_trajectory(self, stamp: float, wall: float) -> None:
        w = self.wait
        if w is not None and not w.trajectory_ok and stamp >= w.t - STAMP_EPS:
            w.trajectory_ok = True
            self.trajectories_answered += 1
            w.since = wall            # the command wait after it gets its own budget

    def ready(self) -> bool:
        """True when the stack answered the last step (or nothing is awaited)."""
        return self.wait is None or (self.wait.trajectory_ok and self.wait.command_ok)

    def resend_due(self, wall: float) -> Optional[str]:
        """'frame' or 'state' when the open wait should be re-published now (and marks it
        sent), else None."""
        w = self.wait
        if w is None or self.ready() or wall - w.sent < self.cfg.resend_s:
            return None
        w.sent = wall
        self.resends += 1
        return "frame" if not w.trajectory_ok else "state"

    def waiting_for(self) -> str:
        w = self.wait
        if w is None:
            return "nothing"
        if not w.trajectory_ok:
            return f"a /planning/trajectory stamped >= {w.t:.3f} s (the frame at {w.t:.3f} s)"
        if w.frame:
            return f"a /control/command stamped >= {w.t:.3f} s received after the trajectory " \
                   f"for the frame at {w.t:.3f} s"
        return f"a /control/command stamped >= {w.t:.3f} s"

    def timed_out(self, wall: float) -> Optional[str]:
        """If the current wait ran past its timeout: count it, end the wait and return what
        was awaited (the caller logs it and steps on); else None."""
        w = self.wait
        if w is None or self.ready():
            return None
        kind = "trajectory" if not w.trajectory_ok else "command"
        first = (self.trajectories_answered if kind == "trajectory" else self.commands_answered) == 0
        limit = self.cfg.startup_timeout_s if first else self.cfg.timeout_s
        if wall - w.since < limit:
            return None
        what = self.waiting_for()
        self.timeouts[kind] += 1
        self.finish(wall)
        return f"{what}: none within {limit:.2f} s (wall)"

    def finish(self, wall: float) -> None:
        """The wait is over (answered or timed out): record how long the step waited."""
        if self.wait is not None:
            dt = wall - self._step_wall
            self.waits += 1
            self.wait_sum_s += dt
            self.wait_max_s = max(self.wait_max_s, dt)
        self.wait = None

    @property
    def total_timeouts(self) -> int:
        return sum(self.timeouts.values())

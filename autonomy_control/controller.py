"""Trajectory-tracking controller: lateral (MPC / Pure Pursuit / Stanley) + longitudinal
(feed-forward + PID, gears) + watchdog with a comfortable stop (no rclpy).

Usage (the node does exactly this):
    ctl = TrackingController(ControllerConfig())
    ctl.set_trajectory(traj, now)      # on /planning/trajectory
    ctl.set_odometry(ego, now)         # on /odom
    cmd, status = ctl.step(now)        # on the control timer
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional

from autonomy_control.lateral import (LateralContext, MPCConfig, PurePursuit,
                                      PurePursuitConfig, StanleyConfig, make_lateral)
from autonomy_control.longitudinal import (LongitudinalConfig, LongitudinalPID, StopConfig,
                                           comfortable_stop_accel, no_wrong_way)
from autonomy_control.reference import Projection, TrackingReference
from autonomy_vehicle.vehicle_model import VehicleParams, clamp, step as model_step
from autonomy_control.watchdog import ERROR, OK, WARN, Watchdog, WatchdogConfig, check_trajectory
from autonomy_stack.vector_space import ControlCommand, EgoState, Trajectory


@dataclass
class ControllerConfig:
    lateral: str = "mpc"                       # mpc | pure_pursuit | stanley
    rate_hz: float = 50.0
    vehicle: VehicleParams = field(default_factory=VehicleParams)
    mpc: MPCConfig = field(default_factory=MPCConfig)
    pure_pursuit: PurePursuitConfig = field(default_factory=PurePursuitConfig)
    stanley: StanleyConfig = field(default_factory=StanleyConfig)
    longitudinal: LongitudinalConfig = field(default_factory=LongitudinalConfig)
    stop: StopConfig = field(default_factory=StopConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    extra_latency: float = 0.0                 # s of command latency to compensate, on top
                                               # of vehicle.steer_delay
    steer_observer_gain: float = 0.1           # pull of the steering estimate towards the
                                               # angle implied by odometry's yaw rate
    warn_lateral_error: float = 0.5            # m -> diagnostics WARN
    time_jump_back: float = 0.05               # s: `now` earlier than the last step by more
                                               # than this is a backwards time jump


@dataclass
class ControlStatus:
    level: int = ERROR
    mode: str = "idle"                        # idle | tracking | stopping | stopped
    message: str = ""
    faults: List[str] = field(default_factory=list)
    lateral_error: float = float("nan")
    heading_error: float = float("nan")
    speed_error: float = float("nan")
    reference_speed: float = 0.0
    speed: float = 0.0
    steer_estimate: float = 0.0
    lateral_controller: str = ""
    lateral_fallbacks: int = 0
    step_ms: float = 0.0                      # wall time of this step
    step_cpu_ms: float = 0.0                  # CPU time of this step (this thread)
    counters: Dict[str, int] = field(default_factory=dict)


class TrackingController:
    def __init__(self, cfg: ControllerConfig = ControllerConfig()):
        self.cfg = cfg
        vp = cfg.vehicle
        self.lateral = make_lateral(cfg.lateral, vp, cfg.mpc, cfg.pure_pursuit, cfg.stanley)
        self.fallback = PurePursuit(vp, cfg.pure_pursuit)
        self.longitudinal = LongitudinalPID(cfg.longitudinal)
        self.watchdog = Watchdog(cfg.watchdog)
        self.dt_nominal = 1.0 / cfg.rate_hz
        self.ref: Optional[TrackingReference] = None       # last accepted trajectory
        self.good_ref: Optional[TrackingReference] = None  # last trajectory actually tracked
        self.traj_fault: Optional[str] = None           # latest trajectory was rejected
        # after a rejection: valid trajectories in a row so far (None: no stop held)
        self.valid_since_reject: Optional[int] = None
        self.supervisor_stop: Optional[str] = None      # reason of a supervisor stop
        self.supervisor_decel: Optional[float] = None   # m/s^2 it asks for (<= stop.decel)
        self.ego: Optional[EgoState] = None             # last good odometry
        self.odom_fault: Optional[str] = None
        self.last_now: Optional[float] = None
        self.last_time_jump: Optional[tuple] = None      # (from, to) of the last jump back
        self.steer_cmd = 0.0
        self.accel_cmd = 0.0
        self.steer_est = 0.0
        self.speed_est = 0.0          # dead-reckoned when odometry is missing
        n = int(round((vp.steer_delay + cfg.extra_latency) / self.dt_nominal))
        self.history: deque = deque([(0.0, 0.0)] * n, maxlen=n) if n > 0 else None
        self.mode = "idle"
        self.counters = {"trajectories": 0, "trajectories_rejected": 0, "odometry": 0,
                         "odometry_rejected": 0, "mpc_failures": 0, "fault_episodes": 0,
                         "time_jumps_back": 0, "supervisor_stops": 0}
        self.lateral_fallbacks = 0
        self.answered_stamp = 0.0      # stamp of the last trajectory received (0: none)

    # ---------------------------------------------------------------- inputs
    def set_trajectory(self, traj: Trajectory, now: Optional[float] = None) -> Optional[str]:
        """Returns None if accepted, else the reason it was rejected (it is counted and
        reported as a fault until a good trajectory arrives)."""
        self.counters["trajectories"] += 1
        # the commands from now on answer this trajectory, a rejected one too (held stop)
        if math.isfinite(traj.stamp):
            self.answered_stamp = float(traj.stamp)
        reason = check_trajectory(traj, self.cfg.watchdog)
        if reason is not None:
            self.counters["trajectories_rejected"] += 1
            self.traj_fault = reason
            self.valid_since_reject = 0
            return reason
        self.traj_fault = None
        if self.valid_since_reject is not None:
            self.valid_since_reject += 1
            if self.valid_since_reject >= self.cfg.watchdog.resume_after_valid:
                self.valid_since_reject = None
        ref = TrackingReference(traj)
        if self.ref is not None and self.ref.active > 0:
            ref.carry_progress(self.ref)
        self.ref = ref
        return None

    def set_odometry(self, ego: EgoState, now: Optional[float] = None) -> Optional[str]:
        self.counters["odometry"] += 1
        vals = (ego.x, ego.y, ego.yaw, ego.speed, ego.yaw_rate, ego.stamp)
        if not all(math.isfinite(v) for v in vals):
            self.counters["odometry_rejected"] += 1
            self.odom_fault = "odometry is not finite (NaN/inf)"
            return self.odom_fault
        self.odom_fault = None
        self.ego = ego
        self.speed_est = ego.speed
        # steering estimate correction from the yaw rate (only where it is informative)
        g = self.cfg.steer_observer_gain
        if g > 0 and abs(ego.speed) > 2.0:
            implied = math.atan(self.cfg.vehicle.wheelbase * ego.yaw_rate / ego.speed)
            self.steer_est += g * (clamp(implied, -self.cfg.vehicle.max_steer,
                                         self.cfg.vehicle.max_steer) - self.steer_est)
        return None

    def set_supervisor_stop(self, reason: str, decel: Optional[float] = None) -> None:
        """A supervisor (autonomy_control.supervisor) found the car off the road / route /
        ...: the same comfortable stop as a watchdog fault (at most `decel` m/s^2 when
        given, never more than `stop.decel`), steering along the last good trajectory,
        ERROR naming `reason`; held until `clear_supervisor_stop()`."""
        if self.supervisor_stop is None:
            self.counters["supervisor_stops"] += 1
        self.supervisor_stop = reason
        self.supervisor_decel = decel

    def clear_supervisor_stop(self) -> None:
        """The supervisor was reset (a new episode): tracking may resume."""
        self.supervisor_stop = None
        self.supervisor_decel = None

    def _held_faults(self) -> List[str]:
        """Faults the controller holds itself, beyond the watchdog's input checks."""
        held = []
        if self.supervisor_stop is not None:
            held.append(f"supervisor: {self.supervisor_stop}")
        if self.valid_since_reject is not None and self.traj_fault is None:
            held.append(f"holding the stop after a rejected trajectory "
                        f"({self.valid_since_reject}/{self.cfg.watchdog.resume_after_valid} "
                        "valid in a row)")
        return held

    # ---------------------------------------------------------------- step
    def step(self, now: float):
        t0, c0 = time.perf_counter(), time.thread_time()
        cfg = self.cfg
        if self.last_now is not None and now < self.last_now - cfg.time_jump_back:
            self._time_jumped_back(now)
        dt = self.dt_nominal if self.last_now is None else now - self.last_now
        if not (0.0 < dt < 0.5):
            dt = self.dt_nominal
        self.last_now = now
        st = ControlStatus(lateral_controller=cfg.lateral)

        geometry_fault = None
        pr: Optional[Projection] = None
        ego = self.ego
        if self.ref is not None and ego is not None:
            pr = self.ref.project(ego.x, ego.y, ego.yaw)
            if self.ref.advance_if_reached(pr, ego.speed):
                pr = self.ref.project(ego.x, ego.y, ego.yaw)
            geometry_fault = self._geometry_fault(pr)
        wd = self.watchdog.evaluate(
            now, self.ref.stamp if self.ref is not None else None, self.traj_fault,
            ego.stamp if ego is not None else None, self.odom_fault, geometry_fault,
            self._held_faults())

        odom_fresh = (ego is not None and self.odom_fault is None
                      and now - ego.stamp <= cfg.watchdog.max_odom_age)
        # without fresh odometry: the speed dead-reckoned from our own commands
        v_meas = ego.speed if odom_fresh else self.speed_est
        target_speed = 0.0
        if wd.tracking_allowed:
            if self.mode != "tracking":
                self.longitudinal.reset()
                self.lateral.reset()
            self.mode = "tracking"
            self.good_ref = self.ref
            steer, accel, target_speed = self._track(ego, pr, dt, st)
            st.level = WARN if abs(st.lateral_error) > cfg.warn_lateral_error else OK
            st.message = "tracking" if st.level == OK else \
                f"lateral error {st.lateral_error:.2f} m"
            if self.longitudinal.gear != self.ref.segment.direction:
                st.message += " (changing gear)"
        else:
            steer, accel = self._stop_step(ego, pr, wd.faults, v_meas, odom_fresh,
                                           geometry_fault, dt, st)
        st.faults = wd.faults
        st.mode = self.mode
        rate = (steer - self.steer_cmd) / dt
        self._update_estimates(steer, accel, dt)
        st.speed = v_meas
        st.steer_estimate = self.steer_est
        st.lateral_fallbacks = self.lateral_fallbacks
        st.counters = dict(self.counters)
        st.step_ms = (time.perf_counter() - t0) * 1e3
        st.step_cpu_ms = (time.thread_time() - c0) * 1e3
        gear = self.longitudinal.gear
        cmd = ControlCommand(stamp=now, steering_angle=steer, steering_rate=rate,
                             acceleration=model_accel_to_command(accel, gear),
                             target_speed=abs(target_speed), gear=gear,
                             emergency=bool(wd.faults),
                             trajectory_stamp=self.answered_stamp)
        return cmd, st

    def _time_jumped_back(self, now: float) -> None:
        """The clock went backwards (a /clock restart, a bag looped): forget what was timed
        on the old clock -- the watchdog's good-input interval, the step time, the PID and
        lateral controller states -- and count it. The trajectory and odometry keep their
        stamps: from the future now, the watchdog stops the car (commands keep coming)
        until inputs stamped on the new clock arrive."""
        self.counters["time_jumps_back"] += 1
        self.last_time_jump = (self.last_now, now)
        self.last_now = None
        self.watchdog.good_since = None
        self.longitudinal.reset()
        self.lateral.reset()

    # ---------------------------------------------------------------- stopping
    def _stop_step(self, ego: Optional[EgoState], pr: Optional[Projection], faults: List[str],
                   v_meas: float, odom_fresh: bool, geometry_fault: Optional[str], dt: float,
                   st: ControlStatus):
        """(steer, accel) of one step of the comfortable stop (watchdog faults, or inputs
        good again but not yet for `recovery_time`); keeps steering along the last good
        path where possible; sets the mode and the status."""
        cfg = self.cfg
        stop = cfg.stop
        if self.supervisor_stop is not None and self.supervisor_decel is not None:
            stop = replace(stop, decel=min(stop.decel, self.supervisor_decel))
        accel = comfortable_stop_accel(v_meas, self.accel_cmd, dt, stop)
        accel = no_wrong_way(accel, v_meas, self.longitudinal.gear, dt)
        steer = self.steer_cmd
        if odom_fresh and abs(v_meas) > 0.5:
            path = self._stop_path(ego, geometry_fault)
            if path is not None:
                ref, ppr = path
                try:
                    steer = self._lateral(ego, ppr, dt, ref)
                except RuntimeError:
                    steer = self.steer_cmd
        if faults:
            if self.mode == "tracking":
                self.counters["fault_episodes"] += 1
            self.mode = "stopping" if abs(v_meas) > 1e-3 else "stopped"
            st.level = ERROR
            st.message = "stopping: " + "; ".join(faults) if self.mode == "stopping" \
                else "stopped: " + "; ".join(faults)
        else:
            self.mode = "stopping" if abs(v_meas) > 1e-3 else "stopped"
            st.level = WARN
            st.message = "inputs good again, resuming shortly"
        if pr is not None and ego is not None:
            st.lateral_error, st.heading_error = pr.lateral, pr.heading
            st.speed_error = 0.0 - v_meas
        return steer, accel

    def _update_estimates(self, steer: float, accel: float, dt: float) -> None:
        """Bookkeeping after a command: actuator estimate, dead-reckoned speed, latency
        history, last command."""
        applied = steer
        if self.history is not None:
            applied = self.history[0][0]
            self.history.append((steer, accel))
        self.steer_est = _actuator(self.steer_est, applied, dt, self.cfg.vehicle)
        self.speed_est = _speed_after(self.speed_est, accel, dt)
        self.steer_cmd, self.accel_cmd = steer, accel

    # ---------------------------------------------------------------- internals
    def _geometry_fault(self, pr: Projection, ref: Optional[TrackingReference] = None
                        ) -> Optional[str]:
        c = self.cfg.watchdog
        ref = ref or self.ref
        if ref.is_last_segment and pr.after_end > c.behind_tolerance:
            return f"trajectory is behind the car ({pr.after_end:.2f} m past its end)"
        if pr.distance > c.max_deviation:
            return f"car is {pr.distance:.2f} m from the trajectory (> {c.max_deviation} m)"
        return None

    def _stop_path(self, ego: EgoState, geometry_fault: Optional[str]):
        """The path to steer along while stopping: the current trajectory if its geometry is
        fine, else the last one that was tracked (if the car is still on it)."""
        if self.ref is not None and geometry_fault is None:
            return self.ref, self.ref.project(ego.x, ego.y, ego.yaw)
        g = self.good_ref
        if g is not None and g is not self.ref:
            pr = g.project(ego.x, ego.y, ego.yaw)
            if self._geometry_fault(pr, g) is None:
                return g, pr
        return None

    def _predicted_state(self, ego: EgoState) -> EgoState:
        """Ego state after the commands still in the latency pipeline have acted."""
        state = replace(ego, steering_angle=self.steer_est)
        if self.history is None:
            return state
        # the actuator estimate is the angle now; the queued commands act before this one
        for steer, accel in self.history:
            state = model_step(state, steer, accel, self.dt_nominal, self.cfg.vehicle)
        return state

    def _lateral(self, ego: EgoState, pr: Projection, dt: float,
                 ref: Optional[TrackingReference] = None) -> float:
        ref = ref or self.ref
        ps = self._predicted_state(ego)
        if self.history is not None:
            pr = ref.segment.project(ps.x, ps.y, ps.yaw, ref.hint)
        ctx = LateralContext(seg=ref.segment, proj=pr, x=ps.x, y=ps.y, yaw=ps.yaw,
                             speed=ps.speed, steer=ps.steering_angle,
                             steer_cmd_prev=self.steer_cmd, dt=dt)
        try:
            u = self.lateral.compute(ctx)
        except RuntimeError:
            self.counters["mpc_failures"] += 1
            self.lateral_fallbacks += 1
            u = self.fallback.compute(ctx)
        return clamp(u, -self.cfg.vehicle.max_steer, self.cfg.vehicle.max_steer)

    def _track(self, ego: EgoState, pr: Projection, dt: float, st: ControlStatus):
        seg = self.ref.segment
        lc = self.cfg.longitudinal
        s_look = pr.s + max(abs(ego.speed) * lc.preview_time, lc.preview_distance)
        # the larger of the speed here and just ahead: moves off from a standstill sample,
        # yet creeps all the way to a stop point instead of stopping `preview` short of it
        v_here, v_look = float(seg.speed_at(pr.s)), float(seg.speed_at(s_look))
        v_ref = v_look if abs(v_look) > abs(v_here) else v_here
        a_ref = float(seg.accel_at(s_look if abs(v_look) > abs(v_here) else pr.s))
        # stop points (a cusp, or the end of a trajectory that ends at standstill): the speed
        # is capped by the distance left, sqrt(2 a d), and the car creeps the last
        # centimetres instead of stalling short of the point or rolling past it
        last = self.ref.is_last_segment
        end_speed = float(seg.speed[-1]) if last else 0.0
        remaining = seg.length - pr.s - pr.after_end
        if abs(end_speed) < lc.standstill_speed:
            toward = ego.speed * seg.direction          # > 0: moving toward the point
            need = toward * toward / (2.0 * max(remaining, 0.01))   # decel to stop on it
            if remaining <= lc.stop_tolerance:
                v_ref = 0.0
                a_ref = -seg.direction * min(max(need, 0.5), lc.max_decel) \
                    if toward > 0.01 else 0.0
            else:
                cap = math.sqrt(2.0 * lc.stop_point_decel * remaining)
                mag = max(min(abs(v_ref), cap), min(lc.creep_speed, cap))
                v_ref = seg.direction * mag
                if toward > 0.0 and need > 0.5 * lc.stop_point_decel:
                    # braking zone: feed forward the deceleration that ends on the point
                    a_ref = -seg.direction * min(need, lc.max_decel)
        elif last and pr.after_end > 0.0:
            v_ref, a_ref = end_speed, 0.0
        steer = self._lateral(ego, pr, dt)
        accel = self.longitudinal.compute(ego.speed, v_ref, a_ref, seg.direction, dt,
                                          self.accel_cmd)
        st.lateral_error, st.heading_error = pr.lateral, pr.heading
        st.speed_error = v_ref - ego.speed
        st.reference_speed = v_ref
        return steer, accel, v_ref


def model_accel_to_command(accel: float, gear: int) -> float:
    """The controller works with d(signed speed)/dt (`vehicle_model.step`'s accel_cmd);
    ControlCommand.acceleration is signed along the direction of travel of the gear
    (the simulator applies `-acceleration` in reverse)."""
    return -accel if gear < 0 else accel


def command_to_model_accel(acceleration: float, gear: int) -> float:
    """Inverse of `model_accel_to_command` (for plants driven through `vehicle_model.step`)."""
    return -acceleration if gear < 0 else acceleration


def _actuator(delta: float, cmd: float, dt: float, vp: VehicleParams) -> float:
    target = clamp(cmd, -vp.max_steer, vp.max_steer)
    rate = clamp((target - delta) / max(vp.steer_time_constant, dt), -vp.max_steer_rate,
                 vp.max_steer_rate)
    return clamp(delta + rate * dt, -vp.max_steer, vp.max_steer)


def _speed_after(v: float, a: float, dt: float) -> float:
    v1 = v + a * dt
    if (v > 0 > v1) or (v < 0 < v1):
        return 0.0
    return v1

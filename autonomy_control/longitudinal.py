"""Longitudinal control (no rclpy): feed-forward from the trajectory's acceleration plus a
PID on the speed error, gear selection for reverse (parking) segments, and the
jerk-limited comfortable stop used by the watchdog.

Acceleration convention (same as `vehicle_model.step`'s accel_cmd): the time derivative
of the *signed* speed. Forward gear: positive speeds up. Reverse gear: negative speeds up
backwards. `controller.model_accel_to_command` converts to ControlCommand.acceleration
(signed along the direction of travel of the gear, as the simulator applies it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class LongitudinalConfig:
    kp: float = 1.0             # (m/s^2) per (m/s)
    ki: float = 0.3
    kd: float = 0.0
    integral_limit: float = 1.5  # m/s^2 contribution bound of the I term
    max_accel: float = 3.0
    max_decel: float = 6.0      # positive
    max_jerk: float = 10.0      # m/s^3, rate limit of the normal command
    standstill_speed: float = 0.05  # m/s
    preview_time: float = 0.0   # s: speed reference looked up this far ahead ...
    preview_distance: float = 0.3  # m ... but at least this far (moves off from standstill)
    creep_speed: float = 0.2    # m/s: speed to creep the last centimetres to a stop point
    stop_point_decel: float = 3.0  # m/s^2: speed cap sqrt(2 a d) before a stop point (a
                                   # safeguard: trajectories normally stop more gently)
    stop_tolerance: float = 0.03   # m: a stop point counts as reached this close


class LongitudinalPID:
    def __init__(self, cfg: LongitudinalConfig = LongitudinalConfig()):
        self.cfg = cfg
        self.integral = 0.0
        self.prev_err = None
        self.gear = 1

    def reset(self) -> None:
        self.integral = 0.0
        self.prev_err = None

    def compute(self, v: float, v_ref: float, a_ref: float, direction: int, dt: float,
                a_prev: float) -> float:
        """Signed acceleration command for signed speeds `v` (measured) and `v_ref`."""
        cfg = self.cfg
        still = abs(v) < cfg.standstill_speed
        # gear: follow the segment direction, but change only at standstill
        if direction != self.gear and still:
            self.gear = direction
            self.reset()
        if direction != self.gear:
            # still rolling the wrong way: brake to a stop first
            v_ref, a_ref = 0.0, 0.0
        # moving off: a braking feed-forward (the profile's deceleration into a stop point
        # just ahead) must not hold the car at standstill
        if abs(v) < cfg.creep_speed and abs(v_ref) > abs(v) and a_ref * direction < 0:
            a_ref = 0.0
        err = v_ref - v
        d = 0.0 if self.prev_err is None or dt <= 0 else (err - self.prev_err) / dt
        self.prev_err = err
        a = a_ref + cfg.kp * err + cfg.kd * d + self.integral
        # integrate with anti-windup (not while saturated in the error's direction, nor
        # while held at standstill against the gear)
        a_sat = min(max(a, -cfg.max_decel), cfg.max_accel)
        held = no_wrong_way(a_sat, v, self.gear) != a_sat
        if not held and (a == a_sat or (a > a_sat and err < 0) or (a < a_sat and err > 0)):
            self.integral += cfg.ki * err * dt
            self.integral = min(max(self.integral, -cfg.integral_limit), cfg.integral_limit)
        a = a_sat
        # standstill with nothing to do: brake gently to zero and hold (no creeping)
        if still and abs(v_ref) < cfg.standstill_speed:
            a = -math.copysign(0.5, v) if abs(v) > 1e-3 else 0.0
            self.integral = 0.0
        a = rate_limit(a, a_prev, cfg.max_jerk * dt)
        return no_wrong_way(a, v, self.gear, dt)


def no_wrong_way(a: float, v: float, gear: int, dt: float = 0.0) -> float:
    """Never command an acceleration that drives the car against the gear: none at (or
    past) zero speed, and with the command held for `dt` s, no more braking than takes
    the speed left to zero in that time (a plant that does not clamp the speed at zero,
    v += a dt, would otherwise roll backwards after a stop)."""
    if gear >= 0:
        if v <= 0.0:
            return max(a, 0.0)
        return max(a, -v / dt) if dt > 0.0 else a
    if v >= 0.0:
        return min(a, 0.0)
    return min(a, -v / dt) if dt > 0.0 else a


def rate_limit(value: float, prev: float, max_step: float) -> float:
    return min(max(value, prev - max_step), prev + max_step)


@dataclass
class StopConfig:
    decel: float = 3.0          # m/s^2, bound of the comfortable stop
    jerk: float = 4.0           # m/s^3, bound of the comfortable stop


def comfortable_stop_accel(v: float, a_prev: float, dt: float, cfg: StopConfig) -> float:
    """One step of a stop profile with |a| <= decel and |da/dt| <= jerk that ends at zero
    speed with (almost) zero acceleration: the target deceleration is
    min(decel, sqrt(jerk |v|)), a jerk-limited approach to standstill."""
    if abs(v) < 1e-3:
        target = 0.0
    else:
        # sqrt(2 (jerk/2) |v|): the target fades at half the jerk bound, so the rate-limited
        # command can follow it exactly and reaches ~0 when the car comes to rest
        mag = min(cfg.decel, math.sqrt(cfg.jerk * abs(v)))
        target = -math.copysign(mag, v)
    a = rate_limit(target, a_prev, cfg.jerk * dt)
    if abs(v) < 1e-3:
        a = -v / dt if dt > 0 else 0.0   # at rest: take out the last mm/s, then hold
    return a

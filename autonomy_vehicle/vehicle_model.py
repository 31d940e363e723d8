"""Kinematic bicycle model of the ego vehicle, shared by the simulator's ego and the
controllers (prediction models). Reference point: rear-axle centre.

The steering actuator is modelled as a first-order lag (time constant) behind a rate
limit, and acceleration is clipped to the vehicle's limits: the plant the controller sees
in the simulator is the plant it predicts with.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

from autonomy_stack.geometry import wrap_angle
from autonomy_stack.vector_space import EgoState


@dataclass(frozen=True)
class VehicleParams:
    wheelbase: float = 2.9           # m
    length: float = 4.7              # m, body
    width: float = 1.9               # m, body
    height: float = 1.5              # m
    rear_overhang: float = 0.9       # m, rear bumper behind rear axle
    max_steer: float = 0.55          # rad at the wheels
    max_steer_rate: float = 0.7      # rad/s
    steer_time_constant: float = 0.1  # s, first-order actuator lag
    max_accel: float = 3.0           # m/s^2
    max_decel: float = 8.0           # m/s^2 (positive number)
    max_speed: float = 40.0          # m/s
    max_reverse_speed: float = 5.0   # m/s
    steer_delay: float = 0.0         # s, pure dead time before the steering actuator
                                     # (used by `VehiclePlant`; `step` itself is memoryless)

    @property
    def center_offset(self) -> float:
        """Distance from rear axle forward to the body's geometric centre."""
        return self.length / 2.0 - self.rear_overhang


def clamp(v: float, lo: float, hi: float) -> float:
    return lo if v < lo else hi if v > hi else v


def step(state: EgoState, steer_cmd: float, accel_cmd: float, dt: float,
         params: VehicleParams = VehicleParams()) -> EgoState:
    """Advance the bicycle model by `dt` seconds under the given commands.

    steer_cmd: commanded wheel angle (rad); accel_cmd: signed acceleration along the
    direction of travel for forward gear (for reverse, negative speed grows with negative
    accel). Speed never crosses zero within one step (gear changes happen at standstill).
    """
    p = params
    # Steering: rate-limited first-order lag towards the command.
    target = clamp(steer_cmd, -p.max_steer, p.max_steer)
    desired_rate = (target - state.steering_angle) / max(p.steer_time_constant, dt)
    rate = clamp(desired_rate, -p.max_steer_rate, p.max_steer_rate)
    delta = clamp(state.steering_angle + rate * dt, -p.max_steer, p.max_steer)

    a = clamp(accel_cmd, -p.max_decel, p.max_accel)
    v0 = state.speed
    v1 = v0 + a * dt
    if v0 > 0.0 and v1 < 0.0 or v0 < 0.0 and v1 > 0.0:
        v1 = 0.0  # stop at zero; reversing direction needs a fresh command from standstill
    v1 = clamp(v1, -p.max_reverse_speed, p.max_speed)
    v_mid = 0.5 * (v0 + v1)

    yaw_rate = v_mid * math.tan(delta) / p.wheelbase
    yaw_mid = state.yaw + 0.5 * yaw_rate * dt
    x = state.x + v_mid * math.cos(yaw_mid) * dt
    y = state.y + v_mid * math.sin(yaw_mid) * dt
    yaw = wrap_angle(state.yaw + yaw_rate * dt)
    return replace(state, x=x, y=y, yaw=yaw, speed=v1, accel=(v1 - v0) / dt,
                   yaw_rate=yaw_rate, steering_angle=delta, stamp=state.stamp + dt)


class VehiclePlant:
    """Stateful wrapper of `step` that adds the steering dead time `params.steer_delay`
    (a FIFO of steering commands, one entry per step of `dt`). With `steer_delay == 0` it is
    exactly `step`. Used by the closed-loop tests/benchmarks; the simulator may use it too.
    """

    def __init__(self, state: EgoState, params: VehicleParams = VehicleParams(),
                 dt: float = 0.02):
        self.state = state
        self.params = params
        self.dt = float(dt)
        n = int(round(max(params.steer_delay, 0.0) / self.dt))
        self._fifo: deque = deque([state.steering_angle] * n, maxlen=n) if n > 0 else deque()

    @property
    def delay_steps(self) -> int:
        return self._fifo.maxlen or 0

    def step(self, steer_cmd: float, accel_cmd: float) -> EgoState:
        if self._fifo.maxlen:
            applied = self._fifo[0]
            self._fifo.append(float(steer_cmd))   # maxlen: drops the oldest (applied) one
        else:
            applied = float(steer_cmd)
        self.state = step(self.state, applied, accel_cmd, self.dt, self.params)
        return self.state

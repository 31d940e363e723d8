"""The ego vehicle's one description (`VehicleParams`: dimensions, wheelbase, steering and
curvature limits; reference point = the rear-axle centre) and its kinematic bicycle
model, shared by the planner, the trajectory optimiser, the maneuver search, the
controller, the simulator and the vehicle description node.

The numbers live in config/vehicle.yaml (the vehicle description node's parameter file):
`VehicleParams()` has that file's values, `VehicleParams.from_config(path)` reads
another one. Derived quantities (body extents about the rear axle, the curvature the
steering allows) are properties, never separate settings.

The steering actuator is modelled as a first-order lag (time constant) behind a rate
limit, and acceleration is clipped to the vehicle's limits: the plant the controller sees
in the simulator is the plant it predicts with.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Dict, Optional, Union

import yaml

from autonomy_stack.geometry import wrap_angle
from autonomy_stack.paths import config_file
from autonomy_stack.vector_space import EgoState

# VehicleParams field -> its key in config/vehicle.yaml (where they differ)
CONFIG_KEYS = {"length": "body_length", "width": "body_width", "height": "body_height"}
VEHICLE_CONFIG = "vehicle.yaml"


def read_vehicle_config(path: Union[str, Path, None] = None) -> Dict[str, float]:
    """{VehicleParams field: value} from a vehicle parameter file (ROS 2 parameter YAML,
    `/**: ros__parameters:`; default config/vehicle.yaml). A missing or non-numeric
    value is an error naming the key and the file."""
    path = Path(path) if path is not None else config_file(VEHICLE_CONFIG)
    with open(path, "r", encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    params = next(iter(doc.values()), {}).get("ros__parameters", {}) if doc else {}
    out = {}
    for name in _FIELDS:
        key = CONFIG_KEYS.get(name, name)
        value = params.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{path}: vehicle parameter '{key}' missing or not a number "
                             f"(got {value!r})")
        out[name] = float(value)
    return out


_FIELDS = ("wheelbase", "length", "width", "height", "rear_overhang", "max_steer",
           "max_steer_rate", "steer_time_constant", "max_accel", "max_decel", "max_speed",
           "max_reverse_speed", "steer_delay")
_DEFAULTS = read_vehicle_config()


@dataclass(frozen=True)
class VehicleParams:
    """The ego vehicle (defaults: config/vehicle.yaml). Reference point: the rear-axle
    centre (EgoState x, y); the body is a box `front` ahead of it, `rear` behind it and
    `half_width` to each side."""
    wheelbase: float = _DEFAULTS["wheelbase"]            # m
    length: float = _DEFAULTS["length"]                  # m, body
    width: float = _DEFAULTS["width"]                    # m, body
    height: float = _DEFAULTS["height"]                  # m
    rear_overhang: float = _DEFAULTS["rear_overhang"]    # m, rear bumper behind rear axle
    max_steer: float = _DEFAULTS["max_steer"]            # rad at the wheels
    max_steer_rate: float = _DEFAULTS["max_steer_rate"]  # rad/s
    steer_time_constant: float = _DEFAULTS["steer_time_constant"]  # s, first-order lag
    max_accel: float = _DEFAULTS["max_accel"]            # m/s^2
    max_decel: float = _DEFAULTS["max_decel"]            # m/s^2 (positive number)
    max_speed: float = _DEFAULTS["max_speed"]            # m/s
    max_reverse_speed: float = _DEFAULTS["max_reverse_speed"]  # m/s
    # s, pure dead time before the steering actuator (used by `VehiclePlant`; `step`
    # itself is memoryless)
    steer_delay: float = _DEFAULTS["steer_delay"]

    @classmethod
    def from_config(cls, path: Union[str, Path, None] = None) -> "VehicleParams":
        """The vehicle of a parameter file (default config/vehicle.yaml)."""
        return cls(**read_vehicle_config(path))

    @property
    def center_offset(self) -> float:
        """Distance from rear axle forward to the body's geometric centre."""
        return self.length / 2.0 - self.rear_overhang

    @property
    def front(self) -> float:
        """m from the rear axle forward to the front bumper."""
        return self.length - self.rear_overhang

    @property
    def rear(self) -> float:
        """m from the rear axle back to the rear bumper."""
        return self.rear_overhang

    @property
    def half_width(self) -> float:
        return self.width / 2.0

    @property
    def body(self) -> tuple:
        """(front, rear, half_width) about the rear axle: the planner's body."""
        return (self.front, self.rear, self.half_width)

    @property
    def max_curvature(self) -> float:
        """1/m: the tightest curvature the steering allows, tan(max_steer) / wheelbase."""
        return math.tan(self.max_steer) / self.wheelbase


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

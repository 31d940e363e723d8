"""Plain (no ROS) data types of the vector space, shared by the simulator, perception,
planning and control cores. `autonomy_stack.ros.ros_conversions` maps them to/from the typed
messages of `autonomy_interfaces`.

Frames: "world"/"odom" is a fixed ground frame (x forward at start, y left, z up);
"base_link" is the ego's rear-axle centre (x forward, y left, z up). Angles in radians,
yaw counter-clockwise from +x. Units SI.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import List, Optional
from dataclasses import replace

import numpy as np

from autonomy_stack.geometry import box_corners, from_frame, wrap_angle


class ObjectClass(IntEnum):  # values == autonomy_interfaces/ObjectClass constants
    UNKNOWN = 0
    CAR = 1
    TRUCK = 2
    PEDESTRIAN = 3
    CYCLIST = 4
    CONE = 5
    POLE = 6
    BARRIER = 7


class LineType(IntEnum):  # values == autonomy_interfaces/RoadLine constants
    LANE_DASHED_WHITE = 0
    LANE_SOLID_WHITE = 1
    LANE_DASHED_YELLOW = 2
    LANE_SOLID_YELLOW = 3
    ROAD_EDGE = 4
    CURB = 5
    STOP_LINE = 6
    PARKING_BAY = 7


@dataclass
class ObjectState:
    """An oriented 3-D box with kinematics (agent, parked car, cone, pole ...)."""
    id: int
    object_class: ObjectClass
    x: float
    y: float
    yaw: float
    length: float
    width: float
    height: float
    z: float = 0.0             # height of the box centre above ground
    speed: float = 0.0         # m/s along the heading (signed)
    accel: float = 0.0         # m/s^2 along the heading
    yaw_rate: float = 0.0      # rad/s
    score: float = 1.0
    visible_pixels: int = 0
    occluded: bool = False
    is_static: bool = False
    covariance: Optional[np.ndarray] = None  # 6x6 over (x, y, yaw, vx, vy, yaw_rate)

    @property
    def vx(self) -> float:
        return self.speed * float(np.cos(self.yaw))

    @property
    def vy(self) -> float:
        return self.speed * float(np.sin(self.yaw))

    def corners(self) -> np.ndarray:
        """4x2 footprint corners (front-left, front-right, rear-right, rear-left)."""
        return box_corners(self.x, self.y, self.yaw, self.length, self.width)


@dataclass
class RoadLine:
    """A polyline of road structure (lane line, edge, curb, stop line, bay line)."""
    id: int
    line_type: LineType
    points: np.ndarray          # Nx2 or Nx3, metres
    confidence: float = 1.0
    height: float = 0.0         # curb height (m); 0 for paint


@dataclass
class EgoState:
    """Ego vehicle state at its rear-axle centre in the world/odom frame."""
    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    speed: float = 0.0          # signed: negative in reverse
    accel: float = 0.0
    yaw_rate: float = 0.0
    steering_angle: float = 0.0
    stamp: float = 0.0          # seconds (sim or wall time)


@dataclass
class VectorSpace:
    """Everything perception outputs (or the simulator knows) at one instant."""
    stamp: float
    frame_id: str
    objects: List[ObjectState] = field(default_factory=list)
    lines: List[RoadLine] = field(default_factory=list)
    drivable_area: Optional[np.ndarray] = None   # Mx2 outer polygon (may be None)


@dataclass
class TrajectorySample:
    t: float                    # s from trajectory start
    x: float
    y: float
    yaw: float
    speed: float                # signed
    accel: float
    curvature: float


@dataclass
class Trajectory:
    """A timed trajectory as arrays (rows = samples)."""
    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    speed: np.ndarray
    accel: np.ndarray
    curvature: np.ndarray
    stamp: float = 0.0
    frame_id: str = "odom"
    maneuver: str = ""

    def __len__(self) -> int:
        return int(len(self.t))

    def sample(self, i: int) -> TrajectorySample:
        return TrajectorySample(float(self.t[i]), float(self.x[i]), float(self.y[i]),
                                float(self.yaw[i]), float(self.speed[i]),
                                float(self.accel[i]), float(self.curvature[i]))


@dataclass
class PredictedPath:
    label: str
    probability: float
    trajectory: Trajectory


@dataclass
class AgentFuture:
    agent_id: int
    object_class: ObjectClass
    hypotheses: List[PredictedPath]


@dataclass
class ControlCommand:
    stamp: float
    steering_angle: float
    steering_rate: float
    acceleration: float
    target_speed: float
    gear: int = 1               # 1 forward, -1 reverse, 0 neutral
    emergency: bool = False
    trajectory_stamp: float = 0.0   # stamp of the trajectory followed (0: none)


def transform_vector_space(v: VectorSpace, x: float, y: float, yaw: float,
                           frame_id: str) -> VectorSpace:
    """Express `v` (given in a frame whose origin is at (x, y, yaw) of `frame_id`, e.g. the
    ego frame at the ego pose in odom) in `frame_id`. Headings rotate; speeds are along the
    heading, so they stay."""
    def pts(a):
        return from_frame(a, x, y, yaw)

    xy = pts(np.array([[o.x, o.y] for o in v.objects], float).reshape(-1, 2))
    objects = [replace(o, x=float(ox), y=float(oy), yaw=float(wrap_angle(o.yaw + yaw)))
               for o, (ox, oy) in zip(v.objects, xy)]
    lines = [replace(line, points=pts(line.points)) for line in v.lines if len(line.points)]
    area = pts(v.drivable_area) if v.drivable_area is not None and len(v.drivable_area) else None
    return VectorSpace(stamp=v.stamp, frame_id=frame_id, objects=objects, lines=lines,
                       drivable_area=area)

"""Conversions between ROS messages and numpy / `autonomy_stack.vector_space` types.

Image conversion avoids slow copies (see ROS2_FROM_PYPI.md): numpy -> Image fills an
`array.array` from a memoryview; Image -> numpy is a zero-copy `np.frombuffer` view.
"""
from __future__ import annotations

import array
import math
from typing import Optional, Tuple

import numpy as np

from autonomy_stack import vector_space as vs

# encoding -> (dtype, channels)
IMAGE_ENCODINGS = {
    "mono8": (np.uint8, 1),
    "mono16": (np.uint16, 1),
    "bgr8": (np.uint8, 3),
    "rgb8": (np.uint8, 3),
    "bgra8": (np.uint8, 4),
    "rgba8": (np.uint8, 4),
    "32FC1": (np.float32, 1),
}


class ImageFormatError(ValueError):
    """An Image message whose encoding/size/step is unsupported or inconsistent."""


# ---------------------------------------------------------------- time
def stamp_to_sec(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def sec_to_stamp(t: float):
    # lazy: ROS messages/rclpy only on this path: the module imports without ROS
    from builtin_interfaces.msg import Time
    sec = math.floor(t)
    nsec = int(round((t - sec) * 1e9))
    if nsec >= 1_000_000_000:
        sec, nsec = sec + 1, nsec - 1_000_000_000
    return Time(sec=int(sec), nanosec=nsec)


def sec_to_duration(t: float):
    # lazy: ROS messages/rclpy only on this path: the module imports without ROS
    from builtin_interfaces.msg import Duration
    sec = math.floor(t)
    nsec = int(round((t - sec) * 1e9))
    if nsec >= 1_000_000_000:
        sec, nsec = sec + 1, nsec - 1_000_000_000
    return Duration(sec=int(sec), nanosec=nsec)


def duration_to_sec(d) -> float:
    return d.sec + d.nanosec * 1e-9


# ---------------------------------------------------------------- geometry
def yaw_to_quaternion(yaw: float):
    # lazy: ROS messages/rclpy only on this path: the module imports without ROS
    from geometry_msgs.msg import Quaternion
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2.0), w=math.cos(yaw / 2.0))


def quaternion_to_yaw(q) -> float:
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def rotation_to_quaternion(R: np.ndarray):
    """3x3 rotation matrix -> geometry_msgs/Quaternion."""
    # lazy: ROS messages/rclpy only on this path: the module imports without ROS
    from geometry_msgs.msg import Quaternion
    # lazy: optional dependency
    import transforms3d
    w, x, y, z = transforms3d.quaternions.mat2quat(np.asarray(R, dtype=float))
    return Quaternion(x=float(x), y=float(y), z=float(z), w=float(w))


def quaternion_to_rotation(q) -> np.ndarray:
    # lazy: optional dependency
    import transforms3d
    return transforms3d.quaternions.quat2mat([q.w, q.x, q.y, q.z])


# ---------------------------------------------------------------- images
def image_to_numpy(msg) -> np.ndarray:
    """Zero-copy view of an Image's pixels as HxW or HxWxC. Raises ImageFormatError."""
    if msg.encoding not in IMAGE_ENCODINGS:
        raise ImageFormatError(f"unsupported encoding '{msg.encoding}'")
    dtype, ch = IMAGE_ENCODINGS[msg.encoding]
    itemsize = np.dtype(dtype).itemsize
    row = msg.width * ch * itemsize
    if msg.step < row or len(msg.data) < msg.step * msg.height:
        raise ImageFormatError(
            f"{msg.width}x{msg.height} {msg.encoding}: step {msg.step} / {len(msg.data)} bytes "
            f"is too small (need {row} per row)")
    buf = np.frombuffer(msg.data, dtype=np.uint8, count=msg.step * msg.height)
    img = buf.reshape(msg.height, msg.step)[:, :row]
    img = img.view(np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<"))
    img = img.reshape(msg.height, msg.width, ch) if ch > 1 else img.reshape(msg.height, msg.width)
    return img


def numpy_to_image(img: np.ndarray, encoding: str, stamp=None, frame_id: str = "", msg=None):
    """Fill (or create) a sensor_msgs/Image from a contiguous numpy array without the slow
    `tobytes()` copy."""
    # lazy: ROS messages/rclpy only on this path: the module imports without ROS
    from sensor_msgs.msg import Image
    if encoding not in IMAGE_ENCODINGS:
        raise ImageFormatError(f"unsupported encoding '{encoding}'")
    dtype, ch = IMAGE_ENCODINGS[encoding]
    img = np.ascontiguousarray(img, dtype=dtype)
    if (img.ndim == 2 and ch != 1) or (img.ndim == 3 and img.shape[2] != ch):
        raise ImageFormatError(f"array shape {img.shape} does not match encoding {encoding}")
    msg = msg if msg is not None else Image()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(img.shape[0]), int(img.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(img.shape[1] * ch * img.itemsize)
    a = array.array("B")
    a.frombytes(memoryview(img).cast("B"))
    # The generated setter copies the array again (array.array('B', value)) whenever field
    # checks are off; the array is already of the right type, so store it directly.
    if hasattr(msg, "_data"):
        msg._data = a
    else:
        msg.data = a
    return msg


# ---------------------------------------------------------------- vector space
def object_to_msg(o: vs.ObjectState):
    # lazy: ROS messages/rclpy only on this path: the module imports without ROS
    from autonomy_interfaces.msg import Object, ObjectClass
    m = Object()
    m.id = int(o.id)
    m.object_class = ObjectClass(value=int(o.object_class))
    m.score = float(o.score)
    m.pose.position.x, m.pose.position.y, m.pose.position.z = float(o.x), float(o.y), float(o.z)
    m.pose.orientation = yaw_to_quaternion(o.yaw)
    m.size.x, m.size.y, m.size.z = float(o.length), float(o.width), float(o.height)
    m.velocity.x, m.velocity.y = o.vx, o.vy
    c, s = math.cos(o.yaw), math.sin(o.yaw)
    m.acceleration.x, m.acceleration.y = o.accel * c, o.accel * s
    m.yaw_rate = float(o.yaw_rate)
    if o.covariance is not None:
        m.covariance = np.asarray(o.covariance, dtype=float).reshape(36)
    m.visible_pixels = int(o.visible_pixels)
    m.occluded = bool(o.occluded)
    return m


def msg_to_object(m) -> vs.ObjectState:
    yaw = quaternion_to_yaw(m.pose.orientation)
    c, s = math.cos(yaw), math.sin(yaw)
    speed = m.velocity.x * c + m.velocity.y * s
    accel = m.acceleration.x * c + m.acceleration.y * s
    cov = np.asarray(m.covariance, dtype=float).reshape(6, 6)
    return vs.ObjectState(
        id=int(m.id), object_class=vs.ObjectClass(m.object_class.value), x=m.pose.position.x,
        y=m.pose.position.y, z=m.pose.position.z, yaw=yaw, length=m.size.x, width=m.size.y,
        height=m.size.z, speed=speed, accel=accel, yaw_rate=m.yaw_rate, score=m.score,
        visible_pixels=int(m.visible_pixels), occluded=bool(m.occluded),
        covariance=cov if np.any(cov) else None)


def vector_space_to_msgs(v: vs.VectorSpace):
    """-> (ObjectArray, RoadStructure)"""
    # lazy: ROS messages/rclpy only on this path: the module imports without ROS
    from autonomy_interfaces.msg import ObjectArray, RoadLine, RoadStructure
    from geometry_msgs.msg import Point, Point32
    stamp = sec_to_stamp(v.stamp)
    objs = ObjectArray()
    objs.header.stamp, objs.header.frame_id = stamp, v.frame_id
    objs.objects = [object_to_msg(o) for o in v.objects]
    road = RoadStructure()
    road.header.stamp, road.header.frame_id = stamp, v.frame_id
    for line in v.lines:
        m = RoadLine(id=int(line.id), line_type=int(line.line_type),
                     confidence=float(line.confidence))
        pts = np.asarray(line.points, dtype=float)
        m.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2]) if len(p) > 2 else 0.0)
                    for p in pts]
        road.lines.append(m)
    if v.drivable_area is not None:
        road.drivable_area.points = [Point32(x=float(p[0]), y=float(p[1]), z=0.0)
                                     for p in np.asarray(v.drivable_area)]
    return objs, road


def msgs_to_vector_space(objs, road=None) -> vs.VectorSpace:
    v = vs.VectorSpace(stamp=stamp_to_sec(objs.header.stamp), frame_id=objs.header.frame_id,
                       objects=[msg_to_object(m) for m in objs.objects])
    if road is not None:
        for m in road.lines:
            pts = np.array([[p.x, p.y, p.z] for p in m.points], dtype=float).reshape(-1, 3)
            v.lines.append(vs.RoadLine(int(m.id), vs.LineType(m.line_type), pts, m.confidence))
        if road.drivable_area.points:
            v.drivable_area = np.array([[p.x, p.y] for p in road.drivable_area.points])
    return v


def trajectory_to_msg(tr: vs.Trajectory, msg_type=None):
    # lazy: ROS messages/rclpy only on this path: the module imports without ROS
    from autonomy_interfaces.msg import Trajectory, TrajectoryPoint
    m = Trajectory()
    m.header.stamp, m.header.frame_id = sec_to_stamp(tr.stamp), tr.frame_id
    m.maneuver = tr.maneuver
    pts = []
    for i in range(len(tr)):
        p = TrajectoryPoint()
        p.time_from_start = sec_to_duration(float(tr.t[i]))
        p.pose.position.x, p.pose.position.y = float(tr.x[i]), float(tr.y[i])
        p.pose.orientation = yaw_to_quaternion(float(tr.yaw[i]))
        p.speed, p.acceleration, p.curvature = float(tr.speed[i]), float(tr.accel[i]), float(tr.curvature[i])
        pts.append(p)
    m.points = pts
    return m


def msg_to_trajectory(m) -> vs.Trajectory:
    n = len(m.points)
    arr = np.zeros((7, n))
    for i, p in enumerate(m.points):
        arr[:, i] = (duration_to_sec(p.time_from_start), p.pose.position.x, p.pose.position.y,
                     quaternion_to_yaw(p.pose.orientation), p.speed, p.acceleration, p.curvature)
    return vs.Trajectory(*arr, stamp=stamp_to_sec(m.header.stamp),
                         frame_id=m.header.frame_id, maneuver=m.maneuver)


def odometry_to_ego(msg) -> vs.EgoState:
    """nav_msgs/Odometry -> EgoState (speed = body-frame forward velocity)."""
    p, q, tw = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist
    return vs.EgoState(x=p.x, y=p.y, yaw=quaternion_to_yaw(q), speed=tw.linear.x,
                       yaw_rate=tw.angular.z, stamp=stamp_to_sec(msg.header.stamp))


def ego_to_odometry(e: vs.EgoState, frame_id: str = "odom", child_frame_id: str = "base_link"):
    # lazy: ROS messages/rclpy only on this path: the module imports without ROS
    from nav_msgs.msg import Odometry
    m = Odometry()
    m.header.stamp, m.header.frame_id, m.child_frame_id = sec_to_stamp(e.stamp), frame_id, child_frame_id
    m.pose.pose.position.x, m.pose.pose.position.y = float(e.x), float(e.y)
    m.pose.pose.orientation = yaw_to_quaternion(e.yaw)
    m.twist.twist.linear.x = float(e.speed)
    m.twist.twist.angular.z = float(e.yaw_rate)
    return m


def ego_state_is_finite(e: vs.EgoState) -> bool:
    return all(math.isfinite(v) for v in (e.x, e.y, e.yaw, e.speed, e.yaw_rate))


# ---------------------------------------------------------------- paths
def points_to_path(points: np.ndarray, stamp: float, frame_id: str = "odom"):
    """(N,2) polyline -> nav_msgs/Path (poses along it, heading to the next point)."""
    # lazy: ROS messages only on this path
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Path
    pts = np.asarray(points, dtype=float)[:, :2]
    path = Path()
    path.header.stamp, path.header.frame_id = sec_to_stamp(stamp), frame_id
    heading = np.arctan2(*np.diff(pts, axis=0).T[::-1]) if len(pts) >= 2 else np.zeros(1)
    heading = np.append(heading, heading[-1]) if len(pts) >= 2 else np.zeros(len(pts))
    for (x, y), h in zip(pts, heading):
        ps = PoseStamped()
        ps.header = path.header
        ps.pose.position.x, ps.pose.position.y = float(x), float(y)
        ps.pose.orientation = yaw_to_quaternion(float(h))
        path.poses.append(ps)
    return path


def path_to_points(msg) -> np.ndarray:
    """nav_msgs/Path -> (N,2) polyline (x, y of its poses)."""
    return np.array([[ps.pose.position.x, ps.pose.position.y] for ps in msg.poses],
                    dtype=float).reshape(-1, 2)

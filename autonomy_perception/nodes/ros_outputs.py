"""ROS message builders for perception outputs: BEV rasters as OccupancyGrid, the vector
space as RViz markers (boxes in class colours, velocity arrows, text ids, lines for lanes,
edges and curbs). Used by the perception node and by the simulator's ground truth."""
from __future__ import annotations

import array
import math
from typing import Sequence, Tuple

import numpy as np

from autonomy_stack import vector_space as vs
from autonomy_stack.bev_grid import BEVGrid, to_occupancy_layout
from autonomy_stack.ros.ros_conversions import yaw_to_quaternion

CLASS_COLORS = {
    vs.ObjectClass.CAR: (0.2, 0.6, 1.0), vs.ObjectClass.TRUCK: (0.6, 0.3, 1.0),
    vs.ObjectClass.PEDESTRIAN: (1.0, 0.8, 0.1), vs.ObjectClass.CYCLIST: (1.0, 0.5, 0.1),
    vs.ObjectClass.CONE: (1.0, 0.4, 0.0), vs.ObjectClass.POLE: (0.7, 0.7, 0.7),
    vs.ObjectClass.BARRIER: (0.8, 0.2, 0.2), vs.ObjectClass.UNKNOWN: (0.5, 0.5, 0.5),
}
LINE_COLORS = {
    vs.LineType.LANE_DASHED_WHITE: (0.95, 0.95, 0.95), vs.LineType.LANE_SOLID_WHITE: (1.0, 1.0, 1.0),
    vs.LineType.LANE_DASHED_YELLOW: (1.0, 0.85, 0.1), vs.LineType.LANE_SOLID_YELLOW: (1.0, 0.8, 0.0),
    vs.LineType.ROAD_EDGE: (0.9, 0.2, 0.2), vs.LineType.CURB: (0.9, 0.5, 0.2),
    vs.LineType.STOP_LINE: (1.0, 1.0, 1.0), vs.LineType.PARKING_BAY: (0.8, 0.8, 0.8),
}


def probability_grid(prob: np.ndarray, grid: BEVGrid, frame_id: str, stamp, msg=None):
    """[H, W] probabilities in the network raster convention (autonomy_stack.bev_grid: row 0
    = front, column 0 = left) -> OccupancyGrid (0..100) of the same extent, origin at
    (x_min, y_min), rows along +y, columns along +x."""
    # lazy: ROS messages/rclpy only on this path: the module imports without ROS
    from nav_msgs.msg import OccupancyGrid
    prob = np.asarray(prob, dtype=np.float32)
    if prob.shape != grid.shape:
        raise ValueError(f"raster shape {prob.shape} does not match the BEV grid {grid.shape}")
    msg = msg if msg is not None else OccupancyGrid()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    occ = to_occupancy_layout(np.clip(prob * 100.0, 0, 100).astype(np.int8))   # [y, x]
    msg.info.resolution = float(grid.res)
    msg.info.height, msg.info.width = int(occ.shape[0]), int(occ.shape[1])
    msg.info.origin.position.x, msg.info.origin.position.y = grid.occupancy_origin()
    msg.info.origin.orientation.w = 1.0
    data = array.array("b")
    data.frombytes(occ.tobytes())
    # the generated setter would copy (or validate element by element); the array has the
    # message's element type already
    if hasattr(msg, "_data"):
        msg._data = data
    else:
        msg.data = data
    return msg


def vector_space_markers(v: vs.VectorSpace, stamp, ns: str = "perception",
                         lifetime_s: float = 0.5):
    # lazy: ROS messages/rclpy only on this path: the module imports without ROS
    from geometry_msgs.msg import Point
    from visualization_msgs.msg import Marker, MarkerArray
    arr = MarkerArray()
    clear = Marker(action=Marker.DELETEALL, ns=ns)
    clear.header.frame_id, clear.header.stamp = v.frame_id, stamp
    arr.markers.append(clear)
    life_sec = int(lifetime_s)
    life_ns = int((lifetime_s - life_sec) * 1e9)

    def base(kind: int, mid: int, sub: str) -> Marker:
        m = Marker(type=kind, action=Marker.ADD, ns=f"{ns}/{sub}", id=mid)
        m.header.frame_id, m.header.stamp = v.frame_id, stamp
        m.lifetime.sec, m.lifetime.nanosec = life_sec, life_ns
        m.pose.orientation.w = 1.0
        return m

    for i, o in enumerate(v.objects):
        r, g, b = CLASS_COLORS.get(o.object_class, CLASS_COLORS[vs.ObjectClass.UNKNOWN])
        box = base(Marker.CUBE, i, "boxes")
        box.pose.position.x, box.pose.position.y = float(o.x), float(o.y)
        box.pose.position.z = float(o.z if o.z else o.height / 2.0)
        box.pose.orientation = yaw_to_quaternion(o.yaw)
        box.scale.x, box.scale.y, box.scale.z = float(o.length), float(o.width), float(o.height)
        box.color.r, box.color.g, box.color.b, box.color.a = r, g, b, 0.35 if o.occluded else 0.75
        arr.markers.append(box)
        if abs(o.speed) > 0.2:
            arrow = base(Marker.ARROW, i, "velocity")
            z = float(o.height)
            arrow.points = [Point(x=float(o.x), y=float(o.y), z=z),
                            Point(x=float(o.x + o.vx), y=float(o.y + o.vy), z=z)]
            arrow.scale.x, arrow.scale.y, arrow.scale.z = 0.15, 0.35, 0.4
            arrow.color.r, arrow.color.g, arrow.color.b, arrow.color.a = r, g, b, 1.0
            arr.markers.append(arrow)
        text = base(Marker.TEXT_VIEW_FACING, i, "ids")
        text.pose.position.x, text.pose.position.y = float(o.x), float(o.y)
        text.pose.position.z = float(o.height) + 0.8
        text.scale.z = 0.8
        text.color.r = text.color.g = text.color.b = text.color.a = 1.0
        text.text = f"{o.id} {o.object_class.name.lower()} {o.speed:.1f}m/s"
        arr.markers.append(text)
    for j, line in enumerate(v.lines):
        pts = np.asarray(line.points, dtype=float)
        if len(pts) < 2:
            continue
        m = base(Marker.LINE_STRIP, j, "lines")
        m.scale.x = 0.15
        r, g, b = LINE_COLORS.get(line.line_type, (0.5, 0.5, 0.5))
        m.color.r, m.color.g, m.color.b, m.color.a = r, g, b, max(0.2, float(line.confidence))
        m.points = [Point(x=float(p[0]), y=float(p[1]), z=0.05) for p in pts]
        arr.markers.append(m)
    return arr

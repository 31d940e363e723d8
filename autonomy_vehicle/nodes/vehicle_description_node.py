"""Vehicle description: publishes the vehicle's camera mounting (this vehicle's own
calibration) on /tf_static as base_link -> camera_<cam>, and the ego body as a marker.
The role robot_state_publisher plays for a URDF, for a camera rig file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from rclpy.node import Node
from geometry_msgs.msg import TransformStamped
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import Marker, MarkerArray

from autonomy_stack.ros.node_runtime import StartupError, run_node
from autonomy_stack.params import ParamSpec, declare_parameters
from autonomy_stack.ros.qos import LATCHED
from autonomy_stack.ros.ros_conversions import rotation_to_quaternion
from autonomy_vehicle.camera_models import load_rig

PARAMS = [
    ParamSpec("calibration_file", "", "camera rig YAML (empty: config/camera_rig.yaml)"),
    ParamSpec("base_frame", "base_link", "vehicle frame"),
    ParamSpec("camera_frame_prefix", "camera_", "camera frame = prefix + camera name"),
    ParamSpec("body_length", 4.7, "m", min=0.5, max=30.0),
    ParamSpec("body_width", 1.9, "m", min=0.3, max=5.0),
    ParamSpec("body_height", 1.5, "m", min=0.3, max=6.0),
    ParamSpec("rear_overhang", 0.9, "m, rear bumper behind the rear axle", min=0.0, max=10.0),
]


def rig_transforms(rig: dict, base_frame: str, prefix: str, stamp):
    out = []
    for name, cal in sorted(rig.items()):
        T = np.asarray(cal.T_base_camera, dtype=float)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise StartupError(f"camera '{name}': invalid mounting transform")
        t = TransformStamped()
        t.header.stamp = stamp
        t.header.frame_id = base_frame
        t.child_frame_id = prefix + name
        t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = \
            (float(v) for v in T[:3, 3])
        t.transform.rotation = rotation_to_quaternion(T[:3, :3])
        out.append(t)
    return out


class VehicleDescription(Node):
    def __init__(self):
        super().__init__("vehicle_description")
        p = self.p = declare_parameters(self, PARAMS)

        path = p["calibration_file"] or None
        if path is not None and not Path(path).exists():
            raise StartupError(f"parameter 'calibration_file': {path} does not exist")
        try:
            rig = load_rig(path)
        except Exception as exc:  # malformed YAML etc.: one clear start-up error
            raise StartupError(f"cannot load camera rig {path or '(default)'}: {exc}") from None
        stamp = self.get_clock().now().to_msg()
        self.tf_pub = self.create_publisher(TFMessage, "/tf_static", LATCHED)
        self.tf_pub.publish(TFMessage(transforms=rig_transforms(
            rig, p["base_frame"], p["camera_frame_prefix"], stamp)))
        body = Marker(type=Marker.CUBE, action=Marker.ADD, ns="ego_body", id=0)
        body.header.frame_id, body.header.stamp = p["base_frame"], stamp
        body.pose.position.x = p["body_length"] / 2.0 - p["rear_overhang"]
        body.pose.position.z = p["body_height"] / 2.0
        body.scale.x, body.scale.y, body.scale.z = p["body_length"], p["body_width"], p["body_height"]
        body.color.r, body.color.g, body.color.b, body.color.a = 0.1, 0.4, 0.9, 0.6
        self.marker_pub = self.create_publisher(MarkerArray, "/vehicle/markers", LATCHED)
        self.marker_pub.publish(MarkerArray(markers=[body]))
        self.get_logger().info(f"published mounting of {len(rig)} cameras on /tf_static")


def main(args=None):
    return run_node(VehicleDescription, args)


if __name__ == "__main__":
    raise SystemExit(main())

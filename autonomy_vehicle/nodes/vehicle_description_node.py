"""Vehicle description: publishes the vehicle's camera mounting (this vehicle's own
calibration) on /tf_static as base_link -> camera_<cam>, and the ego body as a marker.
The role robot_state_publisher plays for a URDF, for a camera rig file.

The vehicle's parameters (body, wheelbase, steering limits) are those of the one
vehicle description, `autonomy_vehicle.vehicle_model.VehicleParams` (config/vehicle.yaml
is both this node's parameter file and what VehicleParams() reads); base_link is the
rear-axle centre."""
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
from autonomy_vehicle.vehicle_model import CONFIG_KEYS, VehicleParams

_V = VehicleParams()
# VehicleParams field -> (description, min, max)
_VEHICLE_PARAMS = {
    "length": ("m, body", 0.5, 30.0), "width": ("m, body", 0.3, 5.0),
    "height": ("m, body", 0.3, 6.0),
    "rear_overhang": ("m, rear bumper behind the rear axle", 0.0, 10.0),
    "wheelbase": ("m", 0.5, 10.0), "max_steer": ("rad at the wheels", 0.05, 1.2),
    "max_steer_rate": ("rad/s", 0.05, 5.0),
    "steer_time_constant": ("s, first-order steering lag", 0.0, 2.0),
    "max_accel": ("m/s^2", 0.1, 15.0), "max_decel": ("m/s^2 (positive)", 0.1, 15.0),
    "max_speed": ("m/s", 0.5, 100.0), "max_reverse_speed": ("m/s", 0.0, 20.0),
    "steer_delay": ("s, steering dead time", 0.0, 1.0),
}
PARAMS = [
    ParamSpec("calibration_file", "", "camera rig YAML (empty: config/camera_rig.yaml)"),
    ParamSpec("base_frame", "base_link", "vehicle frame"),
    ParamSpec("camera_frame_prefix", "camera_", "camera frame = prefix + camera name"),
    *(ParamSpec(CONFIG_KEYS.get(name, name), getattr(_V, name), desc, min=lo, max=hi)
      for name, (desc, lo, hi) in _VEHICLE_PARAMS.items()),
]


def vehicle_from_params(p: dict) -> VehicleParams:
    """The VehicleParams of the node's parameters."""
    return VehicleParams(**{name: float(p[CONFIG_KEYS.get(name, name)])
                            for name in _VEHICLE_PARAMS})


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
        vp = self.vehicle = vehicle_from_params(p)
        body = Marker(type=Marker.CUBE, action=Marker.ADD, ns="ego_body", id=0)
        body.header.frame_id, body.header.stamp = p["base_frame"], stamp
        body.pose.position.x = vp.center_offset
        body.pose.position.z = vp.height / 2.0
        body.scale.x, body.scale.y, body.scale.z = vp.length, vp.width, vp.height
        body.color.r, body.color.g, body.color.b, body.color.a = 0.1, 0.4, 0.9, 0.6
        self.marker_pub = self.create_publisher(MarkerArray, "/vehicle/markers", LATCHED)
        self.marker_pub.publish(MarkerArray(markers=[body]))
        self.get_logger().info(f"published mounting of {len(rig)} cameras on /tf_static; "
                               f"vehicle {vp.length} x {vp.width} m, wheelbase {vp.wheelbase} m, "
                               f"max curvature {vp.max_curvature:.3f} 1/m")


def main(args=None):
    return run_node(VehicleDescription, args)


if __name__ == "__main__":
    raise SystemExit(main())

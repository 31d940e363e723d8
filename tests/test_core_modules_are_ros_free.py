"""Pure cores, thin nodes: every module except nodes and ROS glue imports without rclpy."""
import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["autonomy_stack", "autonomy_vehicle", "autonomy_perception", "autonomy_planning",
            "autonomy_control", "autonomy_simulator", "autonomy_replay", "autonomy_tools"]
# modules allowed to import rclpy: nodes and ROS glue (by name)
ROS_GLUE = ("_node", "ros_conversions", "qos", "node_runtime", "replay", "recorder", "bag_player",
            "tf_listener", "static_tf", "ros_")


def core_modules():
    mods = []
    for pkg in PACKAGES:
        for info in pkgutil.walk_packages([str(ROOT / pkg)], prefix=pkg + "."):
            leaf = info.name.rsplit(".", 1)[-1]
            if any(tag in leaf for tag in ROS_GLUE):
                continue
            mods.append(info.name)
    return mods


def test_core_modules_do_not_import_rclpy():
    mods = core_modules()
    assert "autonomy_stack.vector_space" in mods and "autonomy_vehicle.vehicle_model" in mods
    code = ("import sys, importlib\n"
            f"mods = {mods!r}\n"
            "bad = []\n"
            "for m in mods:\n"
            "    importlib.import_module(m)\n"
            "    if 'rclpy' in sys.modules:\n"
            "        bad.append(m); break\n"
            "print('BAD', bad)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "BAD []" in res.stdout, f"{res.stdout} -- a core module imports rclpy"

"""planning_node over DDS: safe stop + ERROR diagnostic while inputs are missing; a full
plan (trajectory at 0.1 s, futures, path, corridor, markers) with fresh inputs; bad inputs
(wrong frame, NaN odometry) dropped and counted without a crash; stale perception ->
safe stop again; bad parameter / unavailable mode -> exit 2 naming the parameter."""
import math
import time

import numpy as np
import pytest

from ros_helpers import spin_until, start_node, stop

rclpy = pytest.importorskip("rclpy")

XS = np.linspace(-50.0, 250.0, 61)


class Harness:
    """Plays odometry + perception; records the planner's outputs."""

    def __init__(self):
        from autonomy_interfaces.msg import (AgentFutureArray, Corridor, ObjectArray,
                                             RoadStructure, Trajectory)
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import Odometry, Path
        from visualization_msgs.msg import MarkerArray

        from autonomy_stack.ros.qos import OUTPUTS, STATE
        self.node = rclpy.create_node(f"planning_test_{int(time.time() * 1e3) % 100000}")
        self.odom_pub = self.node.create_publisher(Odometry, "/odom", STATE)
        self.obj_pub = self.node.create_publisher(ObjectArray, "/perception/objects", OUTPUTS)
        self.road_pub = self.node.create_publisher(RoadStructure, "/perception/road", OUTPUTS)
        self.trajs, self.futures, self.paths, self.corridors, self.markers, self.diags = \
            [], [], [], [], [], []
        self.node.create_subscription(Trajectory, "/planning/trajectory", self.trajs.append, OUTPUTS)
        self.node.create_subscription(AgentFutureArray, "/planning/agent_futures",
                                      self.futures.append, OUTPUTS)
        self.node.create_subscription(Path, "/planning/path", self.paths.append, OUTPUTS)
        self.node.create_subscription(Corridor, "/planning/corridor", self.corridors.append, OUTPUTS)
        self.node.create_subscription(MarkerArray, "/planning/markers", self.markers.append, OUTPUTS)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.send_odom = True
        self.send_perception = False
        self.nan_odom = False
        self.wrong_frame = False
        self.x = 0.0
        self.node.create_timer(0.05, self._tick)

    def _on_diag(self, arr):
        for s in arr.status:
            if s.name.startswith("planning"):
                self.diags.append(s)

    def last_diag(self):
        return self.diags[-1] if self.diags else None

    def values(self):
        return {kv.key: kv.value for kv in self.diags[-1].values} if self.diags else {}

    def now(self):
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _tick(self):
        from autonomy_stack.ros.ros_conversions import ego_to_odometry, vector_space_to_msgs
        from autonomy_stack.vector_space import (EgoState, LineType, ObjectClass, ObjectState,
                                                 RoadLine, VectorSpace)
        now = self.now()
        self.x += 6.0 * 0.05
        if self.send_odom:
            e = EgoState(x=self.x, y=0.0, yaw=0.0, speed=6.0, stamp=now)
            if self.nan_odom:
                e.y = float("nan")
            self.odom_pub.publish(ego_to_odometry(e))
        if self.send_perception:
            lines = [RoadLine(1, LineType.CURB, np.column_stack([XS, np.full_like(XS, -1.75)])),
                     RoadLine(2, LineType.LANE_DASHED_YELLOW, np.column_stack([XS, np.full_like(XS, 1.75)])),
                     RoadLine(3, LineType.CURB, np.column_stack([XS, np.full_like(XS, 5.25)]))]
            objs = [ObjectState(7, ObjectClass.CAR, self.x + 40.0, -0.6, 0.0, 4.5, 1.9, 1.5,
                                is_static=True),
                    ObjectState(8, ObjectClass.CAR, self.x + 90.0, 3.5, math.pi, 4.6, 1.9, 1.5,
                                speed=5.0)]
            v = VectorSpace(stamp=now, frame_id="base_link" if self.wrong_frame else "odom",
                            objects=objs, lines=lines)
            om, rm = vector_space_to_msgs(v)
            self.obj_pub.publish(om)
            self.road_pub.publish(rm)


@pytest.fixture
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.mark.timeout(60)
def test_node_plans_and_handles_missing_stale_and_bad_inputs(ros):
    from diagnostic_msgs.msg import DiagnosticStatus
    proc = start_node("planning_node", name="planning", params_files=["planning.yaml"])
    h = Harness()
    try:
        # odometry only: safe stop + ERROR naming the missing perception
        assert spin_until(h.node, lambda: len(h.trajs) >= 3, 25.0), stop(proc)
        assert h.trajs[-1].maneuver == "safe_stop"
        assert spin_until(h.node, lambda: h.last_diag() is not None and
                          h.last_diag().level == DiagnosticStatus.ERROR and
                          "/perception/objects" in h.last_diag().message, 5.0), stop(proc)
        # full inputs: a real plan with futures, path, corridor and markers
        h.send_perception = True
        assert spin_until(h.node, lambda: h.trajs and h.trajs[-1].maneuver != "safe_stop"
                          and h.corridors and h.futures and h.markers, 15.0), stop(proc)
        tr = h.trajs[-1]
        assert len(tr.points) == 101
        assert tr.points[-1].time_from_start.sec == 10
        assert tr.header.frame_id == "odom"
        assert len(h.paths[-1].poses) == 101
        fut = {a.agent_id: a for a in h.futures[-1].agents}
        assert set(fut) == {7, 8}
        # the message has no "parked" flag: a standing car may stay or start
        assert {h.label for h in fut[7].hypotheses} == {"stationary", "start"}
        assert len(fut[8].hypotheses) >= 2
        assert abs(sum(p.probability for p in fut[8].hypotheses) - 1.0) < 1e-3
        assert len(h.corridors[-1].slices) > 5
        ns = {m.ns for m in h.markers[-1].markers}
        assert {"trajectory", "maneuver", "corridor", "futures"} <= ns
        assert spin_until(h.node, lambda: h.last_diag().level == DiagnosticStatus.OK, 5.0), stop(proc)
        assert int(h.values()["candidates_per_cycle"]) >= 1000
        # perception in the wrong frame: dropped, counted, safe stop
        h.wrong_frame = True
        assert spin_until(h.node, lambda: int(h.values().get("dropped_objects", "0")) > 0
                          and h.trajs[-1].maneuver == "safe_stop", 6.0), stop(proc)
        h.wrong_frame = False
        assert spin_until(h.node, lambda: h.trajs[-1].maneuver != "safe_stop", 6.0), stop(proc)
        # NaN odometry: dropped and counted; odometry goes stale -> safe stop, no crash
        h.nan_odom = True
        assert spin_until(h.node, lambda: int(h.values().get("dropped_odom", "0")) > 0
                          and "/odom stale" in h.last_diag().message, 6.0), stop(proc)
        h.nan_odom = False
        # perception stops: stale -> safe stop
        h.send_perception = False
        assert spin_until(h.node, lambda: h.trajs[-1].maneuver == "safe_stop" and
                          "stale" in h.last_diag().message, 6.0), stop(proc)
        assert proc.poll() is None, stop(proc)
    finally:
        out = stop(proc)
        h.node.destroy_node()
    assert "Traceback" not in out, out


@pytest.mark.timeout(30)
def test_bad_parameters_fail_startup_naming_them():
    proc = start_node("planning_node", params_files=["planning.yaml"], params={"rate_hz": -1.0})
    proc.wait(timeout=20)
    out = proc.stdout.read()
    assert proc.returncode == 2 and "rate_hz" in out, out
    proc = start_node("planning_node", params_files=["planning.yaml"], params={"mode": "flying"})
    proc.wait(timeout=20)
    out = proc.stdout.read()
    assert proc.returncode == 2 and "mode" in out, out


def test_core_parameters_are_declared_from_the_core_dataclasses():
    """Defaults written once: each core parameter's declaration (default, type, range,
    description) is its config dataclass field; the declared defaults give exactly
    `PlannerConfig()`; config/planning.yaml repeats no default."""
    import dataclasses

    import yaml

    from autonomy_planning.nodes.planning_node import (_SOURCES, CORE_PARAMS, PARAMS,
                                                       config_from_params)
    from autonomy_planning.planner import PlannerConfig
    from autonomy_stack.paths import SOURCE_ROOT
    specs = {s.name: s for s in PARAMS}
    assert set(CORE_PARAMS) <= set(specs)
    for name, paths in CORE_PARAMS.items():
        for path in paths:      # every field a parameter sets starts at the declared default
            owner, _, attr = path.rpartition(".")
            cls = _SOURCES.get(owner) or type(getattr(PlannerConfig(), owner))
            default = {f.name: f for f in dataclasses.fields(cls)}[attr].default
            assert list(default) == specs[name].default if isinstance(default, tuple) \
                else default == specs[name].default, (name, path)
    assert specs["max_accel"].min == 0.1 and specs["horizon"].description
    assert config_from_params({n: s.default for n, s in specs.items()}) == PlannerConfig()
    yml = yaml.safe_load((SOURCE_ROOT / "config" / "planning.yaml").read_text())
    for name, value in (yml["/**"]["ros__parameters"] or {}).items():
        assert value != specs[name].default, f"config/planning.yaml repeats the default of {name}"


@pytest.mark.timeout(60)
def test_auto_mode_drives_without_a_parking_goal(ros):
    """mode 'auto' (driving with the parking hand-over): plans like the driving mode while
    no parking goal is near, and says which mode planned (diagnostics active_mode)."""
    proc = start_node("planning_node", name="planning", params_files=["planning.yaml"],
                      params={"mode": "auto"})
    h = Harness()
    h.send_perception = True
    try:
        # a diagnostics message of a planned cycle (one sent on a level change without a
        # plan carries no candidates): fresh clone run 2 read one of those
        assert spin_until(h.node, lambda: h.trajs and h.trajs[-1].maneuver != "safe_stop"
                          and h.values().get("active_mode") == "driving"
                          and "candidates_per_cycle" in h.values(), 25.0), stop(proc)
        assert h.values()["mode"] == "auto"
        assert int(h.values()["candidates_per_cycle"]) >= 1000
        assert proc.poll() is None, stop(proc)
    finally:
        out = stop(proc)
        h.node.destroy_node()
    assert "Traceback" not in out, out


def test_route_path_conversion_keeps_order_and_heading_of_a_left_turn():
    """points_to_path / path_to_points (the /planning/route message): a route turning LEFT
    comes back in order, each pose heading to the next point."""
    from autonomy_stack.ros.ros_conversions import path_to_points, points_to_path, quaternion_to_yaw
    pts = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0], [20.0, 10.0]])
    msg = points_to_path(pts, 12.5, "odom")
    assert msg.header.frame_id == "odom" and len(msg.poses) == 4
    assert np.allclose(path_to_points(msg), pts)
    yaws = [quaternion_to_yaw(p.pose.orientation) for p in msg.poses]
    assert yaws[0] == pytest.approx(0.0) and yaws[2] == pytest.approx(math.pi / 2)
    assert yaws[3] == pytest.approx(math.pi / 2)

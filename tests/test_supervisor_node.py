"""supervisor_node and control_node's supervisor stop over DDS.

1. /odom drifts the ego to the LEFT off a drivable raster published in base_link (the road
   in odom runs at 2.0 rad through (100, -40), so the raster has to be located by the
   odometry at its stamp): /supervisor/status turns ERROR "off_road" with the figure and
   the limit, /diagnostics carries the same ERROR, the event is logged once. A new goal
   starts a new episode; then the road ENDS ahead: the error comes when the front bumper
   (3.8 m ahead of the rear axle, the rear one is 0.9 m behind) leaves it -- a raster read
   the wrong way round puts the end behind the car and fires 2.9 m later.
2. control_node tracking a valid trajectory gets a supervisor ERROR: its commands brake to
   a standstill (the odometry here integrates the commands) and stay stopped although
   valid trajectories keep coming; a later OK status lets it drive again."""
import math
import time

import numpy as np
import pytest

from ros_helpers import spin_until, start_node, stop, wait_for_subscribers

rclpy = pytest.importorskip("rclpy")

ROAD = (100.0, -40.0, 2.0)          # road frame in odom: centreline along its x
LANE_HALF = 1.75


@pytest.fixture
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


def drivable_grid(ego_xy_yaw, stamp, s_end=1e9, res=0.5, extent=40.0, half=LANE_HALF):
    """OccupancyGrid (base_link, simulator layout) of the road band |y_road| <= `half` that
    ends at s_road = s_end."""
    from nav_msgs.msg import OccupancyGrid

    from autonomy_stack.bev_grid import occupancy_cell_centres
    from autonomy_stack.geometry import from_frame, to_frame
    n = int(extent / res)
    origin = (-extent / 2, -extent / 2)
    centres = occupancy_cell_centres((n, n), res, origin).reshape(-1, 2)
    road = to_frame(from_frame(centres, *ego_xy_yaw), *ROAD)
    occ = np.where((np.abs(road[:, 1]) <= half) & (road[:, 0] <= s_end), 100, 0)
    occ = occ.astype(np.int8)
    g = OccupancyGrid()
    g.header.stamp, g.header.frame_id = stamp, "base_link"
    g.info.resolution = res
    g.info.width = g.info.height = n
    g.info.origin.position.x, g.info.origin.position.y = origin
    g.info.origin.orientation.w = 1.0
    g.data = occ.tolist()
    return g


class SupervisorHarness:
    """Drives the ego along the road at 5 m/s while it drifts left at `drift` m/s."""

    def __init__(self):
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
        from geometry_msgs.msg import PoseStamped
        from nav_msgs.msg import OccupancyGrid, Odometry

        from autonomy_stack.ros.qos import LATCHED, OUTPUTS, STATE
        self.node = rclpy.create_node(f"supervisor_test_{int(time.time() * 1e3) % 100000}")
        self.goal_pub = self.node.create_publisher(PoseStamped, "/planning/goal", LATCHED)
        self.odom_pub = self.node.create_publisher(Odometry, "/odom", STATE)
        self.grid_pub = self.node.create_publisher(OccupancyGrid, "/perception/bev/drivable",
                                                   OUTPUTS)
        self.statuses, self.diags = [], []
        self.node.create_subscription(DiagnosticStatus, "/supervisor/status",
                                      self._on_status, STATE)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.s, self.y_road, self.drift, self.s_end = 0.0, 0.0, 0.0, 1e9
        self.half = LANE_HALF
        self.s_at_error = None
        self.node.create_timer(0.05, self._tick)

    def _on_status(self, st):
        from diagnostic_msgs.msg import DiagnosticStatus
        if st.level == DiagnosticStatus.ERROR and self.s_at_error is None:
            self.s_at_error = self.s
        self.statuses.append(st)

    def _on_diag(self, arr):
        self.diags += [s for s in arr.status if s.name == "supervisor"]

    def goal(self, s_road):
        """A goal far ahead on the road (a new goal starts a new episode)."""
        from geometry_msgs.msg import PoseStamped

        from autonomy_stack.geometry import from_frame
        from autonomy_stack.ros.ros_conversions import yaw_to_quaternion
        g = PoseStamped()
        g.header.frame_id = "odom"
        x, y = from_frame(np.array([[s_road, 0.0]]), *ROAD)[0]
        g.pose.position.x, g.pose.position.y = float(x), float(y)
        g.pose.orientation = yaw_to_quaternion(ROAD[2])
        self.goal_pub.publish(g)

    def _tick(self):
        from autonomy_stack.geometry import from_frame
        from autonomy_stack.ros.ros_conversions import ego_to_odometry, sec_to_stamp
        from autonomy_stack.vector_space import EgoState
        self.s += 5.0 * 0.05
        self.y_road += self.drift * 0.05
        x, y = from_frame(np.array([[self.s, self.y_road]]), *ROAD)[0]
        now = self.node.get_clock().now().nanoseconds * 1e-9
        pose = (float(x), float(y), ROAD[2])
        self.odom_pub.publish(ego_to_odometry(EgoState(*pose, speed=5.0, stamp=now)))
        self.grid_pub.publish(drivable_grid(pose, sec_to_stamp(now), self.s_end, half=self.half))


def test_drivable_grid_conversion_hot_front_left_quadrant():
    """The node reads the OccupancyGrid perception publishes (ros_outputs.probability_grid)
    in the BEV convention: a raster drivable only front-left of the ego stays front-left
    of it in odom (no DDS)."""
    from autonomy_control.nodes.supervisor_node import drivable_from_grid
    from autonomy_perception.nodes.ros_outputs import probability_grid
    from autonomy_stack.bev_grid import BEVGrid
    from autonomy_stack.geometry import from_frame
    from autonomy_stack.ros.ros_conversions import sec_to_stamp
    grid = BEVGrid((-20.0, 20.0), (-20.0, 20.0), 0.5)
    prob = np.zeros(grid.shape, np.float32)
    prob[: grid.H // 2, : grid.W // 2] = 0.9          # row 0 = front, column 0 = left
    msg = probability_grid(prob, grid, "base_link", sec_to_stamp(3.0))
    area = drivable_from_grid(msg, ROAD, 50)
    pts = from_frame(np.array([[10.0, 10.0], [10.0, -10.0], [-10.0, 10.0], [-10.0, -10.0]]),
                     *ROAD)
    d = area.outside_distance(pts)
    assert d[0] == 0.0
    assert d[1] == pytest.approx(10.0, abs=0.5) and d[2] == pytest.approx(10.0, abs=0.5)
    assert d[3] == pytest.approx(math.hypot(10.0, 10.0), abs=0.5)


def test_standing_or_backwards_plan_is_not_a_route():
    from autonomy_control.nodes.supervisor_node import usable_route
    from autonomy_stack.vector_space import EgoState
    ego = EgoState(x=10.0, y=0.0, yaw=0.0, speed=0.1)
    ahead = np.stack([np.linspace(10.0, 30.0, 21), np.zeros(21)], 1)
    assert usable_route(ahead, ego) is ahead
    assert usable_route(np.array([[10.0, 0.0], [10.5, 0.0]]), ego) is None   # standing
    assert usable_route(ahead[::-1], ego) is None                          # ends behind
    assert usable_route(None, ego) is None


def test_episode_restart_is_detected_from_an_ego_jump():
    from autonomy_control.nodes.supervisor_node import is_teleport
    from autonomy_stack.vector_space import EgoState
    prev = (20.0, 150.0, -1.75, 0.0)
    assert is_teleport(prev, EgoState(x=5.0, y=-1.75, speed=0.0, stamp=20.02))
    assert not is_teleport(prev, EgoState(x=150.3, y=-1.75, speed=14.0, stamp=20.02))
    assert not is_teleport(prev, EgoState(x=5.0, y=-1.75, speed=0.0, stamp=25.0))  # a gap


def values(status):
    return {kv.key: kv.value for kv in status.values}


@pytest.mark.timeout(60)
def test_off_road_to_the_left_is_an_error_with_reason_and_figure(ros):
    from diagnostic_msgs.msg import DiagnosticStatus
    proc = start_node("supervisor_node", name="supervisor", params_files=["supervisor.yaml"])
    h = SupervisorHarness()
    try:
        assert wait_for_subscribers(h.node, h.grid_pub, 20.0), stop(proc)
        assert wait_for_subscribers(h.node, h.odom_pub, 10.0), stop(proc)
        # on the lane: footprint inside (no goal/path/objects: those checks are off, WARN)
        assert spin_until(h.node, lambda: h.statuses and "off_road_m" in values(
            h.statuses[-1]), 15.0), stop(proc)
        spin_until(h.node, lambda: False, 1.0)
        assert all(s.level != DiagnosticStatus.ERROR for s in h.statuses)
        assert float(values(h.statuses[-1])["off_road_m"]) < 0.3
        assert "off_road" not in values(h.statuses[-1])["checks_off"]
        # drift left at 0.5 m/s: the left side crosses the edge + 0.3 m at y_road = 1.1 m
        h.drift = 0.5
        assert spin_until(h.node, lambda: h.statuses[-1].level == DiagnosticStatus.ERROR,
                          15.0), stop(proc)
        st = h.statuses[-1]
        assert st.name == "supervisor" and "off_road" in st.message
        assert "limit 0.30 m" in st.message
        v = values(st)
        assert v["reasons"] == "off_road" and v["stop"] == "true"
        assert 1.0 < h.y_road < 2.0                        # it fired at the left edge
        assert spin_until(h.node, lambda: h.diags and h.diags[-1].level ==
                          DiagnosticStatus.ERROR and "off_road" in h.diags[-1].message, 5.0)
        # latched: back on the road it stays ERROR
        h.drift, h.y_road = 0.0, 0.0
        n0 = len(h.statuses)
        spin_until(h.node, lambda: len(h.statuses) > n0 + 10, 5.0)
        assert all(s.level == DiagnosticStatus.ERROR for s in h.statuses[n0:])
        assert float(values(h.statuses[-1])["off_road_m"]) < 0.3
        # a new goal: new episode, OK; then the road ends 15 m ahead
        assert wait_for_subscribers(h.node, h.goal_pub, 10.0), stop(proc)
        h.goal(h.s + 500.0)
        assert spin_until(h.node, lambda: h.statuses[-1].level != DiagnosticStatus.ERROR,
                          10.0), stop(proc)
        h.s_at_error, h.s_end = None, h.s + 15.0
        assert spin_until(h.node, lambda: h.s_at_error is not None, 10.0), stop(proc)
        fire = h.s_end - (3.8 - 0.3)                      # front bumper 0.3 m past the end
        assert fire - 0.7 <= h.s_at_error <= fire + 1.0, (h.s_at_error - fire, stop(proc))
        assert "off_road" in h.statuses[-1].message
    finally:
        out = stop(proc)
        h.node.destroy_node()
    assert "Traceback" not in out, out
    assert out.count("supervisor: ERROR off_road") == 2, out     # once per episode
    assert "new goal (" in out and ": new episode" in out


@pytest.mark.timeout(60)
def test_navigation_route_is_the_route_kept_to(ros):
    """/planning/route (nav_msgs/Path, latched) along the road: the ego drifting LEFT on a
    wide drivable area is stopped for leaving the route (off_route, 6 m), with the
    figure. A route in another frame is dropped, counted and logged."""
    from diagnostic_msgs.msg import DiagnosticStatus
    from nav_msgs.msg import Path

    from autonomy_stack.geometry import from_frame
    from autonomy_stack.ros.qos import LATCHED
    from autonomy_stack.ros.ros_conversions import points_to_path
    proc = start_node("supervisor_node", name="supervisor", params_files=["supervisor.yaml"])
    h = SupervisorHarness()
    h.half = 30.0                                       # the whole raster drivable
    route_pub = h.node.create_publisher(Path, "/planning/route", LATCHED)
    try:
        assert wait_for_subscribers(h.node, route_pub, 20.0), stop(proc)
        route_pub.publish(points_to_path(np.zeros((3, 2)), 0.0, "map"))    # wrong frame
        # (one at a time: the latched topic keeps only the last message)
        assert spin_until(h.node, lambda: h.statuses and values(
            h.statuses[-1]).get("dropped_route") == "1", 15.0), stop(proc)
        road = from_frame(np.column_stack([np.arange(-20.0, 400.0, 2.0), np.zeros(210)]), *ROAD)
        route_pub.publish(points_to_path(road, 0.0, "odom"))
        assert spin_until(h.node, lambda: "route_deviation_m" in values(h.statuses[-1]),
                          15.0), stop(proc)
        assert all(s.level != DiagnosticStatus.ERROR for s in h.statuses)
        h.drift = 2.0
        assert spin_until(h.node, lambda: h.statuses[-1].level == DiagnosticStatus.ERROR,
                          15.0), stop(proc)
        st = h.statuses[-1]
        assert "off_route" in st.message and "from the route (limit 6.00 m)" in st.message
        assert 5.8 < h.y_road < 7.5                        # it fired 6 m left of the route
        assert float(values(st)["route_deviation_m"]) > 6.0
    finally:
        out = stop(proc)
        h.node.destroy_node()
    assert "Traceback" not in out, out
    assert "route dropped: frame 'map'" in out, out


class ControlHarness:
    """Planner + a plant: odometry integrates the commands (speed along +x)."""

    def __init__(self):
        from autonomy_interfaces.msg import ControlCommand, Trajectory
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
        from nav_msgs.msg import Odometry

        from autonomy_stack.ros.qos import OUTPUTS, STATE
        self.node = rclpy.create_node(f"control_sup_test_{int(time.time() * 1e3) % 100000}")
        self.traj_pub = self.node.create_publisher(Trajectory, "/planning/trajectory", OUTPUTS)
        self.odom_pub = self.node.create_publisher(Odometry, "/odom", STATE)
        self.sup_pub = self.node.create_publisher(DiagnosticStatus, "/supervisor/status", STATE)
        self.cmds, self.diags = [], []
        self.node.create_subscription(ControlCommand, "/control/command", self.cmds.append,
                                      STATE)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.x, self.v = 0.0, 5.0
        self.node.create_timer(0.02, self._tick_odom)
        self.node.create_timer(0.1, self._tick_traj)

    def _on_diag(self, arr):
        self.diags += [s for s in arr.status if s.name.startswith("control_node")]

    def now(self):
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _tick_odom(self):
        from autonomy_stack.ros.ros_conversions import ego_to_odometry
        from autonomy_stack.vector_space import EgoState
        a = self.cmds[-1].acceleration if self.cmds else 0.0
        self.v = max(0.0, self.v + a * 0.02)
        self.x += self.v * 0.02
        self.odom_pub.publish(ego_to_odometry(EgoState(x=self.x, speed=self.v, stamp=self.now())))

    def _tick_traj(self):
        from autonomy_stack.ros.ros_conversions import trajectory_to_msg
        from autonomy_stack.vector_space import Trajectory
        n = 50
        t = np.arange(n) * 0.1
        self.traj_pub.publish(trajectory_to_msg(Trajectory(
            t=t, x=self.x - 1.0 + 5.0 * t, y=np.zeros(n), yaw=np.zeros(n),
            speed=np.full(n, 5.0), accel=np.zeros(n), curvature=np.zeros(n),
            stamp=self.now(), frame_id="odom")))

    def supervisor(self, level, message):
        from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
        s = DiagnosticStatus(name="supervisor", message=message, level=level)
        s.values = [KeyValue(key="stop_decel_mps2", value="2.5")]
        self.sup_pub.publish(s)


@pytest.mark.timeout(60)
def test_control_stops_on_supervisor_error_and_stays_stopped(ros):
    from diagnostic_msgs.msg import DiagnosticStatus
    proc = start_node("control_node", name="control_node", params_files=["control.yaml"])
    h = ControlHarness()
    try:
        assert wait_for_subscribers(h.node, h.sup_pub, 20.0), stop(proc)
        assert spin_until(h.node, lambda: len(h.cmds) > 20 and not h.cmds[-1].emergency,
                          20.0), stop(proc)
        for _ in range(5):                        # tracking at 5 m/s, no supervisor yet
            h.supervisor(DiagnosticStatus.OK, "ok")
            spin_until(h.node, lambda: False, 0.1)
        assert not h.cmds[-1].emergency and h.v > 4.0
        n0 = len(h.cmds)
        h.supervisor(DiagnosticStatus.ERROR, "off_road: footprint 0.62 m outside the "
                     "drivable area (limit 0.30 m)")
        assert spin_until(h.node, lambda: h.v == 0.0, 10.0), (h.v, stop(proc))
        stopping = h.cmds[n0:]
        acc = np.array([m.acceleration for m in stopping])
        assert acc.min() >= -2.5 - 1e-6 and acc.min() < -2.0    # the supervisor's 2.5 m/s^2
        assert all(m.emergency for m in stopping[10:])
        assert spin_until(h.node, lambda: h.diags and h.diags[-1].level ==
                          DiagnosticStatus.ERROR and "supervisor: off_road" in
                          h.diags[-1].message, 5.0), stop(proc)
        # valid trajectories keep coming: it stays stopped
        n1 = len(h.cmds)
        spin_until(h.node, lambda: False, 2.0)
        assert h.v == 0.0 and all(m.emergency and m.acceleration <= 0.0
                                  for m in h.cmds[n1:])
        # the supervisor is reset (OK): tracking resumes
        h.supervisor(DiagnosticStatus.OK, "ok")
        assert spin_until(h.node, lambda: h.v > 1.0 and not h.cmds[-1].emergency, 10.0), \
            stop(proc)
    finally:
        out = stop(proc)
        h.node.destroy_node()
    assert "Traceback" not in out, out
    assert out.count("supervisor stop: off_road") == 1, out


@pytest.mark.timeout(40)
def test_control_require_supervisor_stops_without_status(ros):
    proc = start_node("control_node", name="control_node", params_files=["control.yaml"],
                      params={"require_supervisor": True})
    h = ControlHarness()
    try:
        assert spin_until(h.node, lambda: len(h.cmds) > 20, 20.0), stop(proc)
        spin_until(h.node, lambda: False, 1.0)
        assert all(m.emergency for m in h.cmds[-20:])
        assert spin_until(h.node, lambda: h.diags and "no /supervisor/status" in
                          h.diags[-1].message, 5.0), stop(proc)
    finally:
        out = stop(proc)
        h.node.destroy_node()
    assert "Traceback" not in out, out
    assert math.isfinite(h.v)

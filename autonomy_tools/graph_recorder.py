"""Records a running graph into a rosbag2 (MCAP) and watches the episode, for the closed-loop
demo: a background thread with its own rclpy context subscribes (raw CDR) to every topic
that matches `include` and not `exclude` as soon as a publisher is discovered (QoS matched
to the publishers: best effort / transient local where they are), writes each message at
the graph's sim time (the latest /clock) through `autonomy_replay.recorder.BagRecorder`, and
keeps what the demo's end conditions need: the latest odometry, the goal, commands
received, the supervisor's latest level and message.
"""
from __future__ import annotations

import fnmatch
import math
import threading
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from autonomy_replay.player import message_class
from autonomy_replay.recorder import BagRecorder

DISCOVERY_PERIOD_S = 0.5


@dataclass
class EpisodeState:
    sim_t: float = 0.0
    ego: Optional[Tuple[float, float, float, float]] = None     # x, y, yaw, speed (odom)
    goal: Optional[Tuple[float, float, float]] = None
    commands: int = 0
    first_command_wall: Optional[float] = None
    supervisor_level: Optional[int] = None
    supervisor_message: str = ""
    supervisor_events: List[Tuple[float, str]] = field(default_factory=list)   # (sim t, reason)


class GraphRecorder:
    def __init__(self, path, include: Sequence[str], exclude: Sequence[str] = ()):
        # lazy: rclpy only when recording a live graph (the module imports without ROS)
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        self.rclpy = rclpy
        self.include, self.exclude = list(include), list(exclude)
        self.bag = BagRecorder(path)
        self.state = EpisodeState()
        self.skipped = {}
        self._lock = threading.Lock()
        self._sim_ns = 0
        self.ctx = rclpy.context.Context()
        rclpy.init(context=self.ctx, args=[])
        self.node = rclpy.create_node("_demo_recorder", context=self.ctx)
        self._subs = {}
        self._watch()
        self._last_discovery = 0.0
        self._stop = threading.Event()
        self._executor = SingleThreadedExecutor(context=self.ctx)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ episode state
    def _watch(self):
        # lazy: ROS messages only when recording a live graph (the module imports without ROS)
        from autonomy_interfaces.msg import ControlCommand
        from diagnostic_msgs.msg import DiagnosticStatus
        from geometry_msgs.msg import PoseStamped
        from nav_msgs.msg import Odometry
        from rosgraph_msgs.msg import Clock
        from autonomy_stack.ros.qos import LATCHED, STATE
        from autonomy_stack.ros.ros_conversions import quaternion_to_yaw
        st, n = self.state, self.node
        self._error_level = DiagnosticStatus.ERROR

        def on_clock(m):
            self._sim_ns = int(m.clock.sec) * 1_000_000_000 + int(m.clock.nanosec)
            st.sim_t = self._sim_ns * 1e-9

        def on_odom(m):
            p = m.pose.pose
            st.ego = (p.position.x, p.position.y, quaternion_to_yaw(p.orientation),
                      m.twist.twist.linear.x)

        def on_goal(m):
            p = m.pose
            st.goal = (p.position.x, p.position.y, quaternion_to_yaw(p.orientation))

        def on_command(_m):
            st.commands += 1
            if st.first_command_wall is None:
                st.first_command_wall = time.monotonic()

        def on_supervisor(m):
            if m.level == self._error_level:
                reasons = {kv.key: kv.value for kv in m.values}.get("reasons", "") or "error"
                seen = {r for _, r in st.supervisor_events}
                st.supervisor_events += [(st.sim_t, r) for r in reasons.split(",") if r not in seen]
            st.supervisor_level, st.supervisor_message = m.level, m.message

        n.create_subscription(Clock, "/clock", on_clock, 10)
        n.create_subscription(Odometry, "/ground_truth/ego", on_odom, STATE)
        n.create_subscription(PoseStamped, "/planning/goal", on_goal, LATCHED)
        n.create_subscription(ControlCommand, "/control/command", on_command, STATE)
        n.create_subscription(DiagnosticStatus, "/supervisor/status", on_supervisor, STATE)

    def supervisor_stopped(self) -> bool:
        return self.state.supervisor_level == self._error_level

    def goal_distance(self) -> float:
        st = self.state
        if st.ego is None or st.goal is None:
            return math.inf
        return math.hypot(st.ego[0] - st.goal[0], st.ego[1] - st.goal[1])

    # ------------------------------------------------------------ recording
    def _wanted(self, topic: str) -> bool:
        return (any(fnmatch.fnmatchcase(topic, p) for p in self.include)
                and not any(fnmatch.fnmatchcase(topic, p) for p in self.exclude))

    def _discover(self):
        # lazy: rclpy only when recording a live graph (the module imports without ROS)
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        for topic, types in self.node.get_topic_names_and_types():
            if topic in self._subs or topic in self.skipped or not types or not self._wanted(topic):
                continue
            infos = [i for i in self.node.get_publishers_info_by_topic(topic)
                     if i.node_name != self.node.get_name()]
            if not infos:
                continue
            cls = message_class(types[0])
            if cls is None or not self.bag.add_topic(topic, types[0]):
                self.skipped[topic] = self.bag.skipped.get(topic, f"unknown type {types[0]}")
                continue
            best_effort = any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
                              for i in infos)
            latched = all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                          for i in infos)
            qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                             reliability=(ReliabilityPolicy.BEST_EFFORT if best_effort
                                          else ReliabilityPolicy.RELIABLE),
                             durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                                         else DurabilityPolicy.VOLATILE))
            self._subs[topic] = self.node.create_subscription(
                cls, topic, self._writer(topic), qos, raw=True)

    def _writer(self, topic):
        def cb(data):
            self.bag.write(topic, self._sim_ns, data)
        return cb

    def _spin(self):
        while not self._stop.is_set():
            now = time.monotonic()
            if now - self._last_discovery >= DISCOVERY_PERIOD_S:
                self._last_discovery = now
                try:
                    self._discover()
                except Exception:          # the graph is shutting down: keep what we have
                    pass
            self._executor.spin_once(timeout_sec=0.05)

    @property
    def counts(self):
        return dict(self.bag.counts)

    def close(self):
        """Stop the thread, close the bag (the episode state stays readable)."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.bag.close()
        self._executor.shutdown()
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.ctx)

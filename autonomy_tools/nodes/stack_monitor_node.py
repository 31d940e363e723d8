"""Stack monitor: subscribes (raw, no deserialisation) to every topic of the graph and
publishes per-topic rates and staleness on /diagnostics; expected topics that are missing
or silent are reported at WARN/ERROR. It also reads every other node's /diagnostics and
publishes the stack's own status ("stack_monitor: stack"): ERROR naming the node and its
message while any node's latest status is ERROR (autonomy_tools.stack_health; a status not
refreshed for `node_stale_after_s` counts as stale WARN), published at once on a change.

Topic discovery runs on a steady (wall) clock: under use_sim_time a replay holds /clock
until the graph subscribes, so a sim-time discovery timer would never fire."""
from __future__ import annotations

import importlib
import time

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from autonomy_stack.ros.node_runtime import run_node
from autonomy_stack.params import ParamSpec, declare_parameters
from autonomy_stack.topic_rates import RateMeter
from autonomy_stack.ros.qos import LATCHED, STATE
from autonomy_tools.stack_health import ERROR, HealthAggregator

PARAMS = [
    ParamSpec("period_s", 1.0, "diagnostics publish period", min=0.05, max=60.0),
    ParamSpec("rate_window_s", 2.0, "window of the rate estimate", min=0.1, max=60.0),
    ParamSpec("stale_after_s", 2.0, "an expected topic silent this long is an ERROR",
              min=0.1, max=600.0),
    ParamSpec("expected_topics", ["/tf_static"], "topics that must be published"),
    ParamSpec("ignore_topics", ["/rosout", "/parameter_events", "/diagnostics"],
              "topics not monitored"),
    ParamSpec("node_stale_after_s", 5.0, "another node's ERROR status not refreshed this "
              "long no longer makes the stack ERROR (reported as stale WARN)",
              min=0.1, max=3600.0),
]
STACK_STATUS = "stack_monitor: stack"


def import_msg_type(type_name: str):
    """'sensor_msgs/msg/Image' -> class."""
    pkg, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


class StackMonitor(Node):
    def __init__(self):
        super().__init__("stack_monitor")
        self.p = declare_parameters(self, PARAMS)
        self.meters: dict = {}
        self.subs: dict = {}
        self.unknown_types: set = set()
        self.health = HealthAggregator(self.p["node_stale_after_s"])
        self.stack_level = None      # last published stack level (own topic checks included)
        self.nodes_level = None      # ... from the other nodes' statuses only
        self.stack_errors = []
        self.pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(DiagnosticArray, "/diagnostics", self.on_diagnostics, 50)
        self.create_timer(0.5, self.discover, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.create_timer(self.p["period_s"], self.publish)

    def on_diagnostics(self, msg) -> None:
        self.health.update(((s.name, _level(s), s.message) for s in msg.status),
                           time.monotonic())
        level = self.health.health(time.monotonic()).level
        # a node turning ERROR (or recovering) is published now, not at the next period
        if self.nodes_level is not None and level != self.nodes_level:
            self.publish()

    def discover(self) -> None:
        for topic, types in self.get_topic_names_and_types():
            if topic in self.subs or topic in self.p["ignore_topics"] or not types:
                continue
            try:
                cls = import_msg_type(types[0])
            except (ImportError, AttributeError, ValueError):
                if topic not in self.unknown_types:
                    self.unknown_types.add(topic)
                    self.get_logger().warning(f"cannot monitor {topic}: type {types[0]} not installed")
                continue
            meter = self.meters.setdefault(topic, RateMeter(self.p["rate_window_s"]))
            qos = LATCHED if topic == "/tf_static" else STATE
            self.subs[topic] = self.create_subscription(
                cls, topic, lambda data, m=meter: m.tick(time.monotonic(), len(data)), qos, raw=True)

    def publish(self) -> None:
        now = time.monotonic()
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        for topic in sorted(set(self.meters) | set(self.p["expected_topics"])):
            st = DiagnosticStatus(name=f"stack_monitor: {topic}", hardware_id="autonomy_stack")
            meter = self.meters.get(topic)
            age = meter.age(now) if meter else None
            latched = topic == "/tf_static"
            if meter is None or meter.count == 0:
                st.level, st.message = DiagnosticStatus.ERROR, "no message received"
            elif age is not None and age > self.p["stale_after_s"] and not latched \
                    and topic in self.p["expected_topics"]:
                st.level, st.message = DiagnosticStatus.ERROR, f"silent for {age:.1f} s"
            else:
                st.level, st.message = DiagnosticStatus.OK, "ok"
            if meter is not None:
                st.values = [KeyValue(key="rate_hz", value=f"{meter.rate(now):.2f}"),
                             KeyValue(key="messages", value=str(meter.count)),
                             KeyValue(key="bytes", value=str(meter.bytes))]
            arr.status.append(st)
        arr.status.append(self.stack_status(now, arr.status))
        self.pub.publish(arr)

    def stack_status(self, now: float, topic_statuses) -> DiagnosticStatus:
        # only expected topics count for the stack: any discovered topic without a message
        # yet (a /clock nobody publishes) is ERROR in its own status, not for the stack
        expected = {f"stack_monitor: {t}" for t in self.p["expected_topics"]}
        own = [(s.name, _level(s), s.message) for s in topic_statuses if s.name in expected]
        h = self.health.health(now, own)
        # one log line per change of level or of the nodes in ERROR, not per period
        if (h.level, h.errors) != (self.stack_level, self.stack_errors):
            if h.level >= ERROR:
                self.get_logger().error(f"stack: {h.message}")
            elif self.stack_level is not None:
                self.get_logger().info(f"stack: {h.message}")
        self.stack_errors = h.errors
        self.stack_level = h.level
        self.nodes_level = self.health.health(now).level
        st = DiagnosticStatus(name=STACK_STATUS, hardware_id="autonomy_stack",
                              level=bytes([h.level]), message=h.message)
        st.values = [KeyValue(key="error_sources", value=",".join(h.errors)),
                     KeyValue(key="stale_sources", value=",".join(h.stale))]
        return st


def _level(status) -> int:
    lv = status.level
    return lv[0] if isinstance(lv, bytes) else int(lv)


def main(args=None):
    return run_node(StackMonitor, args)


if __name__ == "__main__":
    raise SystemExit(main())

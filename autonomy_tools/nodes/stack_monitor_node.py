"""Stack monitor: subscribes (raw, no deserialisation) to every topic of the graph and
publishes per-topic rates and staleness on /diagnostics; expected topics that are missing
or silent are reported at WARN/ERROR."""
from __future__ import annotations

import importlib
import time

from rclpy.node import Node
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from autonomy_stack.ros.node_runtime import run_node
from autonomy_stack.params import ParamSpec, declare_parameters
from autonomy_stack.topic_rates import RateMeter
from autonomy_stack.ros.qos import LATCHED, STATE

PARAMS = [
    ParamSpec("period_s", 1.0, "diagnostics publish period", min=0.05, max=60.0),
    ParamSpec("rate_window_s", 2.0, "window of the rate estimate", min=0.1, max=60.0),
    ParamSpec("stale_after_s", 2.0, "an expected topic silent this long is an ERROR",
              min=0.1, max=600.0),
    ParamSpec("expected_topics", ["/tf_static"], "topics that must be published"),
    ParamSpec("ignore_topics", ["/rosout", "/parameter_events", "/diagnostics"],
              "topics not monitored"),
]


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
        self.pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(0.5, self.discover)
        self.create_timer(self.p["period_s"], self.publish)

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
        self.pub.publish(arr)


def main(args=None):
    return run_node(StackMonitor, args)


if __name__ == "__main__":
    raise SystemExit(main())

"""`autonomy-stack view --live`: the live browser view of a running stack (issue 19).

Discovers the graph's topics every second and subscribes to each one whose type the view
draws (autonomy_tools.live_view.VIEWED_TYPES) with a best-effort, depth-1 QoS: a best-effort
reader matches reliable and best-effort publishers alike and never makes a publisher wait or
resend, so a slow browser cannot slow the stack; the per-topic rate limit and the Rerun
server's memory limit bound the rest.
"""
from __future__ import annotations

import importlib
import struct
import time

from autonomy_tools.live_view import VIEWED_TYPES, ViewLogger


def message_class(msgtype: str):
    """'nav_msgs/msg/Odometry' -> the rclpy message class."""
    pkg, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


class LiveSubscriber:
    """Subscriptions of one rclpy node feeding a ViewLogger."""

    def __init__(self, node, view: ViewLogger):
        # lazy: rclpy only where the live view runs (the bag view works without ROS)
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        self.node, self.view = node, view
        self.qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                              reliability=ReliabilityPolicy.BEST_EFFORT,
                              durability=DurabilityPolicy.VOLATILE)
        self.subs = {}
        self.errors = 0
        node.create_timer(1.0, self.discover)
        self.discover()

    def discover(self) -> None:
        for topic, types in self.node.get_topic_names_and_types():
            msgtype = next((t for t in types if t in VIEWED_TYPES), None)
            if msgtype is None or topic in self.subs:
                continue
            # images raw: the stamp is read from the CDR and only what passes the rate limit
            # is decoded (decoding every 8-camera frame cost the stack CPU on 2 cores)
            raw = msgtype == "sensor_msgs/msg/Image"
            cb = (lambda m, t=topic, mt=msgtype: self._on_raw(t, mt, m)) if raw else \
                (lambda m, t=topic, mt=msgtype: self._on(t, mt, m))
            self.subs[topic] = self.node.create_subscription(message_class(msgtype), topic, cb, self.qos, raw=raw)
            self.node.get_logger().info(f"view: showing {topic} ({msgtype})")

    def _on_raw(self, topic: str, msgtype: str, data: bytes) -> None:
        """Serialised message whose first field is a std_msgs/Header: decode only when due."""
        sec, nanosec = struct.unpack_from("<iI", data, 4)      # after the 4-byte CDR header
        if not self.view.due(topic, sec + 1e-9 * nanosec):
            self.view.skipped += 1
            return
        from rclpy.serialization import deserialize_message  # lazy: rclpy only in the live view
        self._on(topic, msgtype, deserialize_message(data, message_class(msgtype)))

    def _on(self, topic: str, msgtype: str, msg) -> None:
        try:
            self.view.log(topic, msgtype, msg)
        except Exception as exc:      # one bad message must not end the view: log it, go on
            self.errors += 1
            self.node.get_logger().error(f"view: {topic}: {type(exc).__name__}: {exc}")


def run_live(view: ViewLogger, duration_s=None) -> int:
    """Spin a node named live_view until Ctrl-C (or duration_s); returns messages logged."""
    import rclpy  # lazy: rclpy only where the live view runs
    rclpy.init()
    node = rclpy.create_node("live_view")
    live = LiveSubscriber(node, view)
    end = None if duration_s is None else time.monotonic() + duration_s
    try:
        while rclpy.ok() and (end is None or time.monotonic() < end):
            rclpy.spin_once(node, timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    except Exception:   # SIGTERM: rclpy's signal handler shut the context down mid-spin
        if rclpy.ok():
            raise
    finally:
        node.get_logger().info(f"view: logged {view.logged} messages ({view.skipped} decimated, "
                               f"{live.errors} errors)")
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return view.logged

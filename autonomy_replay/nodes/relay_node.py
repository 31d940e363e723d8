"""Minimal relay node: republishes one typed topic on another (a stand-in stage for replay
tests and the replay benchmark before the real stack runs).

Parameters: input_topic, output_topic, message_type ('pkg/msg/Name'), stamp ('copy' keeps
header.stamp; 'now' stamps with the node clock, i.e. sim time under use_sim_time),
queue_depth (history depth, default 10), latency_topic ('' = off; else publishes an
autonomy_interfaces/LatencyReport per message with stages 'receive' and 'publish' and
total_ms = node clock now - input stamp), start_delay_s (0: the subscription is created
first, before the publishers, so the node never looks ready before it can receive; > 0: a
stand-in for a slow stage, the subscription is created that many seconds of wall time after
the publishers, for the replay's late-subscriber tests).

    python -m autonomy_replay.nodes.relay_node --ros-args -p input_topic:=/odom ...
"""
from __future__ import annotations

import time

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile

from autonomy_stack.ros.node_runtime import StartupError, run_node
from autonomy_stack.params import ParamSpec, declare_parameters
from autonomy_stack.ros.qos import STATE
from autonomy_interfaces.msg import LatencyReport, StageLatency
from autonomy_replay.player import message_class

PARAMS = [
    ParamSpec("input_topic", "/odom", "topic to read"),
    ParamSpec("output_topic", "/relay/odom", "topic to write"),
    ParamSpec("message_type", "nav_msgs/msg/Odometry", "type of both topics"),
    ParamSpec("stamp", "copy", "header stamp of the output", choices=("copy", "now")),
    ParamSpec("latency_topic", "", "LatencyReport topic ('' = none)"),
    ParamSpec("queue_depth", 10, "history depth of the subscription and publishers",
              min=1, max=10000),
    ParamSpec("start_delay_s", 0.0, "wall seconds between the publishers and the "
              "subscription (0: subscription first)", min=0.0, max=3600.0),
]


class RelayNode(Node):
    def __init__(self):
        super().__init__("relay")
        p = declare_parameters(self, PARAMS)
        cls = message_class(p["message_type"])
        if cls is None:
            raise StartupError(f"message_type '{p['message_type']}' is not importable")
        self._stamp_now = p["stamp"] == "now"
        qos = QoSProfile(history=STATE.history, depth=p["queue_depth"],
                         reliability=STATE.reliability, durability=STATE.durability)
        self._frames = 0
        self._sub_args = (cls, p["input_topic"], self._on_msg, qos)
        self._delay_timer = None
        if p["start_delay_s"] <= 0:
            self.create_subscription(*self._sub_args)
        self._pub = self.create_publisher(cls, p["output_topic"], qos)
        self._lat_pub = None
        if p["latency_topic"]:
            self._lat_pub = self.create_publisher(LatencyReport, p["latency_topic"], qos)
        if p["start_delay_s"] > 0:
            # wall time: under use_sim_time the clock stands still until playback starts
            self._delay_timer = self.create_timer(
                p["start_delay_s"], self._subscribe_late,
                clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _subscribe_late(self):
        self._delay_timer.cancel()
        self.create_subscription(*self._sub_args)
        self.get_logger().info(f"subscribed to {self._sub_args[1]} (start_delay_s)")

    def _on_msg(self, msg):
        t_in = time.perf_counter()
        in_stamp = getattr(getattr(msg, "header", None), "stamp", None)
        in_stamp = (in_stamp.sec, in_stamp.nanosec) if in_stamp is not None else None
        if self._stamp_now and hasattr(msg, "header"):
            msg.header.stamp = self.get_clock().now().to_msg()
        t_pub = time.perf_counter()
        self._pub.publish(msg)
        t_done = time.perf_counter()
        self._frames += 1
        if self._lat_pub is not None and in_stamp is not None:
            rep = LatencyReport()
            rep.header.stamp.sec, rep.header.stamp.nanosec = in_stamp
            rep.header.frame_id = getattr(msg.header, "frame_id", "")
            rep.node = self.get_name()
            rep.stages = [StageLatency(stage="receive", duration_ms=(t_pub - t_in) * 1e3),
                          StageLatency(stage="publish", duration_ms=(t_done - t_pub) * 1e3)]
            now_ns = self.get_clock().now().nanoseconds
            rep.total_ms = (now_ns - (in_stamp[0] * 1_000_000_000 + in_stamp[1])) * 1e-6
            rep.frames_processed = self._frames
            self._lat_pub.publish(rep)


def main(args=None):
    return run_node(RelayNode, args)


if __name__ == "__main__":
    import sys
    sys.exit(main())

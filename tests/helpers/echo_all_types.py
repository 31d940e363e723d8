"""Test helper process: echoes every custom message type from /echo_in/<Type> to
/echo_out/<Type> (a second process, so round-trips cross DDS)."""
import sys

import rclpy
from rclpy.node import Node

import autonomy_interfaces.msg as m

TYPES = sys.argv[1].split(",")


class Echo(Node):
    def __init__(self):
        super().__init__("echo_all_types")
        self.pubs = {}
        for name in TYPES:
            cls = getattr(m, name)
            self.pubs[name] = self.create_publisher(cls, f"/echo_out/{name}", 10)
            self.create_subscription(cls, f"/echo_in/{name}",
                                     lambda msg, n=name: self.pubs[n].publish(msg), 10)


rclpy.init()
node = Echo()
try:
    rclpy.spin(node)
except KeyboardInterrupt:
    pass
finally:
    node.destroy_node()
    rclpy.try_shutdown()

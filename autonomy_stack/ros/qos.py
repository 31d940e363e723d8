"""QoS profiles used across the graph (one place, so publishers and subscribers match)."""
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)

# Camera images: newest only; reliable on the SHM transport so frames are not torn apart
# (the Fast DDS profile gives a 64 MiB segment), depth 2 so a slow reader never queues.
SENSOR_IMAGES = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2,
                           reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.VOLATILE)
# Odometry / IMU / commands: small, frequent.
STATE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                   reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
# Vector-space outputs (objects, road, trajectory, markers).
OUTPUTS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                     reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
# Latched data: /tf_static, camera calibrations that rarely change, maps.
LATCHED = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)

"""ROS plumbing shared by every node: `node_runtime` (`run_node`), `ros_conversions`
(vector-space types <-> messages), `qos` profiles and `dds_shm` (Fast DDS shared-memory
housekeeping). Only nodes and tools import this subpackage; cores stay ROS-free."""

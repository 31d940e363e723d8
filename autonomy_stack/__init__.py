"""Ground floor of the autonomy stack (layer 0): ROS-free shared types and helpers that every
other package may import -- `vector_space` (plain data types), `params` (typed/ranged
parameter specs), `graph` (the node-graph description), `paths`, `topic_rates` -- and, in
the `ros` subpackage, the ROS plumbing of the nodes (`node_runtime`, `ros_conversions`,
`qos`, `dds_shm`). Only `autonomy_stack.ros` imports rclpy.
"""

"""ROS nodes of autonomy_control (thin: parameters, message conversion, calls into the core)."""

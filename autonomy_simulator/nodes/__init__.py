"""ROS nodes of autonomy_simulator (thin: parameters, message conversion, calls into the core)."""

"""ROS nodes of autonomy_planning (thin: parameters, message conversion, calls into the core)."""

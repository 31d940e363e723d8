"""ROS nodes of autonomy_perception (thin: parameters, message conversion, calls into the core)."""

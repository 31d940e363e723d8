"""ROS nodes of the vehicle room."""

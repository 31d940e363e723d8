"""ROS nodes of the replay harness."""

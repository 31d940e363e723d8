"""ROS nodes of the tools layer."""

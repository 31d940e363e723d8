"""Shared plumbing of the autonomy stack: node runtime, parameters, message conversions,
the node-graph description, the standalone runner and the command-line tool.

Only the modules whose name says so (`node_runtime`, `ros_conversions`, ...) import rclpy;
`graph`, `params` (spec part) and `paths` are importable without ROS.
"""

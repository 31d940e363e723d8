"""Training pipeline of the BEV/video perception network (no rclpy)."""

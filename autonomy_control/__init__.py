"""Trajectory tracking: vehicle model, lateral/longitudinal controllers, watchdog (no rclpy)
and the control node."""

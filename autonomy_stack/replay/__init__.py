"""Bag replay harness: play a rosbag2 into the graph with sim time, record the outputs,
report metrics and rendered frames, and compare to a reference (regression mode).

Pure modules (no rclpy): `bag` (tolerant reading), `recorder` (MCAP writing), `metrics`,
`report`, `regression`, `render`. `player` (rclpy) publishes and records; `command` holds
the argparse front end `main(argv)` used by `autonomy-stack replay`.
"""
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`replay BAG [...]`; returns the exit code (see autonomy_stack.replay.command)."""
    from autonomy_stack.replay.command import main as _main
    return _main(argv)

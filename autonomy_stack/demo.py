"""`autonomy-stack demo`: for now brings the smoke graph up for a few seconds and down."""
from __future__ import annotations

import argparse

from autonomy_stack.runner import run_foreground


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="autonomy-stack demo")
    ap.add_argument("--duration", type=float, default=5.0)
    args = ap.parse_args(argv)
    return run_foreground("smoke", duration=args.duration)

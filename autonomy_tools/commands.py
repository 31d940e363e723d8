"""Subcommands of `autonomy-stack` (the console script; `./autonomy-stack` at the repo root
wraps it and installs what is missing first)."""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from autonomy_stack.graph import parse_overrides
from autonomy_stack.graph import load_graph, modes
from autonomy_tools.runner import run_foreground

# subcommand -> (module with main(argv) -> int, help)
DELEGATED = {
    "replay": ("autonomy_tools.replay", "play a rosbag2 into the graph, record outputs, report"),
    "record": ("autonomy_simulator.record", "record a simulator scenario into an MCAP bag"),
    "dataset": ("autonomy_simulator.dataset", "write simulator training sequences to disk"),
    "autolabel": ("autonomy_autolabel.command", "label recorded clips offline (tracks with hindsight, "
                                                "fused road) -> /autolabel/* MCAP + training data set"),
    "view": ("autonomy_tools.view_command", "live browser view (Rerun web viewer) of a bag: cameras, "
                                         "vector space from above, BEV rasters; time scrubbing"),
    "demo": ("autonomy_tools.demo", "the car drives a scenario in closed loop on its cameras "
                                    "(mode sim_vision, lockstep), records it, writes report + "
                                    "closed-loop figures; --open-loop: the bag-replay demo"),
}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="autonomy-stack", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start the nodes of a graph mode as processes")
    up.add_argument("--mode", default="smoke")
    up.add_argument("--log-dir", default=None, help="write each node's output to DIR/<node>.log")
    up.add_argument("--duration", type=float, default=None,
                    help="stop the graph after this many seconds (default: run until Ctrl-C)")
    up.add_argument("--up-timeout", type=float, default=30.0)
    up.add_argument("-p", "--param", action="append", default=[],
                    help="override a parameter: node_key.param:=value (repeatable)")
    sub.add_parser("modes", help="list the graph modes")
    for name, (_, help_text) in DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        # the subcommand parses its own arguments (order preserved)
        module = importlib.import_module(DELEGATED[argv[0]][0])
        return int(module.main(argv[1:]) or 0)
    args = parser.parse_args(argv)
    if args.cmd == "modes":
        graph = load_graph()
        for mode, desc in modes(graph).items():
            print(f"{mode:12s} {', '.join(graph['modes'][mode]['nodes'])}\n{'':12s} {desc}")
        return 0
    if args.cmd == "up":
        try:
            overrides = parse_overrides(args.param)
        except ValueError as exc:
            parser.error(str(exc))
        return run_foreground(args.mode, overrides=overrides,
                              log_dir=args.log_dir, up_timeout=args.up_timeout,
                              duration=args.duration)
    return 1


if __name__ == "__main__":
    sys.exit(main())

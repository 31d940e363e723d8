"""`autonomy-stack view`: the live browser view (issue 19) of a bag (time line scrubbable) or,
with --live, of the running stack. See autonomy_tools/live_view.py (messages -> Rerun) and
autonomy_tools/live_view_ros.py (live subscriptions).

    autonomy-stack view BAG [--web-port 9090] [--memory-limit 512MiB] [--max-rate-hz 10]
    autonomy-stack view --live
"""
from __future__ import annotations

import argparse
import sys
import time

from autonomy_tools.live_view import (CAMERAS, ViewConfig, ViewLogger, bag_camera_entities, log_bag,
                                      start_server)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="autonomy-stack view", description=__doc__.split("\n\n")[0])
    ap.add_argument("bag", nargs="?", help="rosbag2 directory or .mcap to show (time line scrubbable)")
    ap.add_argument("--live", action="store_true", help="show the running stack (ROS topics) instead of a bag")
    ap.add_argument("--web-port", type=int, default=9090)
    ap.add_argument("--grpc-port", type=int, default=9876)
    ap.add_argument("--memory-limit", default=ViewConfig.memory_limit)
    ap.add_argument("--max-rate-hz", type=float, default=ViewConfig.max_rate_hz,
                    help="per topic; 0 = every message")
    ap.add_argument("--image-scale", type=float, default=ViewConfig.image_scale)
    ap.add_argument("--realtime", type=float, default=0.0, help="pace the bag (1 = recorded speed)")
    ap.add_argument("--open", action="store_true", help="open the viewer in the default browser")
    ap.add_argument("--serve-seconds", type=float, default=None, help="stop after this (default: Ctrl-C)")
    args = ap.parse_args(argv)
    config = ViewConfig(args.max_rate_hz, args.image_scale, args.memory_limit)
    if args.live == bool(args.bag):
        ap.error("give a BAG or --live")
    if args.live:
        # lazy: rclpy only for the live view (the bag view works without ROS)
        from autonomy_tools.live_view_ros import run_live
        cams = [f"cameras/{c}" for c in CAMERAS]
        rec, url = start_server(config, args.web_port, args.grpc_port, cams, args.open)
        print(f"view: {url}", flush=True)
        run_live(ViewLogger(rec, config), args.serve_seconds)
        return 0
    try:
        cams = bag_camera_entities(args.bag)
    except Exception as exc:                      # unreadable bag: say so, exit 2
        print(f"view: cannot read bag {args.bag}: {exc}", file=sys.stderr)
        return 2
    rec, url = start_server(config, args.web_port, args.grpc_port, cams, args.open)
    print(f"view: {url}", flush=True)
    view = ViewLogger(rec, config)
    n = log_bag(view, args.bag, args.realtime)
    print(f"view: logged {n} messages ({view.skipped} decimated) from {args.bag}", flush=True)
    try:
        end = None if args.serve_seconds is None else time.monotonic() + args.serve_seconds
        while end is None or time.monotonic() < end:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

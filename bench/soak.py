"""Soak: the closed loop on vision for a long wall time, scenarios restarting, every node's
memory and CPU sampled (issue 15 item 6).

Starts graph mode `--mode` (default sim_vision: simulator in lockstep -> rectification ->
perception -> planning -> control, + supervisor and monitor; the simulator restarts its
scenario with the next seed after each episode) through the runner, samples each node
process's RSS and CPU every `--sample-s` s from /proc (autonomy_tools.soak), listens to
/supervisor/status and the simulator's /diagnostics, and prints per node the RSS slope after
the warm-up (MB/min), deaths and supervisor events. Target: no node dies, every node's RSS
slope <= 0.5 MB/min after the warm-up. Exit code 1 when a node died.

    bench/run soak [--minutes 30] [--warmup-min 5] [--sample-s 10] [-p NODE.PARAM:=VALUE]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

from autonomy_stack.graph import parse_overrides
from autonomy_stack.paths import SOURCE_ROOT
from autonomy_tools.runner import Runner
from autonomy_tools.soak import ProcessSampler

# the soak's own default overrides: episodes end and restart with the next seed
SOAK_OVERRIDES = {"simulator": {"restart_episodes": True}}


class GraphListener:
    """Counts supervisor events (transitions into ERROR, with their message) and simulator
    episodes from the running graph, in a background thread with its own rclpy context."""

    def __init__(self):
        import rclpy   # lazy: rclpy only when the bench runs (the module imports without ROS)
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
        self.rclpy = rclpy
        self.ctx = rclpy.context.Context()
        rclpy.init(context=self.ctx, args=[])
        self.node = rclpy.create_node("_soak_listener", context=self.ctx)
        self.events, self.episodes, self._last_level = [], 0, None
        self.node.create_subscription(DiagnosticStatus, "/supervisor/status", self._on_supervisor, 10)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self._error = DiagnosticStatus.ERROR
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _on_supervisor(self, msg) -> None:
        if msg.level == self._error:          # both bytes of length 1 in rclpy
            if self._last_level != "ERROR":
                self.events.append(msg.message)
            self._last_level = "ERROR"
        else:
            self._last_level = "OK"

    def _on_diagnostics(self, msg) -> None:
        for st in msg.status:
            if st.name == "simulator":
                for kv in st.values:
                    if kv.key == "episode":
                        self.episodes = max(self.episodes, int(kv.value))

    def _spin(self) -> None:
        ex = self.rclpy.executors.SingleThreadedExecutor(context=self.ctx)
        ex.add_node(self.node)
        while not self._stop.is_set():
            ex.spin_once(timeout_sec=0.2)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.ctx)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", default="sim_vision")
    ap.add_argument("--minutes", type=float, default=30.0, help="wall minutes")
    ap.add_argument("--warmup-min", type=float, default=5.0, help="excluded from the slope")
    ap.add_argument("--sample-s", type=float, default=10.0)
    ap.add_argument("--max-slope", type=float, default=0.5, help="MB/min target per node")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="NODE.PARAM:=VALUE")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    out = Path(args.out) if args.out else SOURCE_ROOT / "out" / time.strftime("soak-%Y%m%d-%H%M%S")
    overrides = {k: dict(v) for k, v in SOAK_OVERRIDES.items()}
    for node, params in parse_overrides(args.param).items():
        overrides.setdefault(node, {}).update(params)
    runner = Runner(args.mode, overrides=overrides, log_dir=out / "logs")
    load0 = os.getloadavg()[0]
    runner.start()
    listener = sampler = None
    try:
        runner.wait_until_up(timeout=60.0)
        listener = GraphListener()
        sampler = ProcessSampler([(c.spec.key, c.proc) for c in runner.children], args.sample_s).start()
        deadline = time.monotonic() + 60.0 * args.minutes
        next_print = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            time.sleep(1.0)
            if time.monotonic() >= next_print:
                next_print += 60.0
                rss = {k: (n.rss_mb[-1] if n.rss_mb else None) for k, n in sampler.nodes.items()}
                print(f"[soak] {(time.monotonic() - sampler.t0) / 60:.0f} min: RSS MB "
                      + ", ".join(f"{k} {v:.0f}" if v else f"{k} DEAD" for k, v in rss.items())
                      + f"; episodes {listener.episodes}, supervisor events {len(listener.events)}",
                      flush=True)
    except RuntimeError as exc:
        print(f"[soak] {exc}", file=sys.stderr)
    finally:
        if sampler:
            sampler.stop()
        if listener:
            listener.close()
        runner.stop()
    load1 = os.getloadavg()[0]
    if sampler is None:
        print(json.dumps({"error": "graph did not come up", "logs": str(out / "logs")}))
        return 1
    warm = 60.0 * args.warmup_min
    nodes = {k: n.summary(warm) for k, n in sampler.nodes.items()}
    print(f"\n{'node':22s} {'RSS first':>9s} {'after warm-up':>13s} {'last':>7s} {'slope MB/min':>12s} {'CPU %':>6s}")
    for k, s in nodes.items():
        print(f"{k:22s} {s['rss_mb_first']:9.1f} {s['rss_mb_after_warmup']:13.1f} {s['rss_mb_last']:7.1f} "
              f"{s['rss_slope_mb_per_min']:12.3f} {s['cpu_pct_mean']:6.1f}" + ("  DIED" if s["died"] else ""))
    deaths = sampler.deaths()
    worst = max((s["rss_slope_mb_per_min"] for s in nodes.values()), default=float("nan"))
    print(f"[soak] {args.minutes:g} min on mode {args.mode}; load average {load0:.1f} -> {load1:.1f} "
          f"on {os.cpu_count()} CPUs; logs in {out / 'logs'}")
    for e in (listener.events if listener else []):
        print(f"[soak] supervisor event: {e}")
    print(json.dumps({"mode": args.mode, "minutes": args.minutes, "warmup_min": args.warmup_min,
                      "nodes": nodes, "deaths": deaths, "max_rss_slope_mb_per_min": worst,
                      "rss_slope_ok": bool(worst <= args.max_slope),
                      "episodes": listener.episodes if listener else 0,
                      "supervisor_events": len(listener.events) if listener else 0,
                      "supervisor_messages": (listener.events if listener else [])[:20],
                      "load_average": [round(load0, 1), round(load1, 1)]}))
    return 1 if deaths else 0


if __name__ == "__main__":
    sys.exit(main())

"""`autonomy-stack demo`: the car drives a scenario on its own cameras, in closed loop, on
this machine, in a few minutes.

1. Starts graph mode `sim_vision` through the runner (separate processes over DDS):
   simulator in lockstep (the world starts at the stack's first command and steps only
   when the stack has answered each step and camera frame) -> rectification -> perception
   -> planning -> control -> simulator, + supervisor and stack monitor.
2. Records the run into an MCAP bag (`autonomy_tools.graph_recorder`: cameras, ground
   truth, perception, planning, control, supervisor status, diagnostics) at sim time.
3. Ends when the ego is stopped at the goal, the supervisor stopped the car, or the
   sim-time budget is spent; shuts the graph down cleanly.
4. Writes the report from the bag (`autonomy_replay.report`: vector-space frames, camera
   mosaic, video, metrics) plus the closed-loop figures of
   `autonomy_tools.closed_loop_metrics.episode_metrics` (collisions, goal, off-road time,
   route deviation, comfort, latency, supervisor stops) against the ground truth, prints
   them and the output folder.

Exit code 0 when the episode completed (goal, supervisor stop or sim budget), 3 when a node
died, 4 when no /control/command arrived or the world did not start within
--startup-limit, 5 when the wall-time limit ended the run first, 6 (nothing started) when
another graph already runs on this ROS_DOMAIN_ID (a node of the same name, or another
publisher of a topic the mode publishes: the demo would drive a foreign car).

`autonomy-stack demo --open-loop` (the former demo) replays a recorded scenario bag into
mode `demo` instead; see OPEN_LOOP_DOC.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import json
import math

import numpy as np

from autonomy_stack.graph import parse_overrides
from autonomy_stack.paths import SOURCE_ROOT
from autonomy_tools.replay import main as replay_main
from autonomy_tools.runner import EXIT_NODE_DIED, Runner

OPEN_LOOP_DOC = """`autonomy-stack demo --open-loop`: the whole stack on a recorded bag, open loop.

1. Records a simulator scenario into a rosbag2 (MCAP) with the real topic layout: 8 raw
   camera streams + CameraInfo, /tf_static with this vehicle's own (mis)mounting, /odom,
   /clock, /planning/goal and the ground truth (/ground_truth/...). The bag is cached under
   out/cache/ and reused by later runs with the same options.
2. Replays it (open loop, sim time) into the full graph of mode `demo` -- rectification ->
   perception -> planning -> control, each its own process over DDS -- records the
   stack's outputs into a new MCAP bag and writes the replay report: metrics against the
   ground truth, per-stage latency, top-down vector-space frames (PNG) and a video.
   Open loop: the bag's ego drove the scenario's scripted route; the stack's control
   commands are recorded and scored, not applied (closed loop: mode `sim`).
3. Checks that the report agrees with the offline evaluation on the same frames
   (autonomy_replay.perception_agreement: the perception model re-run offline over the
   camera frames the node processed, both evaluated with the one protocol; issue 14 asks
   for <= 0.02 vehicle AP): report/agreement.md. `--no-agreement` skips it.
4. Prints the output folder.
"""


def open_loop_main(argv=None) -> int:
    """`autonomy-stack demo --open-loop`: the recorded bag replayed into mode `demo`."""
    ap = argparse.ArgumentParser(prog="autonomy-stack demo --open-loop",
                                 description=OPEN_LOOP_DOC.split("\n")[0])
    ap.add_argument("--scenario", default="narrow_street_oncoming")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--duration", type=float, default=12.0, help="seconds of sim time")
    ap.add_argument("--camera-rate", type=float, default=10.0)
    ap.add_argument("--width", type=int, default=320, help="camera image width of the bag")
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--rate", type=float, default=0.5,
                    help="replay speed (the CPU network runs ~5-10 Hz; 0.5 lets it keep up)")
    ap.add_argument("--out", default=None, help="output folder (default out/demo-<time>)")
    ap.add_argument("--fresh", action="store_true", help="record the bag again")
    ap.add_argument("--frames", type=int, default=40, help="rendered report frames")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="NODE.PARAM:=VALUE",
                    help="override a node parameter of the demo graph (repeatable)")
    ap.add_argument("--no-agreement", action="store_true",
                    help="skip the report-vs-offline agreement check (step 3)")
    args = ap.parse_args(argv)

    base = Path.cwd() / "out" if not (SOURCE_ROOT / ".git").exists() else SOURCE_ROOT / "out"
    out = Path(args.out) if args.out else base / time.strftime("demo-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    key = (f"{args.scenario}_s{args.seed}_{args.duration:g}s_{args.width}x{args.height}"
           f"_{args.camera_rate:g}hz")
    cache = base / "cache" / key
    t0 = time.monotonic()

    # 1. the scenario bag
    if args.fresh and cache.exists():
        shutil.rmtree(cache)
    if not (cache / "metadata.yaml").exists():
        if cache.exists():           # an interrupted earlier recording
            shutil.rmtree(cache)
        cache.parent.mkdir(parents=True, exist_ok=True)
        print(f"[demo] recording {args.scenario} (seed {args.seed}, {args.duration:g} s, "
              f"8 cameras {args.width}x{args.height} @ {args.camera_rate:g} Hz) -> {cache}", flush=True)
        # lazy: autonomy_simulator.record pulls in cv2 (start-up time)
        from autonomy_simulator import record
        code = record.main([args.scenario, "--seed", str(args.seed), "--duration", str(args.duration),
                            "--out", str(cache) + ".mcap", "--camera-rate", str(args.camera_rate),
                            "--width", str(args.width), "--height", str(args.height),
                            "--bev-extent", "48", "--bev-cell", "1.0"])
        if code != 0:
            print("[demo] recording the scenario failed", file=sys.stderr)
            return code
    else:
        print(f"[demo] reusing the scenario bag {cache}", flush=True)

    # 2. replay into the full graph, record outputs, report
    print(f"[demo] replaying into mode 'demo' at {args.rate:g}x (rectification -> perception -> "
          "planning -> control)", flush=True)
    code = replay_main([str(cache), "--nodes", "demo", "--rate", str(args.rate),
                        "--record", str(out / "outputs.mcap"), "--report", str(out / "report"),
                        "--frames", str(args.frames)] + [a for p in args.param for a in ("-p", p)])
    if code == 0 and not args.no_agreement:
        _agreement(out)
    took = time.monotonic() - t0
    print(f"[demo] finished in {took:.0f} s (replay exit code {code})")
    print(f"[demo] output folder: {out}")
    print(f"[demo]   outputs bag: {out / 'outputs'}   report: {out / 'report' / 'report.md'}")
    return code


def _agreement(out: Path) -> None:
    """Step 3; a failure is reported, the replay's results stand without it."""
    # lazy: torch and the network only for this step (start-up time of the CLI)
    from autonomy_replay import perception_agreement
    print("[demo] agreement check: the perception model re-run offline on the frames the "
          "node processed, same protocol", flush=True)
    try:
        perception_agreement.main([str(out), "--out", str(out / "report")])
    except Exception as exc:  # noqa: BLE001 - the demo's own outputs are complete already
        print(f"[demo] agreement check failed: {type(exc).__name__}: {exc}", file=sys.stderr)


EXIT_NO_COMMAND, EXIT_WALL_LIMIT = 4, 5
RECORD = ["/odom", "/tf", "/tf_static", "/cameras/*", "/ground_truth/*", "/perception/*",
          "/planning/*", "/control/command", "/supervisor/status", "/diagnostics"]
RECORD_EXCLUDE = ["/cameras/*/image_rect", "/cameras/*/camera_info_rect", "/perception/markers",
                  "/planning/markers"]
GOAL_TOLERANCE_M = 3.0        # as the in-process suite (vision_closed_loop.EpisodeConfig)
STOPPED_MPS = 0.1


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--open-loop" in argv:
        argv.remove("--open-loop")
        return open_loop_main(argv)
    return closed_loop_main(argv)


def _closed_loop_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="autonomy-stack demo", description=__doc__.split("\n")[0],
                                 epilog="--open-loop: the former demo (bag replay into mode demo)")
    ap.add_argument("--scenario", default="narrow_street_oncoming")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mode", default="sim_vision", help="graph mode (a lockstep closed loop)")
    ap.add_argument("--sim-seconds", type=float, default=40.0, help="sim-time budget")
    ap.add_argument("--wall-limit", type=float, default=600.0, help="s of wall time, then stop")
    ap.add_argument("--startup-limit", type=float, default=120.0,
                    help="s of wall time for the stack's first /control/command and the start")
    ap.add_argument("--out", default=None, help="output folder (default out/demo-<time>)")
    ap.add_argument("--frames", type=int, default=40, help="rendered report frames")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="NODE.PARAM:=VALUE",
                    help="override a node parameter of the graph (repeatable)")
    return ap


def closed_loop_main(argv=None) -> int:
    args = _closed_loop_parser().parse_args(argv)
    try:
        overrides = parse_overrides(args.param)
    except ValueError as exc:
        print(f"[demo] {exc}", file=sys.stderr)
        return 2
    overrides.setdefault("simulator", {}).update(scenario=args.scenario, seed=args.seed)
    base = Path.cwd() / "out" if not (SOURCE_ROOT / ".git").exists() else SOURCE_ROOT / "out"
    out = Path(args.out) if args.out else base / time.strftime("demo-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    bag = out / "run"
    # lazy: rclpy and the bag writer only for a live run (start-up time of the CLI)
    from autonomy_tools.graph_recorder import GraphRecorder
    t0 = time.monotonic()
    print(f"[demo] closed loop on vision: {args.scenario} (seed {args.seed}), mode {args.mode}, "
          f"up to {args.sim_seconds:g} s of sim time; recording {bag}", flush=True)
    runner = Runner(args.mode, overrides=overrides, log_dir=out / "logs")
    busy = runner.refuse_if_domain_busy()
    if busy is not None:
        print("[demo] refused: the demo's graph would join the graph already running",
              file=sys.stderr)
        return busy
    rec = GraphRecorder(bag, RECORD, RECORD_EXCLUDE)
    try:
        runner.start()
        code, end = _drive(runner, rec, args, t0)
    finally:
        runner.stop()
        rec.close()
    wall = time.monotonic() - t0
    st = rec.state
    print(f"[demo] episode ended: {end} after {st.sim_t:.1f} s of sim time, {wall:.0f} s wall "
          f"({st.commands} commands)", flush=True)
    summary = {"end": end, "exit_code": code, "wall_s": round(wall, 1),
               "sim_s": round(st.sim_t, 2), "commands": st.commands,
               "recorded": rec.counts, "supervisor_events": st.supervisor_events}
    if rec.counts.get("/ground_truth/ego"):
        _report(out, bag, args, summary)
    else:
        print("[demo] nothing recorded: no report", file=sys.stderr)
    (out / "closed_loop.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"[demo] finished in {time.monotonic() - t0:.0f} s (exit code {code})")
    print(f"[demo] output folder: {out}")
    print(f"[demo]   bag: {bag}   report: {out / 'report' / 'report.md'}   logs: {out / 'logs'}")
    return code


def _drive(runner, rec, args, t0: float):
    """Watch the running graph until the episode ends: (exit code, end reason)."""
    try:
        runner.wait_until_up(timeout=60.0)
    except RuntimeError as exc:
        return EXIT_NODE_DIED, f"node died during start-up: {exc}"
    st, last_print = rec.state, 0.0
    while True:
        time.sleep(0.2)
        wall = time.monotonic() - t0
        try:
            runner._check_alive()
        except RuntimeError as exc:
            print(f"[demo] {exc}", file=sys.stderr)
            return EXIT_NODE_DIED, f"node died: {exc}"
        speed = abs(st.ego[3]) if st.ego else math.inf
        if st.commands == 0 and wall > args.startup_limit:
            return EXIT_NO_COMMAND, f"no /control/command within {args.startup_limit:g} s"
        if st.sim_t == 0.0 and wall > args.startup_limit:
            return EXIT_NO_COMMAND, (f"the world never started within {args.startup_limit:g} s "
                                     f"({st.commands} commands, no plan answered the held frame)")
        if st.commands and rec.goal_distance() < GOAL_TOLERANCE_M and speed < STOPPED_MPS:
            return 0, "goal reached"
        if rec.supervisor_stopped() and speed < STOPPED_MPS:
            return 0, f"supervisor stopped the car: {st.supervisor_message}"
        if st.sim_t >= args.sim_seconds:
            return 0, f"sim-time budget of {args.sim_seconds:g} s spent"
        if wall > args.wall_limit:
            return EXIT_WALL_LIMIT, f"wall-time limit of {args.wall_limit:g} s (sim t {st.sim_t:.1f} s)"
        if wall - last_print >= 15.0:
            last_print = wall
            ego = "no odometry yet" if st.ego is None else \
                f"ego ({st.ego[0]:.1f}, {st.ego[1]:.1f}) at {st.ego[3]:.1f} m/s"
            print(f"[demo] {wall:4.0f} s wall: sim t {st.sim_t:5.1f} s, {ego}, goal "
                  f"{rec.goal_distance():.1f} m away, {st.commands} commands", flush=True)


def trace_from_bag(bag, scenario: str, seed: int, supervisor_events=()):
    """The EpisodeTrace of a recorded closed-loop run: the ego from /ground_truth/ego at the
    stamps of /ground_truth/objects (10 Hz), the objects of those messages, lanes, route,
    goal and body from the scenario's world (the same seed builds the same world), latency
    from /planning diagnostics (cycle_ms) and /perception/latency."""
    # lazy: the bag reader, the scenario catalogue and the metric modules only for the report
    from autonomy_replay.bag_data import BagData, quat_yaw
    from autonomy_simulator import scenarios
    from autonomy_stack.ros.ros_conversions import msg_to_object
    from autonomy_tools.closed_loop_metrics import EpisodeTrace
    from autonomy_tools.planning_closed_loop import lanes_from_world
    want = {"/ground_truth/ego", "/ground_truth/objects", "/diagnostics", "/perception/latency"}
    data = BagData(bag, lambda topic, _t: topic in want)
    stamp = lambda h: round(h.stamp.sec + h.stamp.nanosec * 1e-9, 3)  # noqa: E731
    ego = {stamp(m.header): m for _, m in data.get("/ground_truth/ego")}
    rows, objects = [], []
    for _, m in data.get("/ground_truth/objects"):
        e = ego.get(stamp(m.header))
        if e is None or (rows and stamp(m.header) <= rows[-1][0]):
            continue
        p, tw = e.pose.pose, e.twist.twist
        rows.append((stamp(m.header), p.position.x, p.position.y, quat_yaw(p.orientation),
                     tw.linear.x, tw.angular.z))
        objects.append([msg_to_object(o) for o in m.objects])
    a = np.asarray(rows, float).reshape(-1, 6)
    accel = np.gradient(a[:, 4], a[:, 0]) if len(a) > 2 else np.zeros(len(a))
    sc = scenarios.make(scenario, seed=seed)
    vp = sc.sim.vehicle
    planner_s = [float(kv.value) * 1e-3 for _, d in data.get("/diagnostics") for st in d.status
                 if st.name == "planning: planner" for kv in st.values if kv.key == "cycle_ms"]
    perception_s = [m.total_ms * 1e-3 for _, m in data.get("/perception/latency")]
    return EpisodeTrace(
        t=a[:, 0], x=a[:, 1], y=a[:, 2], yaw=a[:, 3], speed=a[:, 4], accel=accel,
        yaw_rate=a[:, 5], objects=objects, lanes=lanes_from_world(sc.sim.world),
        route=np.asarray(sc.route_path)[:, :2], goal=tuple(sc.goal),
        goal_tolerance=GOAL_TOLERANCE_M,
        body=(vp.length - vp.rear_overhang, vp.rear_overhang, vp.width / 2.0),
        supervisor_events=list(supervisor_events), planner_latency_s=planner_s,
        perception_latency_s=perception_s,
        road_polygons=[np.asarray(p, float)[:, :2] for p in sc.sim.world.drivable_polygons])


def lockstep_figures(bag) -> dict:
    """The simulator's last lockstep diagnostics in the bag (steps, timeouts, wait)."""
    # lazy: the bag reader only for the report
    from autonomy_replay.bag_data import BagData
    last = {}
    for _, d in BagData(bag, lambda topic, _t: topic == "/diagnostics").get("/diagnostics"):
        for st in d.status:
            if st.name == "simulator":
                last = {kv.key: kv.value for kv in st.values}
    return {k: last[k] for k in ("sim_time", "lockstep_steps", "lockstep_timeouts",
                                 "lockstep_timeouts_command", "lockstep_timeouts_trajectory",
                                 "lockstep_wait_mean_ms", "lockstep_wait_max_ms",
                                 "commands_received", "render_s") if k in last}


def _report(out: Path, bag: Path, args, summary: dict) -> None:
    """The replay report from the bag (same bag as input and output) + closed-loop figures."""
    # lazy: matplotlib / cv2 / the metric modules only once the run is over
    from autonomy_replay.report import build_report, write_report
    from autonomy_tools.closed_loop_metrics import episode_metrics
    print("[demo] writing the report (vector-space frames, camera mosaic, video, metrics)",
          flush=True)
    try:
        tr = trace_from_bag(bag, args.scenario, args.seed, summary["supervisor_events"])
        figures = {k: (float(v) if isinstance(v, (int, float, np.floating, np.integer)) else v)
                   for k, v in episode_metrics(tr).items()}
        figures["sim_s_driven"] = float(tr.t[-1] - tr.t[0]) if len(tr.t) > 1 else 0.0
    except Exception as exc:  # noqa: BLE001 - the report below still stands
        figures = {"error": f"{type(exc).__name__}: {exc}"}
    summary["closed_loop"] = figures
    summary["lockstep"] = lockstep_figures(bag)
    rep = build_report(bag, bag, exit_code=summary["exit_code"],
                       options={"mode": args.mode, "scenario": args.scenario, "seed": args.seed})
    rep["closed_loop"] = {**summary}
    paths = write_report(rep, out / "report", bag, bag, max_frames=args.frames)
    md = out / "report" / "report.md"
    lines = ["", "## Closed loop (episode_metrics against the ground truth)", "",
             f"- end: {summary['end']}; {summary['sim_s']} s sim in {summary['wall_s']} s wall",
             f"- lockstep: {summary['lockstep']}", ""]
    lines += [f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |"
              for k, v in figures.items()]
    lines.insert(-len(figures), "| figure | value |\n|---|---|")
    md.write_text(md.read_text() + "\n".join(lines) + "\n")
    print("[demo] closed-loop figures: " + ", ".join(
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items()))
    print(f"[demo] lockstep: {summary['lockstep']}")
    print(f"[demo] report files: {len(paths)} in {out / 'report'}")


if __name__ == "__main__":
    sys.exit(main())

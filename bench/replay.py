"""Replay throughput and per-stage latency.

    bench/run replay [--bag PATH | --synthetic] [--mode MODE] [--duration S]

1. The bag: --bag, else a simulator scenario recorded with autonomy_simulator.record
   (cached under build/bench_replay/), else (--synthetic or no simulator) a generated bag.
2. read: iterate the bag's raw messages without publishing (median of 3 passes).
3. replay: the player publishes every message as fast as possible (--rate 0) into a
   separate sink process that subscribes (raw) to every bag topic; throughput, and the
   share of the messages the sink received.
4. stage_latency_ms: replays the bag through the graph mode that runs the perception node
   (--mode, default: the first mode of config/graph.yaml with a `perception` node) at rate
   1 and reads /perception/latency; null with a reason when there is no such mode or no
   report arrived.
Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(ROOT / "config" / "fastdds_profile.xml"))
os.environ.setdefault("OMP_NUM_THREADS", "2")
if "ROS_DOMAIN_ID" not in os.environ:
    os.environ["ROS_DOMAIN_ID"] = str(101 + os.getpid() % 100)   # away from tests and 'up'

SINK_CODE = r"""
import sys, time, json, importlib, rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy, DurabilityPolicy
topics = json.loads(sys.argv[1])
rclpy.init()
node = Node("bench_replay_sink")
counts = {t: 0 for t in topics}
nbytes = [0]
def cb_for(t):
    def cb(data):
        counts[t] += 1
        nbytes[0] += len(data)
    return cb
for t, mt in topics.items():
    pkg, _, name = mt.split("/")
    cls = getattr(importlib.import_module(pkg + ".msg"), name)
    dur = DurabilityPolicy.TRANSIENT_LOCAL if t == "/tf_static" else DurabilityPolicy.VOLATILE
    node.create_subscription(cls, t, cb_for(t), QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
        durability=dur), raw=True)
print("READY", flush=True)
import select
deadline = time.monotonic() + float(sys.argv[2])
done_at = None
last, last_change = -1, time.monotonic()
while time.monotonic() < deadline:          # until the bench closes our stdin, then quiet
    rclpy.spin_once(node, timeout_sec=0.02)
    if done_at is None and select.select([sys.stdin], [], [], 0)[0] and not sys.stdin.read(1):
        done_at = time.monotonic()
    n = sum(counts.values())
    if n != last:
        last, last_change = n, time.monotonic()
    if done_at is not None and time.monotonic() - last_change > 1.0:
        break
print("COUNTS " + json.dumps({"counts": counts, "bytes": nbytes[0]}), flush=True)
"""


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def get_bag(args) -> tuple:
    if args.bag:
        return Path(args.bag), "given"
    cache = ROOT / "build" / "bench_replay"
    cache.mkdir(parents=True, exist_ok=True)
    if not args.synthetic:
        try:
            import autonomy_simulator.record  # noqa: F401
            out = cache / f"{args.scenario}_{args.duration:g}s_{args.width}x{args.height}"
            if not (out / "metadata.yaml").exists():
                log(f"bench: recording {args.scenario} ({args.duration:g} s) -> {out}")
                subprocess.run([sys.executable, "-m", "autonomy_simulator.record", args.scenario,
                                "--duration", str(args.duration), "--out", f"{out}.mcap",
                                "--width", str(args.width), "--height", str(args.height),
                                "--camera-rate", "10", "--seed", "0"],
                               check=True, stdout=sys.stderr)
            return out, f"simulator:{args.scenario}"
        except (ImportError, subprocess.CalledProcessError) as exc:
            log(f"bench: simulator bag not available ({exc}); using a synthetic bag")
    from autonomy_replay.synthetic import write_synthetic_bag
    out = cache / f"synthetic_{args.duration:g}s_{args.width}x{args.height}"
    if not (out / "metadata.yaml").exists():
        write_synthetic_bag(out, duration=args.duration, odom_hz=50, camera_hz=10,
                            image_size=(args.width, args.height))
    return out, "synthetic"


def bench_read(bag) -> dict:
    """Median of 3 raw passes over the bag (rosbags reader, no decoding, no publishing)."""
    from autonomy_replay.bag import BagReader
    times, n, nb = [], 0, 0
    for _ in range(3):
        r = BagReader(bag)
        t0 = time.perf_counter()
        n = nb = 0
        for topic, _t, data in r.messages():
            if topic == "/clock":          # the player does not republish the bag's /clock
                continue
            n += 1
            nb += len(data)
        times.append(time.perf_counter() - t0)
        r.close()
    s = statistics.median(times)
    return {"s": s, "messages": n, "bytes": nb, "messages_per_s": n / s, "mb_per_s": nb / s / 1e6}


QOS_DEPTH = 10


def bench_replay(bag, repeats: int = 3) -> dict:
    """`repeats` replays at full speed into one sink process; median throughput."""
    from autonomy_replay.bag import BagReader
    from autonomy_replay.player import Player, ReplayOptions
    r = BagReader(bag)
    topics = {n: t.msgtype for n, t in r.topics.items() if n != "/clock"}
    r.close()
    sink = subprocess.Popen([sys.executable, "-c", SINK_CODE, json.dumps(topics), "300"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    runs = []
    try:
        line = sink.stdout.readline()
        if "READY" not in line:
            raise RuntimeError(f"sink failed: {line}{sink.stdout.read()[-2000:]}")
        for _ in range(repeats):
            opts = ReplayOptions(rate=0.0, wait_for=sorted(topics), wait_timeout=30.0,
                                 settle=0.5, tail=0.0, qos_depth=QOS_DEPTH)
            with BagReader(bag) as rr:
                runs.append(Player(rr, opts, log=log).run())
        sink.stdin.close()                      # tells the sink that the replays are over
        out = sink.stdout.read()
        sink.wait(timeout=60)
    finally:
        if sink.poll() is None:
            sink.kill()
    counts = json.loads(out.split("COUNTS ", 1)[1]) if "COUNTS " in out else {"counts": {}}
    received = sum(counts["counts"].values())
    played = sum(st.messages for st in runs)
    st = sorted(runs, key=lambda x: x.wall_s)[len(runs) // 2]
    return {"s": st.wall_s, "messages": st.messages, "bytes": st.played_bytes,
            "messages_per_s": st.messages / st.wall_s,
            "mb_per_s": st.played_bytes / st.wall_s / 1e6,
            "runs_s": [round(x.wall_s, 4) for x in runs],
            "received_by_sink": received,
            "delivered_ratio": received / played if played else None,
            "undelivered": sum(sum(x.undelivered.values()) for x in runs)}


def perception_mode(requested):
    import yaml
    graph = yaml.safe_load((ROOT / "config" / "graph.yaml").read_text())
    if requested:
        return requested if requested in graph["modes"] else None
    for mode, m in graph["modes"].items():
        if "perception" in (m.get("nodes") or []) and "simulator" not in (m.get("nodes") or []):
            return mode
    return None


def _latency_from_report(rep: dict) -> dict:
    out = {}
    for node, d in (rep.get("latency") or {}).items():
        for stage, st in d["stages"].items():
            out[f"{node}/{stage}"] = {k: round(st[k], 3) for k in ("mean", "p50", "p95", "max")}
        if d["total_ms"].get("count"):
            out[f"{node}/total"] = {k: round(d["total_ms"][k], 3)
                                    for k in ("mean", "p50", "p95", "max")}
    return out


def _start_pipeline(keys, log_dir):
    """Start graph.yaml nodes `keys` (with use_sim_time) as processes, like the runner."""
    import yaml
    from autonomy_stack.graph import nodes_for_mode
    from autonomy_tools.runner import find_executable
    graph = yaml.safe_load((ROOT / "config" / "graph.yaml").read_text())
    graph["modes"] = {"bench": {"nodes": keys, "use_sim_time": True}}
    procs = []
    for spec in nodes_for_mode("bench", graph=graph):
        f = open(Path(log_dir) / f"{spec.key}.log", "w")
        procs.append((spec.key, subprocess.Popen([find_executable(spec.executable)] +
                                                 spec.ros_args(), stdout=f,
                                                 stderr=subprocess.STDOUT,
                                                 start_new_session=True), f))
    return procs


def _log_tail(d, key):
    try:
        lines = [ln for ln in (Path(d) / f"{key}.log").read_text().splitlines() if ln.strip()]
        return lines[-1:]
    except OSError:
        return []


def _wait_up(procs, graph, timeout):
    """Until every node name is in the ROS graph or a process exits (start-up error)."""
    import rclpy
    from rclpy.context import Context
    ctx = Context()
    rclpy.init(args=[], context=ctx)
    probe = rclpy.create_node("bench_replay_probe", context=ctx, enable_rosout=False,
                              start_parameter_services=False)
    want = {graph["nodes"][k].get("name", k) for k, _, _ in procs}
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for _, p, _ in procs):
                return
            if want <= {n for n, _ns in probe.get_node_names_and_namespaces()}:
                return
            time.sleep(0.5)
    finally:
        probe.destroy_node()
        rclpy.try_shutdown(context=ctx)


def bench_latency(bag, mode_arg) -> dict:
    """Replays the bag (rate 1) through rectification -> perception and reads the per-stage
    latency the nodes publish on /perception/latency."""
    import signal
    import yaml
    from autonomy_tools.replay import main as replay_main
    graph = yaml.safe_load((ROOT / "config" / "graph.yaml").read_text())
    mode = perception_mode(mode_arg)
    keys = [k for k in ("rectification", "perception") if k in graph["nodes"]]
    if mode is None and "perception" not in keys:
        return {"stage_latency_ms": None,
                "stage_latency_reason": "no perception node in config/graph.yaml yet"}
    died, died_tail = [], []
    with tempfile.TemporaryDirectory(prefix="bench_replay_") as d:
        procs = []
        argv = [str(bag), "--report", f"{d}/rep", "--frames", "0", "--wait", "60",
                "--tail", "2", "--quiet"]
        if mode is not None:
            argv += ["--nodes", mode]
        else:
            procs = _start_pipeline(keys, d)
            from autonomy_replay.bag import BagReader
            r = BagReader(bag)
            cams = [t for t in r.topics if t.endswith("/image_raw")]
            r.close()
            argv += ["--wait-for", *cams]
        try:
            if procs:
                _wait_up(procs, graph, timeout=90.0)
                time.sleep(3.0)       # a node that fails in its constructor was briefly "up"
            dead = [(k, p.returncode) for k, p, _ in procs if p.poll() is not None]
            if dead:
                k, rc = dead[0]
                tail = _log_tail(d, k)
                return {"stage_latency_ms": None, "pipeline": keys,
                        "stage_latency_reason": f"node '{k}' exited with code {rc} at start-up"
                                                f": {tail[0] if tail else ''}"[:400]}
            code = replay_main(argv)
            died = [(k, p.returncode) for k, p, _ in procs if p.poll() is not None]
            died_tail = _log_tail(d, died[0][0]) if died else []
            if mode is not None and code == 6:        # the runner could not start the mode
                logs = sorted(Path(f"{d}/rep/node_logs").glob("*.log"))
                bad = [(f.stem, ln) for f in logs for ln in f.read_text().splitlines()
                       if "FATAL" in ln or "Error" in ln or "failed" in ln]
                if bad:
                    died, died_tail = [(bad[0][0], "?")], [bad[0][1]]
            rep_path = Path(f"{d}/rep/report.json")
            rep = json.loads(rep_path.read_text()) if rep_path.exists() else {}
        finally:
            for _k, p, f in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGINT)
            for _k, p, f in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                f.close()
    lat = _latency_from_report(rep)
    base = {"pipeline": mode or keys, "replay_exit_code": code}
    if not lat:
        why = "the replay recorded no /perception/latency report"
        if mode is not None and code == 6:
            why = (f"the graph of mode '{mode}' did not start: "
                   f"{died[0][0] if died else '?'}: {(died_tail or [''])[0]}")[:500]
        elif died:
            why += (f"; node(s) exited during the replay: {died}; "
                    f"{died[0][0]}: {(died_tail or [''])[0]}")[:500]
        return {"stage_latency_ms": None, **base, "stage_latency_reason": why}
    return {"stage_latency_ms": lat, **base}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bag", default=None)
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument("--scenario", default="intersection_occlusion")
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--mode", default=None, help="graph mode for stage latency")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--qos-depth", type=int, default=10,
                    help="publisher history depth of the player (default 10, as in replay)")
    args = ap.parse_args()
    global QOS_DEPTH
    QOS_DEPTH = args.qos_depth
    bag, source = get_bag(args)
    read = bench_read(bag)
    log(f"bench: read {read['messages']} messages, {read['bytes'] / 1e6:.1f} MB in "
        f"{read['s']:.3f} s")
    rep = bench_replay(bag)
    read2 = bench_read(bag)                  # reads before and after: the box is shared
    if read2["s"] < read["s"]:
        read = read2
    log(f"bench: replayed {rep['messages']} messages in {rep['s']:.3f} s; sink received "
        f"{rep['received_by_sink']}")
    lat = {"stage_latency_ms": None, "stage_latency_reason": "--no-latency"} if args.no_latency \
        else bench_latency(bag, args.mode)
    result = {
        "bag": str(bag), "source": source, "messages": read["messages"],
        "mb": round(read["bytes"] / 1e6, 2),
        "messages_per_s": round(rep["messages_per_s"], 1), "mb_per_s": round(rep["mb_per_s"], 2),
        "read_messages_per_s": round(read["messages_per_s"], 1),
        "read_mb_per_s": round(read["mb_per_s"], 2),
        "ratio": round(rep["mb_per_s"] / read["mb_per_s"], 4),
        "delivered_ratio": None if rep["delivered_ratio"] is None else round(rep["delivered_ratio"], 4),
        "qos_depth": QOS_DEPTH, "replay_s": round(rep["s"], 3), "read_s": round(read["s"], 4),
        **lat,
        "cpu_cores": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

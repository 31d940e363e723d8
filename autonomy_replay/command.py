"""`replay BAG [--rate R] [--start S] [--duration D] [--nodes MODE | --graph MODE
[--graph-file FILE]] [--record OUT] [--expect TOPIC=N ...] [--report DIR]
[--reference REF --tolerances FILE]`

Plays a rosbag2 into the graph with sim time, records the graph's outputs, writes a
report, and (regression mode) compares the outputs to a reference bag.

Exit codes (when several apply, the first in this list wins):
  2  usage error, or the bag cannot be read at all (nothing was replayed)
  9  corrupted bag: MCAP chunks that fail their CRC (or do not decompress to their size)
     are named with their byte and log-time ranges and nothing is played; with
     --skip-corrupt the intact chunks are played instead (then exit 3)
  6  the graph could not be started (--nodes), a node of it died during the replay, or
     the output bag could not be written
  7  graph not ready: a link between two nodes of the mode (--nodes/--graph) that carries
     the bag's data was not matched within --wait (default 60 s when there are links):
     the subscribing node's subscription or the publishing node's publisher missing, or
     incompatible QoS; the links are named and nothing was played
  1  regression mode: outputs differ from the reference beyond the tolerances
  3  damaged bag (truncated / corrupt / corrupted chunks skipped with --skip-corrupt):
     the readable part was replayed
  4  incomplete input: topics of unknown message type skipped, or topics the graph
     consumes are missing from the bag (with --strict also: out-of-order stamps)
  5  undeliverable messages: a topic consumed when playback began (or a --wait-for
     topic) had no matched subscriber for some messages (a subscriber joining later is
     a warning), a publish failed, a --wait-for topic never got a subscriber, or a
     --record-topics topic (named without wildcards) never got a publisher
  8  messages lost in the graph: a recorded output received fewer messages than expected
     (--expect TOPIC=N, or one per input message for the nodes that declare
     `one_per_input` in the graph description; the input's count comes from the bag)
  130 interrupted (Ctrl-C); the output bag is closed and valid
  0  everything replayed and delivered (warnings: out-of-order stamps; "unfed" topics
     that a running node subscribes to but neither the bag nor a node provides)
"""
from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

import yaml

from autonomy_replay.bag import BagError, BagReader
from autonomy_replay.player import Player, ReplayOptions
from autonomy_replay.regression import ToleranceError, compare_bags, load_tolerances
from autonomy_replay.report import build_report, write_report
from autonomy_stack.graph import (GraphError, NodeSpec, load_graph, mode_inputs,
                                  nodes_for_mode, parse_overrides)

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_USAGE = 2
EXIT_DAMAGED = 3
EXIT_INCOMPLETE = 4
EXIT_UNDELIVERED = 5
EXIT_GRAPH = 6
EXIT_LINKS = 7
EXIT_LOST = 8
EXIT_CORRUPT_CHUNKS = 9
EXIT_INTERRUPTED = 130
_PRECEDENCE = [EXIT_USAGE, EXIT_CORRUPT_CHUNKS, EXIT_GRAPH, EXIT_LINKS, EXIT_REGRESSION, EXIT_DAMAGED,
               EXIT_INCOMPLETE, EXIT_UNDELIVERED, EXIT_LOST]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="autonomy-stack replay",
        description="Play a rosbag2 into the graph with sim time; record, report, compare.",
        epilog=__doc__.split("\n\n", 2)[2] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bag", help="rosbag2 directory, .mcap or .db3 file")
    p.add_argument("--rate", type=float, default=1.0,
                   help="playback speed factor (default 1.0; 0 = as fast as possible)")
    p.add_argument("--start", type=float, default=0.0, help="skip S seconds of the bag")
    p.add_argument("--duration", type=float, default=None, help="play D seconds of the bag")
    p.add_argument("--nodes", metavar="MODE", default=None,
                   help="start the graph of this mode (config/graph.yaml) with use_sim_time "
                        "for the replay and stop it afterwards; default: use the running graph")
    p.add_argument("--graph", metavar="MODE", default=None,
                   help="the mode of the graph that runs already (started separately): "
                        "the replay waits for its links and accounts its outputs "
                        "(default with --nodes: that mode)")
    p.add_argument("--graph-file", metavar="FILE", default=None,
                   help="with --graph: the graph description to read MODE from (default "
                        "config/graph.yaml; parameter files next to it)")
    p.add_argument("--up-timeout", type=float, default=60.0,
                   help="with --nodes: seconds for every node to come up (default 60)")
    p.add_argument("--record", metavar="OUT", default=None,
                   help="record the graph's outputs into this new rosbag2 (MCAP) directory "
                        "(OUT.mcap -> directory OUT/ holding OUT.mcap, as the simulator's "
                        "recorder does)")
    p.add_argument("--record-topics", nargs="+", default=None, metavar="PATTERN",
                   help="topics (fnmatch patterns) to record (default: every topic in the "
                        "graph that the bag does not hold); topics named without wildcards "
                        "must have a publisher before playback starts")
    p.add_argument("--record-exclude", nargs="*", default=["/cameras/*/image_rect"],
                   metavar="PATTERN",
                   help="output topics not to record (default: /cameras/*/image_rect, the "
                        "rectified images, ~300 MB per second of sim time); give no pattern "
                        "to record everything")
    p.add_argument("--topics", nargs="+", default=None, metavar="PATTERN",
                   help="bag topics to play (default: all)")
    p.add_argument("--exclude", nargs="+", default=(), metavar="PATTERN",
                   help="bag topics not to play")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NODE.PARAM:=VALUE",
                   help="with --nodes: override a node parameter (repeatable), e.g. "
                        "perception.checkpoint:=/path/model.pt")
    p.add_argument("--wait-for", nargs="+", default=None, metavar="TOPIC",
                   help="topics that must have a subscriber before playback starts "
                        "(default with --nodes/--graph: the mode's subscribed topics that no "
                        "node of it publishes)")
    p.add_argument("--wait", type=float, default=None,
                   help="max seconds to wait for subscribers (default 15) and, when the "
                        "graph description gives links to wait for, for those links (default "
                        "60: a node may still be loading, e.g. perception's checkpoint)")
    p.add_argument("--expect", nargs="+", default=[], metavar="TOPIC=N",
                   help="a recorded output must receive N messages, else exit 8")
    p.add_argument("--drain", type=float, default=2.0,
                   help="max wall seconds after the tail to wait (clock held) until the "
                        "recorded outputs have their expected counts (default 2)")
    p.add_argument("--settle", type=float, default=1.0,
                   help="seconds the set of matched subscribers must be stable (default 1)")
    p.add_argument("--tail", type=float, default=1.0,
                   help="seconds of sim time to keep the clock running after the last "
                        "message, so the graph can finish (default 1)")
    p.add_argument("--qos-depth", type=int, default=10,
                   help="history depth of the player's publishers (default 10)")
    p.add_argument("--report", metavar="DIR", default=None,
                   help="write report.json, report.md, frames/*.png and replay.gif/.mp4 here")
    p.add_argument("--frames", type=int, default=40,
                   help="max number of rendered frames in the report (default 40; 0 = none)")
    p.add_argument("--eval-extent", type=float, default=None, metavar="M",
                   help="perception evaluation crop of +-M m (default: the BEV extent in the "
                        "perception checkpoint's config, +-24 m when it cannot be read)")
    p.add_argument("--reference", metavar="REF", default=None,
                   help="regression mode: compare the recorded outputs to this bag")
    p.add_argument("--tolerances", metavar="FILE", default=None,
                   help="YAML tolerances for regression mode (see autonomy_replay."
                        "regression); default: exact counts, 1e-6 on numbers")
    p.add_argument("--skip-corrupt", action="store_true", help="play the intact chunks (3)")
    p.add_argument("--strict", action="store_true",
                   help="out-of-order stamps count as incomplete input (exit 4)")
    p.add_argument("--quiet", action="store_true")
    return p


def _graph_specs(args, err) -> List[NodeSpec]:
    """The description of the graph the bag is played into (--nodes or --graph MODE, from
    --graph-file or config/graph.yaml); [] without a mode."""
    mode = args.graph or args.nodes
    if args.graph_file and args.nodes:
        err("replay: --graph-file describes a graph started separately: use it with "
            "--graph MODE, not --nodes")
        raise _Exit(EXIT_USAGE)
    if args.graph and args.nodes and args.graph != args.nodes:
        err(f"replay: --graph {args.graph} and --nodes {args.nodes} name different modes")
        raise _Exit(EXIT_USAGE)
    if mode is None:
        return []
    try:
        if args.graph_file:
            path = Path(args.graph_file)
            return nodes_for_mode(mode, graph=load_graph(path), config_dir=path.parent)
        return nodes_for_mode(mode)
    except (GraphError, OSError, yaml.YAMLError) as exc:
        err(f"replay: graph description: {exc}")
        raise _Exit(EXIT_USAGE)


def _parse_expect(items: Sequence[str], record, err) -> dict:
    """--expect TOPIC=N ... -> {topic: N}; the topics must be recorded."""
    out = {}
    for item in items:
        topic, _, n = item.partition("=")
        if not topic.startswith("/") or not n.isdigit():
            err(f"replay: bad --expect '{item}': expected /topic=N")
            raise _Exit(EXIT_USAGE)
        out[topic] = int(n)
    if out and record is None:
        err("replay: --expect needs the outputs recorded (--record or --report)")
        raise _Exit(EXIT_USAGE)
    return out


def _raise_interrupt(*_):
    raise KeyboardInterrupt


def exit_code_for(codes: Sequence[int]) -> int:
    for c in _PRECEDENCE:
        if c in codes:
            return c
    return EXIT_OK


class _Exit(Exception):
    """Ends the replay early with an exit code (the reason is printed before raising)."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def main(argv: Optional[Sequence[str]] = None, graph_runner=None) -> int:
    """`replay BAG [...]` -> exit code. `graph_runner` starts the nodes of `--nodes MODE`
    (`autonomy_tools.runner.Runner`, plugged in by `autonomy-stack replay` =
    `autonomy_tools.replay.main`; the harness does not import the tools layer). Without it,
    `--nodes` is refused: start the graph separately and replay without --nodes."""
    args = build_parser().parse_args(list(argv) if argv is not None else sys.argv[1:])
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    err = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    try:
        return _replay(args, graph_runner, log, err)
    except _Exit as exc:
        return exc.code


def _replay(args, graph_runner, log, err) -> int:
    """Check the options, open the bag, start the graph, play, classify, compare, report."""
    _check_options(args, err)
    tolerances = _load_reference(args, err) if args.reference else None
    bag = _open_bag(args.bag, err)
    if bag.damaged_chunks and not args.skip_corrupt:
        err(f"replay: ERROR: {len(bag.damaged_chunks)} corrupted chunk(s) in {args.bag} "
            "(listed above); nothing played (--skip-corrupt plays the intact chunks)")
        raise _Exit(EXIT_CORRUPT_CHUNKS)
    n_open_problems = len(bag.problems)
    specs = _graph_specs(args, err)
    report_dir, record, tmp = _output_paths(args, err)
    expect = _parse_expect(args.expect, record, err)

    wait_for = list(args.wait_for or [])
    if args.wait_for is None and specs:
        # topics one node of the mode feeds to another are not expected from the bag
        wait_for = [t for t in mode_inputs(specs) if t != "/clock"]

    opts = ReplayOptions(rate=args.rate, start=args.start, duration=args.duration,
                         topics=args.topics, exclude=args.exclude, wait_for=wait_for,
                         wait_timeout=15.0 if args.wait is None else args.wait,
                         link_timeout=60.0 if args.wait is None else args.wait,
                         settle=args.settle, tail=args.tail,
                         record_path=record, record_topics=args.record_topics,
                         record_exclude=args.record_exclude,
                         qos_depth=max(1, args.qos_depth), graph=specs, expect=expect,
                         drain=max(0.0, args.drain))

    if not specs:
        log("replay: no graph description (--nodes/--graph MODE): links between the graph's "
            "nodes are not waited for; outputs are accounted only with --expect")
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
    runner = _start_graph(args, graph_runner, report_dir, err) if args.nodes else None

    log(f"replay: {args.bag} ({bag.storage}, {bag.message_count} messages, "
        f"{(bag.end_ns - bag.start_ns) * 1e-9:.2f} s, {len(bag.topics)} topics) at rate "
        f"{args.rate if args.rate > 0 else 'max'}")
    stats = _play(bag, opts, runner, log, err)
    codes: List[int] = _stop_graph(runner, report_dir, err) if runner is not None else []
    problems = list(bag.problems) + list(stats.problems)
    bag.close()

    # topics consumed when playback began (a subscriber that joins later is a warning)
    consumed = set(stats.matched_at_start) | set(wait_for)
    undelivered_consumed = {t: n for t, n in stats.undelivered.items() if t in consumed}
    codes += _classify(args, problems, stats, undelivered_consumed)
    _print_outcome(bag, n_open_problems, stats, record, consumed, undelivered_consumed,
                   log, err)

    regression = None
    if args.reference and record is not None:
        regression = compare_bags(record, args.reference, tolerances)
        print(regression.text(), flush=True)
        if not regression.passed:
            codes.append(EXIT_REGRESSION)

    code = EXIT_INTERRUPTED if stats.interrupted else exit_code_for(codes)
    if report_dir is not None:
        report = build_report(args.bag, record, stats, problems, regression=regression,
                              exit_code=code, options=vars(args))
        paths = write_report(report, report_dir, args.bag, record, max_frames=args.frames)
        log(f"replay: report in {report_dir} ({', '.join(sorted(p.name for p in paths))})")
    if tmp is not None:
        tmp.cleanup()
    log(f"replay: exit code {code}")
    return code


def _check_options(args, err) -> None:
    if args.rate < 0:
        err("replay: --rate must be >= 0 (0 = as fast as possible)")
        raise _Exit(EXIT_USAGE)
    if args.start < 0 or (args.duration is not None and args.duration <= 0):
        err("replay: --start must be >= 0 and --duration > 0")
        raise _Exit(EXIT_USAGE)
    if args.tolerances and not args.reference:
        err("replay: --tolerances needs --reference")
        raise _Exit(EXIT_USAGE)


def _load_reference(args, err) -> dict:
    """Regression mode: the tolerances (checked before anything is played) and a reference
    bag that exists."""
    try:
        tolerances = load_tolerances(args.tolerances)
    except (ToleranceError, OSError) as exc:
        err(f"replay: bad --tolerances: {exc}")
        raise _Exit(EXIT_USAGE)
    if not Path(args.reference).exists():
        err(f"replay: reference bag {args.reference} does not exist")
        raise _Exit(EXIT_USAGE)
    return tolerances


def _open_bag(path: str, err) -> BagReader:
    """The input bag; its problems found on opening are printed. Unreadable or empty: exit 2."""
    try:
        bag = BagReader(path)
    except BagError as exc:
        err(f"replay: cannot read bag: {exc}")
        raise _Exit(EXIT_USAGE)
    for p in bag.problems:
        err(f"replay: bag problem: {p}")
    if bag.start_ns is None:
        err(f"replay: {path}: the bag holds no readable message")
        raise _Exit(EXIT_USAGE)
    return bag


def _output_paths(args, err):
    """(report dir or None, output bag or None, TemporaryDirectory or None). Without
    --record the outputs go to DIR/output_bag with --report, else to a temporary directory
    in regression mode; an existing output bag is refused."""
    report_dir = Path(args.report) if args.report else None
    record = Path(args.record) if args.record else None
    tmp = None
    if record is None and (report_dir is not None or args.reference):
        if report_dir is not None:
            report_dir.mkdir(parents=True, exist_ok=True)
            record = report_dir / "output_bag"
        else:
            tmp = tempfile.TemporaryDirectory(prefix="replay_")
            record = Path(tmp.name) / "output_bag"
    if record is not None and record.suffix == ".mcap":
        record = record.with_suffix("")     # rosbag2 directory X/ holding X.mcap (+ metadata)
    if record is not None and record.exists():
        err(f"replay: output bag {record} exists already; choose a new path")
        raise _Exit(EXIT_USAGE)
    return report_dir, record, tmp


def _start_graph(args, Runner, report_dir: Optional[Path], err):
    """Start the nodes of `--nodes MODE` with sim time (plus the -p overrides) through the
    plugged-in runner and wait until they are up; exit 6 when that fails."""
    if Runner is None:
        err("replay: --nodes needs the graph runner (run `autonomy-stack replay`, i.e. "
            f"autonomy_tools.replay); or start the graph separately (autonomy-stack up --mode "
            f"{args.nodes}, with use_sim_time) and run the replay without --nodes")
        raise _Exit(EXIT_GRAPH)
    runner = None
    try:
        overrides = {spec.key: {"use_sim_time": True} for spec in nodes_for_mode(args.nodes)}
        for key, params in parse_overrides(args.param).items():
            overrides.setdefault(key, {}).update(params)
        log_dir = report_dir / "node_logs" if report_dir is not None else None
        runner = Runner(args.nodes, overrides=overrides, log_dir=log_dir,
                        out=sys.stderr if args.quiet else sys.stdout)
        runner.start()
        up = runner.wait_until_up(timeout=args.up_timeout)
        if len(up) < len(runner.children):
            raise RuntimeError(f"only {up} came up within {args.up_timeout:.0f} s")
    except Exception as exc:
        if runner is not None:
            runner.stop()
        err(f"replay: cannot start the graph of mode '{args.nodes}': {exc}")
        raise _Exit(EXIT_GRAPH)
    return runner


def _play(bag: BagReader, opts: ReplayOptions, runner, log, err):
    """Play the bag (SIGTERM ends the replay like Ctrl-C: the output bag is closed
    properly); a failing player stops the graph and exits 6."""
    player = Player(bag, opts, log=log)
    old_term = None
    try:
        old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:      # not the main thread
        pass
    try:
        return player.run()
    except Exception as exc:
        err(f"replay: failed: {type(exc).__name__}: {exc}")
        if runner is not None:
            runner.stop()
        raise _Exit(EXIT_GRAPH)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


def _stop_graph(runner, report_dir: Optional[Path], err) -> List[int]:
    """Stop the graph; [EXIT_GRAPH] when a node died during the replay."""
    codes = []
    died = [f"{c.spec.fully_qualified_name} (exit code {c.proc.returncode})"
            for c in runner.children if c.proc.poll() is not None]
    if died:
        err(f"replay: node(s) died during the replay: {', '.join(died)}"
            + (f"; logs in {report_dir / 'node_logs'}" if report_dir is not None else ""))
        codes.append(EXIT_GRAPH)
    try:
        runner.stop()
    except Exception as exc:
        err(f"replay: stopping the graph failed: {exc}")
    return codes


def _classify(args, problems, stats, undelivered_consumed) -> List[int]:
    """Exit codes of the bag's and the player's problems (see the module docstring)."""
    codes = []
    if any(p.kind in ("truncated", "corrupt", "corrupt_chunk") for p in problems):
        codes.append(EXIT_DAMAGED)
    if any(p.kind in ("unknown_type", "missing_topic") for p in problems):
        codes.append(EXIT_INCOMPLETE)
    if args.strict and any(p.kind == "out_of_order" for p in problems):
        codes.append(EXIT_INCOMPLETE)
    if undelivered_consumed or stats.publish_errors or stats.not_ready:
        codes.append(EXIT_UNDELIVERED)
    if stats.missing_links:
        codes.append(EXIT_LINKS)
    if stats.lost:
        codes.append(EXIT_LOST)
    return codes


def _print_outcome(bag, n_open_problems, stats, record, consumed, undelivered_consumed,
                   log, err) -> None:
    """Problems found while playing, what was played and recorded, delivery warnings."""
    for p in bag.problems[n_open_problems:]:
        err(f"replay: bag problem: {p}")
    for link, why in stats.missing_links.items():
        err(f"replay: graph link not matched (nothing played): {link}: {why}")
    for p in stats.problems:
        err(f"replay: {'warning' if p.kind in ('out_of_order', 'unfed_topic') else 'problem'}"
            f": {p}")
    log(f"replay: played {stats.messages} messages ({stats.played_bytes / 1e6:.1f} MB) in "
        f"{stats.wall_s:.2f} s; recorded {sum(stats.recorded.values())} messages on "
        f"{len(stats.recorded)} topics" + (f" into {record}" if record else ""))
    if undelivered_consumed:
        err(f"replay: undeliverable (no matched subscriber): {undelivered_consumed}")
    for topic, c in stats.lost.items():
        err(f"replay: LOST messages: {topic} received {c['received']} of {c['expected']} "
            "expected from the bag's data")
    late = {t: n for t, n in stats.late_subscribers.items() if t not in consumed}
    if late:
        err(f"replay: warning: subscribers that matched only after playback began "
            f"(messages published before): {late}")
    if stats.publish_errors:
        err(f"replay: publish errors: {stats.publish_errors}")
    if stats.unused_topics:
        log(f"replay: topics nobody subscribed to: {', '.join(stats.unused_topics)}")

if __name__ == "__main__":
    sys.exit(main())

"""Plays a rosbag2 into the running graph (the rclpy part of the replay harness).

- Raw CDR bytes are published as read (`publisher.publish(bytes)`); publishers are
  created with the message class imported from the type name in the bag.
- Sim time: the player publishes /clock from the bag's log times (the bag's own /clock
  topic is not republished); nodes run with use_sim_time:=true.
- Before the first message it waits until the topics the graph consumes have matched
  subscribers (explicit `wait_for`, else: until some subscriber matched and the set is
  stable for `settle` seconds), so the first messages are not lost. With a graph
  description (`graph`: the running mode's NodeSpecs) it also waits until every link
  between two of its nodes that carries bag-derived data is matched (the subscribing
  node's subscription and the publishing node's publisher both discovered, with QoS that
  match, and stable for `settle` s); when one is still missing after `link_timeout`,
  nothing is played and `stats.missing_links` names them.
- Loss accounting: each recorded output with an expected count (`expect`, or from the
  description's `one_per_input` and the played counts) must have received that many
  messages; after the tail the player waits up to `drain` s (clock held) for stragglers,
  then lists the short ones in `stats.lost`.
- A message published while its topic has no matched subscriber is counted as
  undeliverable; a publish that raises is counted as a publish error.
- The stack's outputs (every topic in the graph that the bag does not hold, or the
  `record_topics` patterns) are recorded with raw subscriptions into a new MCAP bag, with
  the playback's sim time as log time.
"""
from __future__ import annotations

import fnmatch
import importlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from autonomy_replay.bag import BagProblem, BagReader, StampOrderTracker
from autonomy_replay.links import link_problem, losses
from autonomy_replay.recorder import BagRecorder
from autonomy_stack.graph import NodeSpec, data_links, expected_counts

IGNORED_OUTPUTS = ("/rosout", "/parameter_events", "/clock")
LATCHED_TOPICS = ("/tf_static",)
# with graph links to wait for, the state stays stable at least this long before playing:
# the publishing node's participant discovers a subscription about when the player does
LINK_SETTLE_S = 0.25


@dataclass
class ReplayOptions:
    rate: float = 1.0                    # <= 0: as fast as possible
    start: float = 0.0                   # s after the bag's first message
    duration: Optional[float] = None     # s of bag time to play (None: to the end)
    topics: Optional[Sequence[str]] = None     # patterns of bag topics to play (None: all)
    exclude: Sequence[str] = ()
    wait_for: Sequence[str] = ()         # topics that must have a subscriber before start
    wait_timeout: float = 15.0
    link_timeout: float = 60.0           # the wait's bound when the graph has links to wait for
    settle: float = 1.0
    tail: float = 1.0                    # s of sim time played after the last message
    clock_hz: float = 100.0
    record_path: Optional[Path] = None
    record_topics: Optional[Sequence[str]] = None   # patterns (None: all graph outputs)
    record_exclude: Sequence[str] = ()              # patterns not recorded
    qos_depth: int = 10
    graph: Sequence[NodeSpec] = ()       # description of the running graph (links, counts)
    expect: Optional[Dict[str, int]] = None   # expected counts of recorded outputs
    drain: float = 2.0                   # wall s after the tail to wait for expected outputs


@dataclass
class ReplayStats:
    played: Dict[str, int] = field(default_factory=dict)
    played_bytes: int = 0
    undelivered: Dict[str, int] = field(default_factory=dict)      # no matched subscriber
    publish_errors: Dict[str, str] = field(default_factory=dict)
    publish_error_counts: Dict[str, int] = field(default_factory=dict)
    had_subscribers: List[str] = field(default_factory=list)
    matched_at_start: List[str] = field(default_factory=list)     # when playback began
    late_subscribers: Dict[str, int] = field(default_factory=dict)  # topic: msgs before match
    unused_topics: List[str] = field(default_factory=list)        # never had a subscriber
    skipped_topics: Dict[str, str] = field(default_factory=dict)   # not played: why
    not_ready: List[str] = field(default_factory=list)            # wait_for without subscriber
    links: List[str] = field(default_factory=list)                # graph links waited for
    missing_links: Dict[str, str] = field(default_factory=dict)   # link: why (nothing played)
    expected: Dict[str, int] = field(default_factory=dict)        # recorded output: count
    lost: Dict[str, Dict[str, int]] = field(default_factory=dict)  # {received, expected}
    recorded: Dict[str, int] = field(default_factory=dict)
    record_types: Dict[str, str] = field(default_factory=dict)
    record_skipped: Dict[str, str] = field(default_factory=dict)
    wait_s: float = 0.0
    wall_s: float = 0.0
    sim_start_ns: Optional[int] = None
    sim_end_ns: Optional[int] = None
    interrupted: bool = False
    problems: List[BagProblem] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return sum(self.played.values())

    def to_dict(self) -> dict:
        return {
            "messages_played": self.messages, "bytes_played": self.played_bytes,
            "played": dict(self.played), "undelivered": dict(self.undelivered),
            "publish_errors": dict(self.publish_errors),
            "had_subscribers": sorted(self.had_subscribers),
            "matched_at_start": sorted(self.matched_at_start),
            "late_subscribers": dict(self.late_subscribers),
            "unused_topics": sorted(self.unused_topics),
            "skipped_topics": dict(self.skipped_topics), "not_ready": list(self.not_ready),
            "links": list(self.links), "missing_links": dict(self.missing_links),
            "expected": dict(self.expected), "lost": dict(self.lost),
            "recorded": dict(self.recorded), "record_types": dict(self.record_types),
            "record_skipped": dict(self.record_skipped),
            "wait_s": round(self.wait_s, 3), "wall_s": round(self.wall_s, 3),
            "sim_start_s": None if self.sim_start_ns is None else self.sim_start_ns * 1e-9,
            "sim_end_s": None if self.sim_end_ns is None else self.sim_end_ns * 1e-9,
            "interrupted": self.interrupted,
        }


def message_class(msgtype: str):
    """'pkg/msg/Name' (or 'pkg/Name') -> the generated Python class; None if not importable."""
    parts = msgtype.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3:
        return None
    try:
        mod = importlib.import_module(f"{parts[0]}.{parts[1]}")
        return getattr(mod, parts[2])
    except (ImportError, AttributeError):
        return None


def _match(topic: str, patterns: Optional[Sequence[str]]) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(topic, p) for p in patterns)


def _qos_from_bag(topic: str, profiles: list, depth: int):
    """The QoS the recorder offered; without that record (bags written by rosbags, e.g. the
    simulator's) the widest offer, RELIABLE + TRANSIENT_LOCAL, which every subscriber
    accepts (a latched /planning/goal reader as well as a volatile image reader)."""
    # lazy: rclpy only on this path: the module imports without ROS
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    latched = topic in LATCHED_TOPICS or not profiles
    best_effort = False
    if profiles:
        names = [(getattr(p.durability, "name", str(p.durability)),
                  getattr(p.reliability, "name", str(p.reliability))) for p in profiles]
        latched = latched or all(d == "TRANSIENT_LOCAL" for d, _ in names)
        best_effort = all(r == "BEST_EFFORT" for _, r in names)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=1 if topic in LATCHED_TOPICS else depth,
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


class Player:
    def __init__(self, bag: BagReader, options: ReplayOptions, log=print):
        self.bag = bag
        self.opt = options
        self.log = log
        self.stats = ReplayStats()
        self._sim_now_ns = 0
        self._stop = threading.Event()
        self._recorder: Optional[BagRecorder] = None
        self._rec_subs: Dict[str, object] = {}
        self._unfed_seen = set()
        self._links = []
        self._wall0 = None

    # ------------------------------------------------------------ setup
    def _setup(self):
        # lazy: rclpy only on this path: the module imports without ROS
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        # lazy: ROS messages/rclpy only on this path: the module imports without ROS
        from rosgraph_msgs.msg import Clock

        self.ctx = Context()
        rclpy.init(args=[], context=self.ctx)
        self.node = Node("bag_replay", context=self.ctx,
                         enable_rosout=False, start_parameter_services=False)
        self.clock_pub = self.node.create_publisher(
            Clock, "/clock", QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                                        reliability=ReliabilityPolicy.RELIABLE))
        self._Clock = Clock
        self.pubs: Dict[str, object] = {}
        for name, t in sorted(self.bag.topics.items()):
            if name == "/clock":
                self.stats.skipped_topics[name] = "the player publishes /clock from log times"
                continue
            if not _match(name, self.opt.topics) or (self.opt.exclude and
                                                     _match(name, self.opt.exclude)):
                self.stats.skipped_topics[name] = "not selected"
                continue
            cls = message_class(t.msgtype)
            if cls is None:
                self.stats.skipped_topics[name] = f"unknown message type {t.msgtype}"
                self.stats.problems.append(BagProblem(
                    "unknown_type", f"message type '{t.msgtype}' is not available here "
                    f"(no Python package '{t.msgtype.split('/')[0]}'); its {t.count} "
                    "message(s) are not replayed", name))
                continue
            self.pubs[name] = self.node.create_publisher(
                cls, name, _qos_from_bag(name, t.qos, self.opt.qos_depth))
        for w in self.opt.wait_for:
            if w not in self.bag.topics:
                self.stats.problems.append(BagProblem(
                    "missing_topic", "the graph consumes this topic but the bag has no "
                    "such topic", w))
            elif self.bag.topics[w].count == 0:
                self.stats.problems.append(BagProblem(
                    "missing_topic", "the bag declares this topic but holds no message", w))
        if self.opt.record_path is not None:
            self._recorder = BagRecorder(self.opt.record_path, self.bag.typestore())
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self._spin_thread = threading.Thread(target=self._spin, daemon=True)
        self._spin_thread.start()

    def _spin(self):
        while not self._stop.is_set():
            try:
                self.executor.spin_once(timeout_sec=0.02)
            except Exception:
                if self._stop.is_set():
                    return
                time.sleep(0.01)

    # ------------------------------------------------------------ recording
    def _discover_outputs(self):
        if self._recorder is None:
            return
        # lazy: rclpy only on this path: the module imports without ROS
        from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile,
                               ReliabilityPolicy)
        try:
            names = self.node.get_topic_names_and_types()
        except Exception:
            return
        for topic, types in names:
            if (topic in self._rec_subs or topic in self.bag.topics or topic in IGNORED_OUTPUTS
                    or topic in self.stats.record_skipped or not types
                    or not _match(topic, self.opt.record_topics)
                    or (self.opt.record_exclude and _match(topic, self.opt.record_exclude)
                        and topic not in (self.opt.record_topics or ()))):
                continue
            infos = self.node.get_publishers_info_by_topic(topic)
            infos = [i for i in infos if i.node_name != self.node.get_name()]
            if not infos:
                continue
            msgtype = types[0]
            cls = message_class(msgtype)
            if cls is None:
                self.stats.record_skipped[topic] = f"unknown message type {msgtype}"
                continue
            if not self._recorder.add_topic(topic, msgtype):
                self.stats.record_skipped[topic] = self._recorder.skipped[topic]
                continue
            best_effort = any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
                              for i in infos)
            latched = all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                          for i in infos)
            qos = QoSProfile(
                history=HistoryPolicy.KEEP_LAST, depth=100,
                reliability=(ReliabilityPolicy.BEST_EFFORT if best_effort
                             else ReliabilityPolicy.RELIABLE),
                durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                            else DurabilityPolicy.VOLATILE))
            self._rec_subs[topic] = self.node.create_subscription(
                cls, topic, self._make_record_cb(topic), qos, raw=True)
            self.stats.record_types[topic] = msgtype

    def _make_record_cb(self, topic):
        def cb(data):
            if self._recorder is not None:
                self._recorder.write(topic, self._sim_now_ns, data)
        return cb

    # ------------------------------------------------------------ clock
    def _publish_clock(self, t_ns: int, force: bool = False):
        if t_ns <= self._sim_now_ns and self._sim_now_ns and not force:
            return
        self._sim_now_ns = t_ns
        msg = self._Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(t_ns), 1_000_000_000)
        self.clock_pub.publish(msg)

    # ------------------------------------------------------------ waiting
    def _wait_for_subscribers(self, first_ns: int):
        t0 = time.monotonic()
        required = [w for w in self.opt.wait_for if w in self.pubs]
        # explicitly named output topics (no wildcard) must be recorded from the start
        outputs = [t for t in (self.opt.record_topics or ())
                   if self._recorder is not None and not any(c in t for c in "*?[")]
        last_matched, last_state, last_change = None, None, t0
        me = self.node.get_name()
        self._links = data_links(self.opt.graph, self.pubs)
        self.stats.links = [str(link) for link in self._links]
        settle = max(self.opt.settle, LINK_SETTLE_S) if self._links else self.opt.settle
        timeout = self.opt.link_timeout if self._links else self.opt.wait_timeout
        deadline = t0 + timeout
        self._publish_clock(first_ns)
        while not self._stop.is_set():
            now = time.monotonic()
            self._discover_outputs()
            counts = {t: p.get_subscription_count() for t, p in self.pubs.items()}
            matched = {t for t, n in counts.items() if n > 0}
            # subscriptions the graph reports (discovery) that are not matched yet
            pending = [t for t in self.pubs if counts[t] < len(
                [i for i in self.node.get_subscriptions_info_by_topic(t) if i.node_name != me])]
            missing = self._missing_links()
            state = (frozenset(counts.items()), tuple(pending), tuple(sorted(missing)))
            if state != last_state:
                last_state, last_change = state, now
            last_matched = matched
            outs_ready = all(t in self._rec_subs and self._rec_subs[t].get_publisher_count() > 0
                             for t in outputs + self._graph_outputs())
            # every node on sim time must get /clock before the first message: a node whose
            # /clock subscription matches late stays at time 0 and its timers never fire
            clock_subs = [i for i in self.node.get_subscriptions_info_by_topic("/clock")
                          if i.node_name != me]
            clock_ready = self.clock_pub.get_subscription_count() >= len(clock_subs)
            ready = (all(r in matched for r in required) and (required or matched)
                     and outs_ready and clock_ready and not pending and not missing)
            # repeat the start time: late /clock subscribers (best effort, depth 1) get it
            self._publish_clock(first_ns, force=True)
            if ready and now - last_change >= settle:
                break
            if now >= deadline and missing:
                self.stats.missing_links = missing
                self.log(f"replay: ERROR: graph links not matched after "
                         f"{timeout:.1f} s (nothing played): " + "; ".join(
                             f"{k}: {v}" for k, v in missing.items()))
                break
            if now >= deadline:
                self.stats.not_ready = [r for r in required if r not in matched] + [
                    t for t in outputs + self._graph_outputs() if t not in self._rec_subs
                    or self._rec_subs[t].get_publisher_count() == 0]
                if self.stats.not_ready:
                    self.log(f"replay: WARNING: not matched (no subscriber / no publisher): "
                             f"{self.stats.not_ready} after "
                             f"{timeout:.1f} s; starting anyway")
                elif not matched and self.pubs:
                    self.log(f"replay: WARNING: no subscriber on any bag topic after "
                             f"{timeout:.1f} s (is the graph running?); "
                             "starting anyway")
                break
            time.sleep(0.05)
        self.stats.wait_s = time.monotonic() - t0
        self.stats.had_subscribers = sorted(last_matched or ())
        self._find_unfed_topics()

    def _graph_outputs(self) -> List[str]:
        """Topics the graph description's nodes publish that are recorded (not bag topics):
        the recorder must be subscribed to each before playing, else the first outputs of a
        short replay are lost while discovery catches up on a loaded machine."""
        if self._recorder is None or not self.opt.graph:
            return []
        out = set()
        for spec in self.opt.graph:
            for t in spec.publishes:
                if (t not in self.bag.topics and t not in IGNORED_OUTPUTS
                        and t not in self.stats.record_skipped
                        and _match(t, self.opt.record_topics)
                        and not (self.opt.record_exclude and _match(t, self.opt.record_exclude))):
                    out.add(t)
        return sorted(out)

    def _missing_links(self) -> Dict[str, str]:
        """{link: why} for the graph links that are not matched yet (see links.py)."""
        if not self._links:
            return {}
        # lazy: rclpy only on this path: the module imports without ROS
        from rclpy.qos import QoSCompatibility, qos_check_compatible

        def compatible(pub_qos, sub_qos) -> bool:
            return qos_check_compatible(pub_qos, sub_qos)[0] != QoSCompatibility.ERROR
        infos, out = {}, {}
        for link in self._links:
            if link.topic not in infos:
                infos[link.topic] = (self.node.get_publishers_info_by_topic(link.topic),
                                     self.node.get_subscriptions_info_by_topic(link.topic))
            why = link_problem(link, *infos[link.topic], compatible)
            if why:
                out[str(link)] = why
        return out

    def _find_unfed_topics(self):
        """Topics the running graph subscribes to that neither the bag nor any node
        provides (a warning: e.g. closed-loop inputs during an open-loop replay)."""
        me = self.node.get_name()
        try:
            names = self.node.get_topic_names_and_types()
        except Exception:
            return
        for topic, _types in names:
            if topic in self.bag.topics or topic in IGNORED_OUTPUTS:
                continue
            subs = [i for i in self.node.get_subscriptions_info_by_topic(topic)
                    if i.node_name != me]
            pubs = [i for i in self.node.get_publishers_info_by_topic(topic)
                    if i.node_name != me]
            if subs and not pubs and topic not in self._unfed_seen:
                self._unfed_seen.add(topic)
                who = sorted({i.node_name for i in subs})
                self.stats.problems.append(BagProblem(
                    "unfed_topic", f"subscribed by {', '.join(who)} but neither in the bag "
                    "nor published by a running node", topic))

    # ------------------------------------------------------------ play
    def run(self) -> ReplayStats:
        bag, opt = self.bag, self.opt
        if bag.start_ns is None:
            raise RuntimeError("bag holds no readable message")
        start_ns = bag.start_ns + int(round(opt.start * 1e9))
        stop_ns = None if opt.duration is None else start_ns + int(round(opt.duration * 1e9))
        had_subs = set()
        tracker = None
        try:
            self._setup()
            tracker = StampOrderTracker({n: t.msgtype for n, t in bag.topics.items()},
                                        self._recorder.typestore if self._recorder else
                                        bag.typestore())
            self._wait_for_subscribers(start_ns)
            had_subs.update(self.stats.had_subscribers)
            self.stats.matched_at_start = sorted(had_subs)
            if not self.stats.missing_links:
                self.log(f"replay: playback started after {self.stats.wait_s:.2f} s waiting "
                         f"for subscribers ({len(had_subs)} bag topics matched, "
                         f"{len(self._links)} graph links)")
                self._play_messages(start_ns, stop_ns, had_subs, tracker)
                self._play_tail()
                self._drain()
                self.stats.sim_end_ns = self._sim_now_ns
                self._find_unfed_topics()      # subscriptions discovered during playback
        except KeyboardInterrupt:
            self.stats.interrupted = True
            self.log("replay: interrupted; closing the output bag")
        finally:
            self.stats.wall_s = time.monotonic() - self._wall0 if self._wall0 else 0.0
            self._shutdown()
        self.stats.had_subscribers = sorted(had_subs)
        self.stats.unused_topics = sorted(t for t in self.pubs if t not in had_subs)
        start = set(self.stats.matched_at_start)
        self.stats.late_subscribers = {t: n for t, n in self.stats.undelivered.items()
                                       if t in had_subs and t not in start}
        if tracker is not None:
            self.stats.problems.extend(tracker.problems())
        if not self.stats.interrupted and not self.stats.missing_links:
            self.stats.expected = self._expected()
            self.stats.lost = losses(self.stats.expected, self.stats.recorded)
        return self.stats

    def _play_messages(self, start_ns: int, stop_ns: Optional[int], had_subs: set, tracker):
        """Publish the bag's messages from start_ns to stop_ns at the playback rate, with
        /clock following the log times."""
        opt, bag = self.opt, self.bag
        # latched topics recorded before --start are delivered at the start
        if opt.start > 0:
            latched = [t for t in self.pubs if t in LATCHED_TOPICS]
            for topic, _t, data in bag.messages(latched, None, start_ns):
                self._publish(topic, data, had_subs)
        wall0 = self._wall0 = time.monotonic()
        period = 1.0 / max(opt.clock_hz, 1.0)
        last_disc = wall0
        for topic, t, data in bag.messages(list(self.pubs), start_ns, stop_ns):
            if self._stop.is_set():
                break
            tracker.check(topic, t, data)
            if opt.rate > 0 and t > self._sim_now_ns:
                target = wall0 + (t - start_ns) * 1e-9 / opt.rate
                while True:
                    now = time.monotonic()
                    if now >= target:
                        break
                    time.sleep(min(target - now, period))
                    sim = start_ns + int((time.monotonic() - wall0) * opt.rate * 1e9)
                    self._publish_clock(min(sim, t))
            self._publish_clock(t)
            if self.stats.sim_start_ns is None:
                self.stats.sim_start_ns = t
            self._publish(topic, data, had_subs)
            now = time.monotonic()
            if now - last_disc > 0.5:
                self._discover_outputs()
                last_disc = now

    def _play_tail(self):
        """Let the graph finish the last inputs while sim time keeps going (`tail` s)."""
        opt = self.opt
        period = 1.0 / max(opt.clock_hz, 1.0)
        end_ns = self._sim_now_ns
        t_tail = time.monotonic()
        tail_wall = opt.tail / opt.rate if opt.rate > 0 else opt.tail
        while not self._stop.is_set() and time.monotonic() - t_tail < tail_wall:
            time.sleep(period)
            frac = min(1.0, (time.monotonic() - t_tail) / max(tail_wall, 1e-9))
            self._publish_clock(end_ns + int(frac * opt.tail * 1e9))
            self._discover_outputs()

    def _expected(self) -> Dict[str, int]:
        """Expected counts of the recorded outputs: `expect`, else from the description's
        `one_per_input` and the played counts (outputs that are not recorded are left out)."""
        if self._recorder is None:
            return {}
        out = {t: n for t, n in expected_counts(self.opt.graph, self.stats.played).items()
               if t not in self.bag.topics and _match(t, self.opt.record_topics)
               and not (self.opt.record_exclude and _match(t, self.opt.record_exclude))}
        out.update(self.opt.expect or {})
        return out

    def _drain(self):
        """Up to `drain` s of wall time (clock held at the end) until every recorded output
        has its expected count: a slow graph on a loaded machine finishes its last inputs."""
        deadline = time.monotonic() + self.opt.drain
        expected = self._expected()
        while (not self._stop.is_set() and time.monotonic() < deadline
               and losses(expected, dict(self._recorder.counts) if self._recorder else {})):
            time.sleep(0.02)
            self._discover_outputs()

    def _publish(self, topic, data, had_subs):
        pub = self.pubs[topic]
        if pub.get_subscription_count() > 0:
            had_subs.add(topic)
        else:
            self.stats.undelivered[topic] = self.stats.undelivered.get(topic, 0) + 1
        try:
            pub.publish(data)
        except Exception as exc:
            self.stats.publish_error_counts[topic] = self.stats.publish_error_counts.get(topic, 0) + 1
            self.stats.publish_errors[topic] = (
                f"{self.stats.publish_error_counts[topic]} failed, last: "
                f"{type(exc).__name__}: {exc}")
            return
        self.stats.played[topic] = self.stats.played.get(topic, 0) + 1
        self.stats.played_bytes += len(data)

    def stop(self):
        self._stop.set()

    def _shutdown(self):
        self._stop.set()
        thread = getattr(self, "_spin_thread", None)
        if thread is not None:
            thread.join(timeout=2.0)
        if self._recorder is not None:
            self._recorder.close()
            self.stats.recorded = dict(self._recorder.counts)
            self.stats.record_skipped.update(self._recorder.skipped)
        try:
            if hasattr(self, "executor"):
                self.executor.shutdown(timeout_sec=1.0)
            if hasattr(self, "node"):
                self.node.destroy_node()
        except Exception:
            pass
        if hasattr(self, "ctx"):
            # lazy: rclpy only on this path: the module imports without ROS
            import rclpy
            rclpy.try_shutdown(context=self.ctx)

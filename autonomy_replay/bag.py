"""Tolerant rosbag2 reading (MCAP and SQLite3) for replay, reports and regression.

Pure: no rclpy. Intact bags are read with `rosbags` (sorted by log time). A bag that
`rosbags` refuses (truncated MCAP without footer/summary, a damaged SQLite3 file) is read
by a sequential fallback that keeps every message before the damage and records a
`BagProblem` saying where it stopped. Problems found while reading (out-of-order stamps,
...) are appended to `BagReader.problems` as they occur. MCAP chunks are checked against
their CRCs when the bag is opened (`damaged_chunks`, one `corrupt_chunk` problem naming
each chunk's byte and time range); reading then skips the damaged chunks and returns
every intact one, in log-time order.

Messages stay raw CDR bytes; decoding (reports, regression) goes through `make_typestore`.
The sequential fallback scanners (and `BagTopic`) live in `bag_scan.py`.
"""
from __future__ import annotations

import glob
import os
import struct
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from autonomy_replay.bag_scan import (BagTopic, DamagedChunk, McapScan, SqliteScan,
                                      read_intact_chunks, verify_mcap_chunks)

HEADER_TYPE = "std_msgs/msg/Header"


class BagError(RuntimeError):
    """The bag cannot be opened at all (missing, not a rosbag2, no readable message)."""


@dataclass
class BagProblem:
    kind: str            # truncated | corrupt | corrupt_chunk | unknown_type | missing_topic | out_of_order | metadata
    message: str
    topic: Optional[str] = None
    count: int = 1

    def __str__(self) -> str:
        where = f" [{self.topic}]" if self.topic else ""
        more = f" (x{self.count})" if self.count > 1 else ""
        return f"{self.kind}{where}: {self.message}{more}"


# ---------------------------------------------------------------- typestore
_TYPESTORE_CACHE = {}


def _msg_search_dirs() -> List[Path]:
    dirs = []
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            dirs.append(Path(prefix) / "share")
    root = Path(__file__).resolve().parents[1]
    dirs.append(root / "interfaces")
    return dirs


def make_typestore(extra: Optional[Dict[str, Tuple[str, str]]] = None):
    """A rosbags typestore with the ROS 2 Kilted messages plus every custom package's .msg
    files found on AMENT_PREFIX_PATH (autonomy_interfaces ...) and the source tree.

    `extra`: {msgtype: (msgdef text, format)} from a bag's connections, registered when the
    type is not known otherwise (so bags with foreign types still decode)."""
    # lazy: rosbags only when reading/writing bags (start-up time)
    from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

    key = "base"
    if key not in _TYPESTORE_CACHE:
        ts = get_typestore(Stores.ROS2_KILTED)
        add = {}
        for base in _msg_search_dirs():
            for path in sorted(glob.glob(str(base / "*" / "msg" / "*.msg"))):
                pkg = Path(path).parent.parent.name
                name = f"{pkg}/msg/{Path(path).stem}"
                if name in ts.fielddefs or name in add:
                    continue
                try:
                    add.update(get_types_from_msg(Path(path).read_text(), name))
                except Exception:  # a broken .msg of some other package: skip it
                    continue
        if add:
            try:
                ts.register(add)
            except Exception:
                for name, val in add.items():
                    try:
                        ts.register({name: val})
                    except Exception:
                        pass
        _TYPESTORE_CACHE[key] = ts
    ts = _TYPESTORE_CACHE[key]
    if extra:
        missing = {k: v for k, v in extra.items() if k not in ts.fielddefs and v[0]}
        if missing:
            ts = deepcopy(ts)
            for name, (text, fmt) in missing.items():
                try:
                    types = (get_types_from_idl(text) if fmt == "ros2idl"
                             else get_types_from_msg(text, name))
                    ts.register({k: v for k, v in types.items() if k not in ts.fielddefs})
                except Exception:
                    pass
    return ts


def header_stamp_offset(msgtype: str, typestore) -> bool:
    """True when the message's first field is a std_msgs/Header (stamp readable from CDR)."""
    fd = typestore.fielddefs.get(msgtype)
    if not fd or not fd[1]:
        return False
    _name, (_node, sub) = fd[1][0]
    return sub == HEADER_TYPE


def cdr_header_stamp_ns(data) -> Optional[int]:
    """header.stamp (ns) of a CDR message whose first field is std_msgs/Header."""
    if len(data) < 12:
        return None
    little = data[1] == 1
    sec, nsec = struct.unpack_from("<iI" if little else ">iI", data, 4)
    return sec * 1_000_000_000 + nsec


# ---------------------------------------------------------------- reader
class BagReader:
    """Open a rosbag2 directory (metadata.yaml + storage files) or a single .mcap/.db3."""

    def __init__(self, path):
        self.path = Path(path)
        self.problems: List[BagProblem] = []
        self.topics: Dict[str, BagTopic] = {}
        self.storage = ""
        self.start_ns: Optional[int] = None
        self.end_ns: Optional[int] = None
        self.message_count = 0
        self.tolerant = False          # True when the fallback reader is in use
        self._reader = None
        self._files: List[Path] = []
        self._fallback_conns: Dict[int, BagTopic] = {}
        self.damaged_chunks: List[DamagedChunk] = []
        self.chunks_checked = 0        # MCAP chunks verified against a CRC at opening
        self._open()

    # -- opening
    def _storage_files(self) -> List[Path]:
        if self.path.is_dir():
            files = sorted(self.path.glob("*.mcap")) + sorted(self.path.glob("*.db3"))
            if not files:
                raise BagError(f"{self.path}: no .mcap or .db3 storage file in the directory")
            return files
        if self.path.suffix in (".mcap", ".db3"):
            return [self.path]
        raise BagError(f"{self.path}: not a rosbag2 (expected a bag directory, .mcap or .db3)")

    def _open(self) -> None:
        if (not self.path.exists() and self.path.suffix == ".mcap"
                and self.path.with_suffix("").is_dir()):
            self.path = self.path.with_suffix("")      # `record --out X.mcap` wrote X/
        if not self.path.exists():
            raise BagError(f"{self.path}: no such bag")
        self._files = self._storage_files()
        self.storage = "mcap" if self._files[0].suffix == ".mcap" else "sqlite3"
        # lazy: rosbags only when reading/writing bags (start-up time)
        from rosbags.rosbag2 import Reader
        target = self.path
        if self.path.is_dir() and not (self.path / "metadata.yaml").exists():
            self.problems.append(BagProblem(
                "metadata", f"metadata.yaml missing; reading {self._files[0].name} directly"))
            target = self._files[0]
        try:
            reader = Reader(target)
            reader.open()
        except Exception as exc:  # rosbags refuses it: fall back to the sequential reader
            reason = f"{type(exc).__name__}: {exc}"
            if self.path.is_dir() and target == self.path:
                # metadata.yaml may be the broken part; try the storage file itself
                try:
                    reader = Reader(self._files[0])
                    reader.open()
                    self.problems.append(BagProblem(
                        "metadata", f"metadata.yaml unreadable ({reason}); read "
                        f"{self._files[0].name} directly"))
                    self._use_rosbags(reader)
                    return
                except Exception as exc2:
                    reason = f"{type(exc2).__name__}: {exc2}"
            self._open_fallback(reason)
            return
        self._use_rosbags(reader)

    def _use_rosbags(self, reader) -> None:
        self._reader = reader
        if self.storage == "mcap" and len(self._files) == 1:
            self._check_chunks(self._files[0])
        for c in reader.connections:
            t = self.topics.get(c.topic)
            if t is None:
                self.topics[c.topic] = BagTopic(
                    c.topic, c.msgtype, c.msgdef.data if c.msgdef else "",
                    "ros2idl" if c.msgdef and c.msgdef.format.name == "IDL" else "ros2msg",
                    c.msgcount, list(getattr(c.ext, "offered_qos_profiles", []) or []),
                    getattr(c.ext, "serialization_format", "cdr"))
            else:
                t.count += c.msgcount
        self.message_count = reader.message_count
        if self.message_count:
            self.start_ns, self.end_ns = reader.start_time, reader.end_time - 1

    def _check_chunks(self, path: Path) -> None:
        check = verify_mcap_chunks(path)
        if check is None:
            return
        self.chunks_checked = check.with_crc
        self.damaged_chunks = check.damaged
        if check.damaged:
            lost = sum(d.messages for d in check.damaged)
            self.problems.append(BagProblem(
                "corrupt_chunk", f"{path.name}: {len(check.damaged)} of {check.chunks} "
                f"chunks damaged ({lost} messages): " + "; ".join(str(d) for d in check.damaged),
                count=1))

    def _open_fallback(self, reason: str) -> None:
        self.tolerant = True
        f = self._files[0]
        if self.storage == "mcap":
            scan = McapScan(f)
        else:
            scan = SqliteScan(f)
        scan.scan_meta()
        if scan.error:
            kind = "truncated" if scan.truncated else "corrupt"
            self.problems.append(BagProblem(
                kind, f"{f.name}: rosbags cannot open it ({reason}); {scan.error}; "
                f"replaying the {scan.count} readable messages"))
        else:
            self.problems.append(BagProblem(
                "metadata", f"{f.name}: rosbags cannot open it ({reason}); read sequentially"))
        self._scan = scan
        self.topics = {}
        for cid, t in scan.topics.items():
            if t.name in self.topics:
                self.topics[t.name].count += t.count
            else:
                self.topics[t.name] = BagTopic(t.name, t.msgtype, t.msgdef, t.msgdef_format,
                                               t.count, t.qos, t.serialization_format)
        self.message_count = scan.count
        if scan.count:
            self.start_ns, self.end_ns = scan.start_ns, scan.end_ns
        if not scan.count and not scan.topics:
            raise BagError(f"{f}: no readable message ({reason}; {scan.error or 'empty'})")

    # -- reading
    def messages(self, topics: Optional[Iterable[str]] = None, start_ns: Optional[int] = None,
                 stop_ns: Optional[int] = None) -> Iterator[Tuple[str, int, bytes]]:
        """Yield (topic, log_time_ns, raw CDR) in bag order; damage ends the stream with a
        problem recorded (what came before is yielded)."""
        want = set(topics) if topics is not None else None
        if self._reader is not None and self.damaged_chunks:
            yield from read_intact_chunks(self._files[0], [d.index for d in self.damaged_chunks],
                                          want, start_ns, stop_ns)
            return
        if self._reader is not None:
            conns = [c for c in self._reader.connections if want is None or c.topic in want]
            if not conns:
                return
            last_t, seen_at_last = None, 0
            try:
                for conn, t, data in self._reader.messages(conns, start=start_ns, stop=stop_ns):
                    if t == last_t:
                        seen_at_last += 1
                    else:
                        last_t, seen_at_last = t, 1
                    yield conn.topic, t, data
                return
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
            # damaged in the middle: continue with the sequential reader after the last
            # message delivered, up to the damage
            scan = McapScan(self._files[0]) if self.storage == "mcap" else SqliteScan(self._files[0])
            scan.scan_meta()
            n_resumed, skip_same = 0, seen_at_last
            for topic, t, data in scan.messages():
                if (want is not None and topic not in want) or (start_ns is not None and t < start_ns) \
                        or (stop_ns is not None and t >= stop_ns) or (last_t is not None and t < last_t):
                    continue
                if last_t is not None and t == last_t and skip_same > 0:
                    skip_same -= 1
                    continue
                n_resumed += 1
                yield topic, t, data
            self.problems.append(BagProblem(
                "corrupt", f"the indexed reader failed ({reason}); the sequential reader "
                f"recovered {n_resumed} more message(s)" +
                (f" and stopped: {scan.error}" if scan.error else "")))
            return
        for topic, t, data in self._scan.messages():
            if want is not None and topic not in want:
                continue
            if start_ns is not None and t < start_ns:
                continue
            if stop_ns is not None and t >= stop_ns:
                continue
            yield topic, t, data
        if self._scan.error and not any(p.kind in ("truncated", "corrupt")
                                        for p in self.problems):
            self.problems.append(BagProblem("corrupt", self._scan.error))

    def typestore(self):
        return make_typestore({t.msgtype: (t.msgdef, t.msgdef_format)
                               for t in self.topics.values()})

    def close(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            except Exception:
                pass
            self._reader = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------- helpers
def decode_topic(reader: BagReader, topic: str, typestore=None,
                 start_ns: Optional[int] = None, stop_ns: Optional[int] = None):
    """[(log_time_ns, decoded message)] of one topic (undecodable messages are skipped)."""
    ts = typestore or reader.typestore()
    t = reader.topics.get(topic)
    if t is None or t.msgtype not in ts.fielddefs:
        return []
    out = []
    for _topic, tn, data in reader.messages([topic], start_ns, stop_ns):
        try:
            out.append((tn, ts.deserialize_cdr(data, t.msgtype)))
        except Exception:
            continue
    return out


def stamp_ns(msg) -> int:
    return int(msg.sec) * 1_000_000_000 + int(msg.nanosec)


def check_order(reader: BagReader, typestore=None) -> List[BagProblem]:
    """Scan the bag for header stamps that go backwards per topic (pure pass, no publish)."""
    ts = typestore or reader.typestore()
    tracker = StampOrderTracker({n: t.msgtype for n, t in reader.topics.items()}, ts)
    for topic, tn, data in reader.messages():
        tracker.check(topic, tn, data)
    return tracker.problems()


class StampOrderTracker:
    """Counts per topic: header stamps that decrease, and log times that decrease."""

    def __init__(self, msgtypes: Dict[str, str], typestore):
        self._has_header = {n: header_stamp_offset(mt, typestore) for n, mt in msgtypes.items()}
        self._last_stamp: Dict[str, int] = {}
        self._last_log: Optional[int] = None
        self.stamp_backwards: Dict[str, int] = {}
        self.log_backwards: Dict[str, int] = {}
        self.first_example: Dict[str, str] = {}

    def check(self, topic: str, log_ns: int, data) -> bool:
        """Returns True when the message is out of order (by log time or header stamp)."""
        bad = False
        if self._last_log is not None and log_ns < self._last_log:
            self.log_backwards[topic] = self.log_backwards.get(topic, 0) + 1
            self.first_example.setdefault(topic, f"log time {log_ns * 1e-9:.6f} s after "
                                                 f"{self._last_log * 1e-9:.6f} s")
            bad = True
        else:
            self._last_log = log_ns
        if self._has_header.get(topic):
            s = cdr_header_stamp_ns(data)
            last = self._last_stamp.get(topic)
            if s is not None:
                if last is not None and s < last:
                    self.stamp_backwards[topic] = self.stamp_backwards.get(topic, 0) + 1
                    self.first_example.setdefault(
                        topic, f"header.stamp {s * 1e-9:.6f} s after {last * 1e-9:.6f} s")
                    bad = True
                else:
                    self._last_stamp[topic] = s
        return bad

    def problems(self) -> List[BagProblem]:
        out = []
        for topic in sorted(set(self.stamp_backwards) | set(self.log_backwards)):
            n = self.stamp_backwards.get(topic, 0) + self.log_backwards.get(topic, 0)
            out.append(BagProblem(
                "out_of_order", f"{n} message(s) with stamps going backwards (first: "
                f"{self.first_example.get(topic, '?')}); played in bag order", topic, 1))
        return out

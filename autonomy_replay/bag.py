"""Tolerant rosbag2 reading (MCAP and SQLite3) for replay, reports and regression.

Pure: no rclpy. Intact bags are read with `rosbags` (sorted by log time). A bag that
`rosbags` refuses (truncated MCAP without footer/summary, a damaged SQLite3 file) is read
by a sequential fallback that keeps every message before the damage and records a
`BagProblem` saying where it stopped. Problems found while reading (out-of-order stamps,
a chunk that fails its checksum, ...) are appended to `BagReader.problems` as they occur.

Messages stay raw CDR bytes; decoding (reports, regression) goes through `make_typestore`.
"""
from __future__ import annotations

import glob
import os
import sqlite3
import struct
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple
import tempfile
from copy import deepcopy

MCAP_MAGIC = b"\x89MCAP0\r\n"
HEADER_TYPE = "std_msgs/msg/Header"


class BagError(RuntimeError):
    """The bag cannot be opened at all (missing, not a rosbag2, no readable message)."""


@dataclass
class BagProblem:
    kind: str            # truncated | corrupt | unknown_type | missing_topic | out_of_order | metadata
    message: str
    topic: Optional[str] = None
    count: int = 1

    def __str__(self) -> str:
        where = f" [{self.topic}]" if self.topic else ""
        more = f" (x{self.count})" if self.count > 1 else ""
        return f"{self.kind}{where}: {self.message}{more}"


@dataclass
class BagTopic:
    name: str
    msgtype: str
    msgdef: str = ""                  # message definition text as stored in the bag
    msgdef_format: str = "ros2msg"
    count: int = 0                    # messages in the bag (as far as readable)
    qos: list = field(default_factory=list)   # rosbags Qos profiles offered by the recorder
    serialization_format: str = "cdr"


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

    def _open_fallback(self, reason: str) -> None:
        self.tolerant = True
        f = self._files[0]
        if self.storage == "mcap":
            scan = _McapScan(f)
        else:
            scan = _SqliteScan(f)
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
            scan = _McapScan(self._files[0]) if self.storage == "mcap" else _SqliteScan(self._files[0])
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


# ---------------------------------------------------------------- fallback scanners
class _Truncated(Exception):
    pass


def _read_exact(bio, n: int) -> bytes:
    b = bio.read(n)
    if len(b) != n:
        raise _Truncated(f"record needs {n} bytes, {len(b)} left")
    return b


class _McapScan:
    """Sequential MCAP record scanner that survives a missing footer/summary and stops
    cleanly at the first incomplete or invalid record."""

    def __init__(self, path: Path):
        self.path = path
        self.topics: Dict[int, BagTopic] = {}
        self.count = 0
        self.start_ns: Optional[int] = None
        self.end_ns: Optional[int] = None
        self.error: Optional[str] = None
        self.truncated = False
        self._schemas: Dict[int, Tuple[str, str, str]] = {}

    def _records(self, with_data: bool):
        # lazy: rosbags only when reading/writing bags (start-up time)
        from rosbags.rosbag2.storage_mcap import decompress
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if f.read(8) != MCAP_MAGIC:
                self.error = "file magic is not MCAP"
                return
            try:
                while True:
                    pos = f.tell()
                    op = f.read(1)
                    if not op:
                        self.truncated = True
                        raise _Truncated("file ends without the MCAP footer")
                    (length,) = struct.unpack("<Q", _read_exact(f, 8))
                    if pos + 9 + length > size:
                        raise _Truncated(
                            f"record at byte {pos} needs {length} bytes, file has "
                            f"{size - pos - 9}")
                    op = op[0]
                    if op == 0x02:        # footer: end of file
                        return
                    if op == 0x06:        # chunk
                        rec = _read_exact(f, length)
                        _s, _e, usize, crc = struct.unpack_from("<QQQI", rec, 0)
                        (clen,) = struct.unpack_from("<I", rec, 28)
                        comp = rec[32:32 + clen].decode()
                        (csize,) = struct.unpack_from("<Q", rec, 32 + clen)
                        body = rec[40 + clen:40 + clen + csize]
                        try:
                            raw = decompress(body, comp, usize, crc)
                        except Exception as exc:
                            raise ValueError(f"chunk at byte {pos}: {exc}") from None
                        bio = BytesIO(raw)
                        while bio.tell() < usize:
                            cop = _read_exact(bio, 1)[0]
                            (clen2,) = struct.unpack("<Q", _read_exact(bio, 8))
                            yield from self._record(cop, _read_exact(bio, clen2), with_data)
                    elif op in (0x03, 0x04, 0x05):
                        yield from self._record(op, _read_exact(f, length), with_data)
                    else:
                        f.seek(length, 1)
            except _Truncated as exc:
                self.truncated = True
                self.error = f"truncated: {exc}"
            except (ValueError, struct.error, UnicodeDecodeError) as exc:
                self.error = f"corrupt: {exc}"

    def _record(self, op: int, rec: bytes, with_data: bool):
        if op == 0x03:
            (sid,) = struct.unpack_from("<H", rec, 0)
            bio = BytesIO(rec[2:])
            name = _mcap_string(bio)
            enc = _mcap_string(bio)
            (n,) = struct.unpack("<I", _read_exact(bio, 4))
            data = _read_exact(bio, n).decode(errors="replace")
            self._schemas[sid] = (name, enc, data)
        elif op == 0x04:
            cid, sid = struct.unpack_from("<HH", rec, 0)
            bio = BytesIO(rec[4:])
            topic = _mcap_string(bio)
            enc = _mcap_string(bio)
            qos = []
            try:
                (n,) = struct.unpack("<I", _read_exact(bio, 4))
                meta = {}
                end = bio.tell() + n
                while bio.tell() < end:
                    k = _mcap_string(bio)
                    meta[k] = _mcap_string(bio)
                if "offered_qos_profiles" in meta:
                    # lazy: rosbags only when reading/writing bags (start-up time)
                    from rosbags.rosbag2.metadata import parse_qos
                    qos = parse_qos(meta["offered_qos_profiles"])
            except Exception:
                qos = []
            name, fmt, text = self._schemas.get(sid, ("", "", ""))
            if cid not in self.topics:
                self.topics[cid] = BagTopic(topic, name, text,
                                            "ros2idl" if fmt == "ros2idl" else "ros2msg",
                                            0, qos, enc or "cdr")
        elif op == 0x05:
            cid, _seq, log_time, _pub = struct.unpack_from("<HIQQ", rec, 0)
            t = self.topics.get(cid)
            if t is None:
                return
            if with_data:
                yield t.name, log_time, rec[22:]
            else:
                t.count += 1
                self.count += 1
                self.start_ns = log_time if self.start_ns is None else min(self.start_ns, log_time)
                self.end_ns = log_time if self.end_ns is None else max(self.end_ns, log_time)
        return
        yield  # pragma: no cover  (makes this a generator)

    def scan_meta(self) -> None:
        for _ in self._records(with_data=False):
            pass

    def messages(self):
        self.error = None
        yield from self._records(with_data=True)


def _mcap_string(bio) -> str:
    (n,) = struct.unpack("<I", _read_exact(bio, 4))
    return _read_exact(bio, n).decode()


class _SqliteScan:
    """Row-block reader for a damaged .db3: reads what SQLite can still return. A truncated
    file is read through a temporary copy whose header page count is set to the pages that
    are really there (otherwise SQLite refuses the whole file)."""

    BLOCK = 256

    def __init__(self, path: Path):
        self.path = path
        self._db = path
        self.topics: Dict[int, BagTopic] = {}
        self.count = 0
        self.start_ns: Optional[int] = None
        self.end_ns: Optional[int] = None
        self.error: Optional[str] = None
        self.truncated = False
        self._tmp = None

    def _connect(self):
        return sqlite3.connect(f"file:{self._db}?mode=ro", uri=True)

    def _repaired_copy(self) -> Optional[Path]:
        raw = bytearray(self.path.read_bytes())
        if len(raw) < 100 or not raw.startswith(b"SQLite format 3\x00"):
            return None
        (ps,) = struct.unpack_from(">H", raw, 16)
        ps = 65536 if ps == 1 else ps
        pages = len(raw) // ps
        (hdr_pages,) = struct.unpack_from(">I", raw, 28)
        if pages < hdr_pages:
            self.truncated = True
        struct.pack_into(">I", raw, 28, pages)
        self._tmp = tempfile.TemporaryDirectory(prefix="bag_repair_")
        out = Path(self._tmp.name) / self.path.name
        out.write_bytes(bytes(raw[: pages * ps]))
        return out

    def scan_meta(self) -> None:
        rows = None
        for attempt in range(2):
            try:
                con = self._connect()
                rows = con.execute(
                    "SELECT id, name, type, serialization_format FROM topics").fetchall()
                break
            except sqlite3.DatabaseError as exc:
                self.error = f"SQLite: {exc}"
                fixed = self._repaired_copy() if attempt == 0 else None
                if fixed is None:
                    return
                self._db = fixed
        self.error = None
        for tid, name, typ, fmt in rows:
            self.topics[tid] = BagTopic(name, typ, "", "ros2msg", 0, [], fmt or "cdr")
        for tid, t, _data in self._rows(con, with_data=False):
            tp = self.topics.get(tid)
            if tp is None:
                continue
            tp.count += 1
            self.count += 1
            self.start_ns = t if self.start_ns is None else min(self.start_ns, t)
            self.end_ns = t if self.end_ns is None else max(self.end_ns, t)
        con.close()
        if self.truncated and not self.error:
            self.error = "SQLite file is shorter than its header says (truncated)"

    def _rows(self, con, with_data: bool):
        cols = "topic_id, timestamp, data" if with_data else "topic_id, timestamp, NULL"
        lo, empty_run, bad_run, lost, max_good, last_exc = 0, 0, 0, [], 0, None
        while empty_run < 4 and bad_run < 64:
            try:
                rows = con.execute(f"SELECT {cols} FROM messages WHERE id >= ? AND id < ? "
                                   "ORDER BY id", (lo, lo + self.BLOCK)).fetchall()
                bad_run = 0
                empty_run = 0 if rows else empty_run + 1
            except sqlite3.DatabaseError as exc:
                # row by row: keep every row whose pages are still there
                rows, n_bad = [], 0
                for i in range(lo, lo + self.BLOCK):
                    try:
                        rows += con.execute(f"SELECT {cols} FROM messages WHERE id = ?",
                                            (i,)).fetchall()
                    except sqlite3.DatabaseError:
                        n_bad += 1
                        lost.append(i)
                bad_run = bad_run + 1 if not rows else 0
                empty_run = 0
                self.truncated = True
                last_exc = exc
            if rows:
                max_good = lo + self.BLOCK
            yield from rows
            lo += self.BLOCK
        if lost:
            n_inside = sum(1 for i in lost if i < max_good)
            self.error = (f"SQLite: {last_exc}; {n_inside} row(s) unreadable among the first "
                          f"{max_good} ids, nothing readable after")

    def messages(self):
        try:
            con = self._connect()
        except sqlite3.DatabaseError as exc:
            self.error = f"SQLite: {exc}"
            return
        rows = []
        for tid, t, data in self._rows(con, with_data=True):
            tp = self.topics.get(tid)
            if tp is not None:
                rows.append((t, tp.name, data))
        con.close()
        rows.sort(key=lambda r: r[0])
        for t, name, data in rows:
            yield name, t, bytes(data)


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

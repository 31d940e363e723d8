"""Sequential scanners for damaged rosbag2 storage files: the fallback of
`autonomy_replay.bag.BagReader` when `rosbags` refuses a bag (truncated MCAP without
footer/summary, a damaged SQLite3 file). Each keeps every message before the damage and
says in `error` where and why it stopped (`truncated` when the file is cut short).

Pure: no rclpy; rosbags only for MCAP chunk decompression and QoS parsing.
"""
from __future__ import annotations

import os
import sqlite3
import struct
import tempfile
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Dict, Optional, Tuple

MCAP_MAGIC = b"\x89MCAP0\r\n"


@dataclass
class BagTopic:
    name: str
    msgtype: str
    msgdef: str = ""                  # message definition text as stored in the bag
    msgdef_format: str = "ros2msg"
    count: int = 0                    # messages in the bag (as far as readable)
    qos: list = field(default_factory=list)   # rosbags Qos profiles offered by the recorder
    serialization_format: str = "cdr"


class _Truncated(Exception):
    pass


def _read_exact(bio, n: int) -> bytes:
    b = bio.read(n)
    if len(b) != n:
        raise _Truncated(f"record needs {n} bytes, {len(b)} left")
    return b


class McapScan:
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


class SqliteScan:
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

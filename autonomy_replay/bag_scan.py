"""Sequential scanners for damaged rosbag2 storage files: the fallback of
`autonomy_replay.bag.BagReader` when `rosbags` refuses a bag (truncated MCAP without
footer/summary, a damaged SQLite3 file). Each keeps every message before the damage and
says in `error` where and why it stopped (`truncated` when the file is cut short).

`verify_mcap_chunks` checks every MCAP chunk against its CRC up front (the summary index
locates each chunk, so damage in one does not hide the others) and `read_intact_chunks`
reads all but the damaged chunks (replay --skip-corrupt).

Pure: no rclpy; rosbags only for MCAP chunk decompression, the summary index and QoS
parsing.
"""
from __future__ import annotations

import heapq
import os
import sqlite3
import struct
import tempfile
from binascii import crc32
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

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


# ---------------------------------------------------------------- chunk integrity (MCAP)
@dataclass
class DamagedChunk:
    index: int               # position in the bag's chunk index
    byte_start: int          # file offsets of the chunk record [start, end)
    byte_end: int
    start_ns: int            # log times of the messages it held (from the summary index)
    end_ns: int
    messages: int            # how many messages it held (summary counts)
    reason: str

    def __str__(self) -> str:
        return (f"chunk {self.index} at bytes [{self.byte_start}, {self.byte_end}) "
                f"holding {self.messages} messages of log time "
                f"{self.start_ns * 1e-9:.6f}..{self.end_ns * 1e-9:.6f} s: {self.reason}")


@dataclass
class ChunkCheck:
    chunks: int = 0
    with_crc: int = 0        # chunks whose CRC was verified (CRC 0 = written without one)
    damaged: List[DamagedChunk] = field(default_factory=list)


def _open_mcap_index(path: Path):
    """rosbags' MCAP reader with the summary (chunk index, channels) read; raises when the
    summary is unreadable (then the sequential scanner takes over)."""
    # lazy: rosbags only when reading/writing bags (start-up time)
    from rosbags.rosbag2.storage_mcap import McapReader
    reader = McapReader(path)
    reader.open()
    return reader


def _chunk_payload(f, info) -> Tuple[bytes, int]:
    """(uncompressed records, crc in the record) of the chunk `info` (a summary
    ChunkInfo); raises ValueError naming what does not add up."""
    # lazy: rosbags only when reading/writing bags (start-up time)
    from rosbags.rosbag2.storage_mcap import DECOMPRESSORS
    f.seek(info.chunk_start_offset)
    rec = f.read(info.chunk_length)
    if len(rec) != info.chunk_length:
        raise ValueError("chunk runs past the end of the file")
    if rec[0] != 0x06:
        raise ValueError(f"record at the chunk's offset has opcode 0x{rec[0]:02x}, not a chunk")
    start, end, usize, crc = struct.unpack_from("<QQQI", rec, 9)
    (clen,) = struct.unpack_from("<I", rec, 37)
    comp = rec[41:41 + clen].decode(errors="replace")
    (csize,) = struct.unpack_from("<Q", rec, 41 + clen)
    if (usize, comp, csize) != (info.uncompressed_size, info.compression, info.compressed_size):
        raise ValueError("chunk header disagrees with the summary index")
    body = rec[49 + clen:49 + clen + csize]
    if comp not in DECOMPRESSORS:
        raise ValueError(f"unsupported compression {comp!r}")
    try:
        raw = DECOMPRESSORS[comp](body, usize)
    except Exception as exc:  # noqa: BLE001  (lz4/zstd raise their own types)
        raise ValueError(f"cannot decompress ({type(exc).__name__}: {exc})") from None
    if len(raw) != usize:
        raise ValueError(f"decompressed to {len(raw)} bytes, header says {usize}")
    if crc and crc32(raw) != crc:
        raise ValueError(f"CRC mismatch (stored 0x{crc:08x}, computed 0x{crc32(raw):08x})")
    return raw, crc


def verify_mcap_chunks(path: Path) -> Optional[ChunkCheck]:
    """Check every chunk of an MCAP file against its CRC (and that it decompresses to its
    size); None when the summary index cannot be read (the sequential scanner reports
    that damage)."""
    try:
        reader = _open_mcap_index(path)
    except Exception:  # noqa: BLE001
        return None
    check = ChunkCheck(chunks=len(reader.chunks))
    try:
        with open(path, "rb") as f:
            for i, info in enumerate(reader.chunks):
                try:
                    _raw, crc = _chunk_payload(f, info)
                    check.with_crc += bool(crc)
                except (ValueError, struct.error) as exc:
                    check.damaged.append(DamagedChunk(
                        i, info.chunk_start_offset, info.chunk_start_offset + info.chunk_length,
                        info.message_start_time, info.message_end_time,
                        sum(info.channel_count.values()), str(exc)))
    finally:
        reader.close()
    return check


def _chunk_messages(raw: bytes, topics: Dict[int, str]) -> List[Tuple[int, str, bytes]]:
    """(log time, topic, data) of the message records in one chunk, sorted by log time."""
    out, pos = [], 0
    while pos + 9 <= len(raw):
        op = raw[pos]
        (n,) = struct.unpack_from("<Q", raw, pos + 1)
        if op == 0x05:
            cid, _seq, log_time, _pub = struct.unpack_from("<HIQQ", raw, pos + 9)
            if cid in topics:
                out.append((log_time, topics[cid], raw[pos + 9 + 22:pos + 9 + n]))
        pos += 9 + n
    out.sort(key=lambda m: m[0])
    return out


def read_intact_chunks(path: Path, skip: Sequence[int], topics=None, start_ns=None,
                       stop_ns=None) -> Iterator[Tuple[str, int, bytes]]:
    """(topic, log time, data) in log-time order from every chunk except those in `skip`
    (damaged ones): the `--skip-corrupt` replay. Chunks are decompressed only when the
    merge reaches their start time, so memory holds the overlapping chunks only."""
    reader = _open_mcap_index(path)
    try:
        channel_topic = {cid: ch.topic for cid, ch in reader.channels.items()}
        skip = set(skip)
        chunks = sorted((c for i, c in enumerate(reader.chunks) if i not in skip),
                        key=lambda c: c.message_start_time)
        want = set(topics) if topics is not None else None
        heap: list = []
        seq = 0
        with open(path, "rb") as f:
            i = 0
            while i < len(chunks) or heap:
                # open every chunk starting no later than the earliest pending message
                while i < len(chunks) and (not heap or chunks[i].message_start_time <= heap[0][0]):
                    raw, _crc = _chunk_payload(f, chunks[i])
                    it = iter(_chunk_messages(raw, channel_topic))
                    first = next(it, None)
                    if first is not None:
                        heapq.heappush(heap, (first[0], seq, first, it))
                        seq += 1
                    i += 1
                if not heap:
                    continue
                _t, _s, (t, topic, data), it = heapq.heappop(heap)
                nxt = next(it, None)
                if nxt is not None:
                    heapq.heappush(heap, (nxt[0], seq, nxt, it))
                    seq += 1
                if (want is None or topic in want) and (start_ns is None or t >= start_ns) \
                        and (stop_ns is None or t < stop_ns):
                    yield topic, t, data
    finally:
        reader.close()

"""Writing raw CDR messages into a new rosbag2 (MCAP storage) with `rosbags`. Pure: no rclpy.

`BagRecorder(path)` creates the rosbag2 directory `path` (metadata.yaml + one .mcap),
like `ros2 bag record -s mcap -o path`, with chunk CRCs and zstd chunks
(`autonomy_stack.bag_writer`). Topics are added lazily with their type name; the
message definition and type hash come from the typestore (Kilted + custom packages).
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Dict, Optional

from autonomy_replay.bag import make_typestore
from autonomy_stack.bag_writer import open_mcap_writer


class RecorderError(RuntimeError):
    pass


class BagRecorder:
    def __init__(self, path, typestore=None):
        self.path = Path(path)
        if self.path.exists():
            raise RecorderError(f"{self.path} exists already; choose a new output path")
        self.typestore = typestore or make_typestore()
        # chunk CRCs (a corrupted chunk is detected on reading) and zstd compression
        self._writer = open_mcap_writer(self.path)
        self._conns: Dict[str, object] = {}
        self.counts: Dict[str, int] = {}
        self.skipped: Dict[str, str] = {}
        self._lock = threading.Lock()
        self._closed = False

    def add_topic(self, topic: str, msgtype: str, qos: Optional[list] = None) -> bool:
        """Register a topic; False (and a reason in `skipped`) if its type is unknown."""
        with self._lock:
            if topic in self._conns:
                return True
            if msgtype not in self.typestore.fielddefs:
                self.skipped[topic] = f"type {msgtype} has no message definition here"
                return False
            self._conns[topic] = self._writer.add_connection(
                topic, msgtype, typestore=self.typestore, offered_qos_profiles=qos or [])
            self.counts[topic] = 0
            return True

    def write(self, topic: str, t_ns: int, data) -> None:
        with self._lock:
            if self._closed:
                return
            conn = self._conns.get(topic)
            if conn is None:
                raise RecorderError(f"topic {topic} was not added")
            self._writer.write(conn, int(t_ns), bytes(data))
            self.counts[topic] += 1

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._writer.close()

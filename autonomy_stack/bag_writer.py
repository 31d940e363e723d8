"""rosbag2 (MCAP storage) writer with integrity: every chunk carries the CRC-32 of its
uncompressed records (MCAP spec: `uncompressed_crc`, 0 = none) and is compressed with
zstd, which every MCAP reader (rosbags, mcap, ros2 bag) decompresses. `rosbags`' own MCAP
writer leaves the CRC at 0, so a corrupted chunk could not be told from a good one.

Shared by the simulator's recorder and the replay harness's recorder (both write with
`rosbags`); ROS-free. Readers verify the CRC (rosbags does on every read;
`autonomy_replay.bag_scan.verify_mcap_chunks` checks a whole bag up front).
"""
from __future__ import annotations

from binascii import crc32
from pathlib import Path

# byte offset of uncompressed_crc in a chunk record: opcode (1) + length (8) +
# message_start_time, message_end_time, uncompressed_size (3 x 8)
CHUNK_CRC_OFFSET = 9 + 24
COMPRESSIONS = ("zstd", "none")


def open_mcap_writer(path, compression: str = "zstd"):
    """An opened `rosbags.rosbag2.Writer` for the new rosbag2 directory `path` (like
    `ros2 bag record -s mcap`) whose chunks carry CRCs; `compression` "zstd" or "none".
    Use as rosbags' Writer (add_connection, write, close)."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}, not {compression!r}")
    writer = _writer_class()(Path(path), version=9, storage_plugin=_mcap_plugin())
    if compression == "zstd":
        # lazy: rosbags only when writing bags (start-up time)
        from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    writer.open()
    return writer


def _mcap_plugin():
    # lazy: rosbags only when writing bags (start-up time)
    from rosbags.rosbag2 import StoragePlugin
    return StoragePlugin.MCAP


_CLASSES: dict = {}


def _writer_class():
    """rosbags' Writer with its MCAP storage replaced by one that fills in chunk CRCs."""
    if "writer" not in _CLASSES:
        # lazy: rosbags only when writing bags (start-up time)
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.rosbag2.storage_mcap import McapWriter

        class CrcMcapWriter(McapWriter):
            def close_chunk(self) -> None:
                crc = crc32(self.chunk.bio.getbuffer())
                start = self.bio.tell()
                super().close_chunk()          # writes the chunk record first, at `start`
                end = self.bio.tell()
                self.bio.seek(start + CHUNK_CRC_OFFSET)
                self.bio.write(crc.to_bytes(4, "little"))
                self.bio.seek(end)

        class CrcWriter(Writer):
            STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: CrcMcapWriter}

        _CLASSES["writer"] = CrcWriter
    return _CLASSES["writer"]

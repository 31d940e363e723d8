"""Bag integrity (issue 18): the recorders write MCAP chunks with CRCs (zstd-compressed);
the reader checks every chunk when it opens a bag; a replay of a bag with random bytes
written into its middle names the corrupted chunks (byte and time ranges) and exits 9
without playing, or with --skip-corrupt plays every intact chunk and exits 3."""
import re

import numpy as np
import pytest

from autonomy_replay import command as C
from autonomy_replay.bag import BagReader
from autonomy_replay.bag_scan import verify_mcap_chunks


def _mcap(bag_dir):
    files = sorted(bag_dir.glob("*.mcap"))
    assert len(files) == 1, files
    return files[0]


@pytest.fixture(scope="module")
def recorded_bag(tmp_path_factory):
    """A synthetic drive (odometry, two cameras, ground truth) copied through the replay
    harness's BagRecorder: several chunks, each with a CRC."""
    from autonomy_replay.recorder import BagRecorder
    from autonomy_replay.synthetic import write_synthetic_bag
    tmp = tmp_path_factory.mktemp("integrity")
    src = write_synthetic_bag(tmp / "src", duration=4.0, odom_hz=50, camera_hz=10,
                              cameras=("main", "rear"), image_size=(320, 240), seed=3)
    out = tmp / "recorded"
    rec = BagRecorder(out)
    with BagReader(src) as bag:
        for name, t in bag.topics.items():
            assert rec.add_topic(name, t.msgtype, t.qos)
        n = 0
        for topic, t_ns, data in bag.messages():
            rec.write(topic, t_ns, data)
            n += 1
    rec.close()
    return out, n


def test_recorder_writes_chunk_crcs_and_zstd_that_other_readers_accept(recorded_bag):
    from mcap.stream_reader import StreamReader
    from rosbags.rosbag2.storage_mcap import McapReader
    bag, n = recorded_bag
    check = verify_mcap_chunks(_mcap(bag))
    assert check.chunks >= 3 and check.with_crc == check.chunks and not check.damaged
    idx = McapReader(_mcap(bag))
    idx.open()
    assert {c.compression for c in idx.chunks} == {"zstd"}
    idx.close()
    # the mcap package checks the same CRCs independently
    with open(_mcap(bag), "rb") as f:
        assert sum(1 for _ in StreamReader(f, validate_crcs=True).records) > n
    with BagReader(bag) as b:
        assert b.chunks_checked == check.chunks and not b.problems
        assert sum(1 for _ in b.messages()) == n


def test_simulator_recorder_writes_chunk_crcs(tmp_path):
    from autonomy_simulator.record import record
    bag = record("highway_cut_in", seed=0, duration=1.0, out=tmp_path / "sim", images=False)
    check = verify_mcap_chunks(_mcap(bag))
    assert check.chunks >= 1 and check.with_crc == check.chunks and not check.damaged


def _corrupt(src_dir, dst_dir, seed=18):
    """A copy of the bag with three 4 KB blocks of random bytes in the middle third of its
    .mcap (summary and footer intact, as when a disk or a copy goes bad mid-file)."""
    import shutil
    shutil.copytree(src_dir, dst_dir)
    f = _mcap(dst_dir)
    raw = bytearray(f.read_bytes())
    rng = np.random.default_rng(seed)
    third = len(raw) // 3
    for off in sorted(rng.integers(third, 2 * third - 4096, 3)):
        raw[off:off + 4096] = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    f.write_bytes(bytes(raw))
    return dst_dir


def test_corrupted_bag_is_detected_named_and_not_played(recorded_bag, tmp_path, capsys):
    bag, n = recorded_bag
    bad = _corrupt(bag, tmp_path / "bad")
    check = verify_mcap_chunks(_mcap(bad))
    assert check.damaged, "random bytes in the middle went unnoticed"
    lost = sum(d.messages for d in check.damaged)
    assert 0 < lost < n
    for d in check.damaged:
        assert "CRC mismatch" in d.reason or "decompress" in d.reason or "header" in d.reason
    with BagReader(bad) as b:
        assert [p.kind for p in b.problems] == ["corrupt_chunk"]
        # the intact chunks stay readable, in log-time order
        times = [t for _, t, _ in b.messages()]
        assert len(times) == n - lost and times == sorted(times)
    capsys.readouterr()
    fast = ["--rate", "0", "--wait", "0.5", "--settle", "0.1", "--tail", "0.1"]
    assert C.main([str(bag), *fast]) == 0
    played_intact = _played(capsys.readouterr().out)
    code = C.main([str(bad), *fast])
    io = capsys.readouterr()
    assert code == C.EXIT_CORRUPT_CHUNKS == 9, io.out + io.err
    d = check.damaged[0]
    assert f"chunk {d.index} at bytes [{d.byte_start}, {d.byte_end})" in io.err
    assert re.search(r"nothing played", io.err) and "replay: played" not in io.out
    # asked to: the intact rest is played (a damaged bag: exit 3)
    code = C.main([str(bad), "--skip-corrupt", *fast])
    io = capsys.readouterr()
    assert code == C.EXIT_DAMAGED == 3, io.out + io.err
    # the player plays the topics it has publishers for: all but what the lost chunks held
    assert played_intact - lost <= _played(io.out) < played_intact


def _played(out: str) -> int:
    return int(re.search(r"replay: played (\d+) messages", out).group(1))

"""Bad bags: truncated and corrupted files, unknown message types, missing topics,
out-of-order stamps -> the documented message and exit code; the readable part replays.
No graph runs here: the replay has no subscribers (short --wait)."""
import json
import struct

import numpy as np
import pytest

from autonomy_replay import command as C
from autonomy_replay.bag import BagError, BagReader

FAST = ["--rate", "0", "--wait", "0.2", "--settle", "0", "--tail", "0", "--quiet"]


def _bag(tmp_path, name="in", **kw):
    from autonomy_replay.synthetic import write_synthetic_bag
    args = dict(duration=1.0, odom_hz=50, camera_hz=10, cameras=("main", "rear", "narrow"),
                image_size=(256, 192), ground_truth=True)
    args.update(kw)
    return write_synthetic_bag(tmp_path / name, **args)


def _replay(bag, tmp_path, capsys, *extra):
    rep = tmp_path / "report"
    code = C.main([str(bag), "--report", str(rep), "--frames", "0", *FAST, *extra])
    err = capsys.readouterr().err
    data = json.loads((rep / "report.json").read_text()) if (rep / "report.json").exists() else None
    return code, err, data


def _chunks(path):
    """(offset, length) of the top-level MCAP chunk records."""
    raw = path.read_bytes()
    pos, out = 8, []
    while pos + 9 <= len(raw):
        op = raw[pos]
        (n,) = struct.unpack_from("<Q", raw, pos + 1)
        if op == 0x06:
            out.append((pos, n))
        if op == 0x02:
            break
        pos += 9 + n
    return out


def test_intact_bag_replays_all_with_exit_0(tmp_path, capsys):
    bag = _bag(tmp_path)
    code, err, rep = _replay(bag, tmp_path, capsys)
    assert code == 0, err
    total = BagReader(bag).message_count
    # everything but /clock (the player makes its own) was published
    assert rep["replay"]["messages_played"] == total - 50
    assert rep["problems"] == []


def test_truncated_mcap_replays_readable_part_exit_3(tmp_path, capsys):
    bag = _bag(tmp_path)
    f = next(bag.glob("*.mcap"))
    chunks = _chunks(f)
    assert len(chunks) >= 2
    # cut in the middle of the second chunk: the first chunk stays readable
    cut = chunks[1][0] + chunks[1][1] // 2
    f.write_bytes(f.read_bytes()[:cut])
    reader = BagReader(bag)
    assert reader.tolerant and 0 < reader.message_count < 600
    assert any(p.kind == "truncated" for p in reader.problems)
    code, err, rep = _replay(bag, tmp_path, capsys)
    assert code == C.EXIT_DAMAGED == 3
    assert "truncated" in err and "readable messages" in err
    assert rep["replay"]["messages_played"] > 0
    assert rep["replay"]["played"]["/odom"] == reader.topics["/odom"].count


def test_corrupted_chunk_is_named_exit_9_and_skipped_on_request_exit_3(tmp_path, capsys):
    bag = _bag(tmp_path)
    f = next(bag.glob("*.mcap"))
    chunks = _chunks(f)
    raw = bytearray(f.read_bytes())
    pos, _n = chunks[1]
    # a wrong CRC: the chunk fails its checksum (as after a bit flip in its data)
    struct.pack_into("<I", raw, pos + 9 + 24, 0xDEADBEEF)
    f.write_bytes(bytes(raw))
    damaged = BagReader(bag).damaged_chunks
    assert [d.index for d in damaged] == [1] and "CRC mismatch" in damaged[0].reason
    # issue 18: a corrupted chunk has its own exit code and nothing is played
    code, err, rep = _replay(bag, tmp_path, capsys)
    assert code == C.EXIT_CORRUPT_CHUNKS == 9
    assert f"chunk 1 at bytes [{pos}, " in err and "nothing played" in err
    assert rep is None
    # asked to: every other chunk (before and after it) is played, exit 3
    code, err, rep = _replay(bag, tmp_path, capsys, "--skip-corrupt")
    assert code == C.EXIT_DAMAGED
    played = rep["replay"]["messages_played"]
    total = BagReader(_bag(tmp_path, "fresh")).message_count - 50   # /clock not replayed
    assert total - damaged[0].messages <= played < total


def test_not_a_bag_and_missing_bag_exit_2(tmp_path, capsys):
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(BagError):
        BagReader(junk)
    assert C.main([str(junk), *FAST]) == C.EXIT_USAGE
    assert "cannot read bag" in capsys.readouterr().err
    assert C.main([str(tmp_path / "nope"), *FAST]) == C.EXIT_USAGE
    assert "no such bag" in capsys.readouterr().err


def test_truncated_sqlite3_bag_replays_readable_rows_exit_3(tmp_path, capsys):
    bag = _bag(tmp_path, storage="sqlite3", cameras=("main",))
    f = next(bag.glob("*.db3"))
    intact = BagReader(bag).message_count
    f.write_bytes(f.read_bytes()[: int(f.stat().st_size * 0.6)])
    reader = BagReader(bag)            # rosbags refuses it; the row reader keeps what is there
    assert reader.tolerant and 0 < reader.message_count < intact
    assert any(p.kind == "truncated" for p in reader.problems)
    code, err, rep = _replay(bag, tmp_path, capsys)
    assert code == C.EXIT_DAMAGED
    assert "truncated" in err and "readable messages" in err
    assert 0 < rep["replay"]["messages_played"] <= reader.message_count


def _write_custom(tmp_path, name, out_of_order=False, mystery=False):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_types_from_msg
    from autonomy_replay.bag import make_typestore
    from autonomy_replay.synthetic import default_msg
    import copy
    ts = copy.deepcopy(make_typestore())
    ts.register(get_types_from_msg("float64 value\nstring note", "fake_msgs/msg/Mystery"))
    path = tmp_path / name
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c_odom = w.add_connection("/odom", "nav_msgs/msg/Odometry", typestore=ts)
        c_fake = w.add_connection("/mystery", "fake_msgs/msg/Mystery", typestore=ts) if mystery else None
        for i in range(20):
            t = 10_000_000_000 + i * 20_000_000
            od = default_msg(ts, "nav_msgs/msg/Odometry")
            s = t - (100_000_000 if out_of_order and i == 10 else 0)   # one stamp jumps back
            od.header.stamp.sec, od.header.stamp.nanosec = divmod(s, 1_000_000_000)
            od.header.frame_id = "odom"
            w.write(c_odom, t, ts.serialize_cdr(od, "nav_msgs/msg/Odometry"))
            if c_fake is not None:
                m = default_msg(ts, "fake_msgs/msg/Mystery")
                m.value = float(i)
                w.write(c_fake, t, ts.serialize_cdr(m, "fake_msgs/msg/Mystery"))
    return path


def test_unknown_message_type_is_skipped_exit_4(tmp_path, capsys):
    bag = _write_custom(tmp_path, "mystery", mystery=True)
    code, err, rep = _replay(bag, tmp_path, capsys)
    assert code == C.EXIT_INCOMPLETE == 4
    assert "unknown_type [/mystery]" in err and "fake_msgs/msg/Mystery" in err
    assert rep["replay"]["played"] == {"/odom": 20}
    assert "unknown message type" in rep["replay"]["skipped_topics"]["/mystery"]


def test_missing_topic_exit_4(tmp_path, capsys):
    bag = _write_custom(tmp_path, "plain")
    code, err, rep = _replay(bag, tmp_path, capsys, "--wait-for", "/cameras/main/image_raw")
    assert code == C.EXIT_INCOMPLETE
    assert "missing_topic [/cameras/main/image_raw]" in err
    assert rep["replay"]["played"] == {"/odom": 20}


def test_out_of_order_stamps_warn_exit_0_or_4_when_strict(tmp_path, capsys):
    bag = _write_custom(tmp_path, "ooo", out_of_order=True)
    code, err, rep = _replay(bag, tmp_path, capsys)
    assert code == 0
    assert "warning: out_of_order [/odom]" in err and "header.stamp" in err
    assert rep["replay"]["played"] == {"/odom": 20}
    code, err, _ = _replay(bag, tmp_path / "strict", capsys, "--strict")
    assert code == C.EXIT_INCOMPLETE


def test_undeliverable_when_consumer_missing_exit_5(tmp_path, capsys):
    bag = _write_custom(tmp_path, "plain")
    code, err, rep = _replay(bag, tmp_path, capsys, "--wait-for", "/odom")
    assert code == C.EXIT_UNDELIVERED == 5
    assert "no subscriber on ['/odom']" in capsys.readouterr().out + err or rep["replay"]["not_ready"]
    assert rep["replay"]["undelivered"] == {"/odom": 20}


def test_usage_errors_exit_2(tmp_path, capsys):
    bag = _write_custom(tmp_path, "plain")
    assert C.main([str(bag), "--rate", "-1"]) == C.EXIT_USAGE
    assert C.main([str(bag), "--tolerances", "x.yaml"]) == C.EXIT_USAGE
    bad = tmp_path / "tol.yaml"
    bad.write_text("default: {abs: -1}\n")
    assert C.main([str(bag), "--reference", str(bag), "--tolerances", str(bad)]) == C.EXIT_USAGE
    assert "abs: expected a number >= 0" in capsys.readouterr().err


def test_topic_the_graph_needs_but_nobody_provides_is_a_warning(tmp_path, capsys):
    import rclpy
    from nav_msgs.msg import Odometry
    from rclpy.context import Context
    bag = _write_custom(tmp_path, "plain")
    ctx = Context()
    rclpy.init(args=[], context=ctx)
    node = rclpy.create_node("unfed_listener", context=ctx)
    node.create_subscription(Odometry, "/test/unfed", lambda _m: None, 10)
    # it also reads /odom: the replay starts once that subscription is matched (and stable)
    node.create_subscription(Odometry, "/odom", lambda _m: None, 100)
    try:
        code, err, rep = _replay(bag, tmp_path, capsys, "--wait", "20", "--settle", "1",
                                 "--wait-for", "/odom")
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    assert code == 0
    assert "warning: unfed_topic [/test/unfed]: subscribed by unfed_listener" in err
    assert {"kind": "unfed_topic", "topic": "/test/unfed",
            "message": "subscribed by unfed_listener but neither in the bag nor published "
                       "by a running node"} in rep["problems"]


def test_sigterm_stops_replay_with_130_and_a_valid_output_bag(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    from autonomy_replay.synthetic import write_synthetic_bag
    bag = write_synthetic_bag(tmp_path / "long", duration=6.0, odom_hz=20, cameras=(),
                              ground_truth=False)
    out = tmp_path / "out.mcap"
    proc = subprocess.Popen([sys.executable, "-c",
                             "import sys; from autonomy_replay import main; "
                             "sys.exit(main(sys.argv[1:]))", str(bag), "--record", str(out),
                             "--wait", "0.2", "--settle", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    line = ""
    while "playback started" not in line and time.monotonic() < deadline:
        line = proc.stdout.readline()
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=20)[0]
    assert proc.returncode == C.EXIT_INTERRUPTED, rest
    assert "interrupted; closing the output bag" in rest
    # OUT.mcap -> rosbag2 directory OUT/ with OUT.mcap; closed (metadata written), readable
    assert (tmp_path / "out" / "metadata.yaml").exists() and (tmp_path / "out" / "out.mcap").exists()
    BagReader(tmp_path / "out").close()

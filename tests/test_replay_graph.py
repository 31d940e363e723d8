"""Replay of a short generated bag through a two-node graph (relay_a: /odom -> /test/odom_a,
stamps copied; relay_b: /test/odom_a -> /test/odom_b stamped with its sim-time clock, plus
a LatencyReport): the recorded outputs have the right stamps and sim time is honoured.
The replays read the relays' graph description (RELAY_GRAPH, --graph-file): they wait for
every relay -> relay link before playing and account every recorded output afterwards; a
second stage that subscribes late is waited for, one that never subscribes is named (exit 7)
or, without the description, counted as lost (exit 8) -- never exit 0 with lost messages."""
import subprocess
import sys
import time

import pytest
import yaml

from autonomy_replay import command as C
from ros_helpers import stop

BAG_START_S = 100.0      # synthetic bags start at sim time 100 s (wall time is ~1.7e9 s)
DURATION = 1.0
ODOM_HZ = 50


def _relay_pair(prefix, first_in, a_out, b_out, latency=None):
    """Graph description of relay {prefix}a (first_in -> a_out) and {prefix}b (a_out ->
    b_out [+ latency]), each output one per input message."""
    b_pub = [b_out] + ([latency] if latency else [])
    return {
        f"{prefix}a": {"executable": "relay_node", "subscribes": [first_in],
                       "publishes": [a_out], "one_per_input": {a_out: first_in}},
        f"{prefix}b": {"executable": "relay_node", "subscribes": [a_out], "publishes": b_pub,
                       "one_per_input": {t: a_out for t in b_pub}},
    }


RELAY_GRAPH = {
    "nodes": {**_relay_pair("relay_", "/odom", "/test/odom_a", "/test/odom_b",
                            latency="/perception/latency"),
              **_relay_pair("relay_late_", "/odom", "/test/late_a", "/test/late_b"),
              **_relay_pair("relay_stuck_", "/odom", "/test/stuck_a", "/test/stuck_b")},
    "modes": {"relays": {"nodes": ["relay_a", "relay_b"]},
              "late": {"nodes": ["relay_late_a", "relay_late_b"]},
              "stuck": {"nodes": ["relay_stuck_a", "relay_stuck_b"]}},
}


@pytest.fixture(scope="module")
def relay_graph(tmp_path_factory):
    path = tmp_path_factory.mktemp("graph") / "relay_graph.yaml"
    path.write_text(yaml.safe_dump(RELAY_GRAPH))
    return str(path)


def _relay(name, **params):
    # deep queues: on a loaded 2-core machine a starved relay must not drop inputs
    cmd = [sys.executable, "-m", "autonomy_replay.nodes.relay_node", "--ros-args",
           "-r", f"__node:={name}", "-p", "use_sim_time:=true", "-p", "queue_depth:=200"]
    for k, v in params.items():
        cmd += ["-p", f"{k}:={v}"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


@pytest.fixture(scope="module")
def graph():
    procs = [_relay("relay_a", input_topic="/odom", output_topic="/test/odom_a"),
             _relay("relay_b", input_topic="/test/odom_a", output_topic="/test/odom_b",
                    stamp="now", latency_topic="/perception/latency")]
    yield procs
    for p in procs:
        out = stop(p)
        assert "Traceback" not in out, out


@pytest.fixture(scope="module")
def in_bag(tmp_path_factory):
    from autonomy_replay.synthetic import write_synthetic_bag
    return write_synthetic_bag(tmp_path_factory.mktemp("bag") / "in", duration=DURATION,
                               odom_hz=ODOM_HZ, camera_hz=10, cameras=("main", "rear"),
                               start_s=BAG_START_S)


def _stamps(bag_path, topic):
    from autonomy_replay.bag import BagReader, decode_topic, stamp_ns
    with BagReader(bag_path) as b:
        return [(t, stamp_ns(m.header.stamp), m) for t, m in decode_topic(b, topic)]


@pytest.mark.timeout(60)
def test_replay_two_node_graph_records_outputs_with_sim_time(graph, in_bag, relay_graph,
                                                             tmp_path):
    from autonomy_replay import main
    out = tmp_path / "out"
    code = main([str(in_bag), "--record", str(out), "--wait-for", "/odom",
                 "--graph-file", relay_graph, "--graph", "relays",
                 "--record-topics", "/test/odom_a", "/test/odom_b", "/perception/latency",
                 "--settle", "0.5", "--tail", "0.5", "--wait", "30", "--qos-depth", "200",
                 "--quiet"])
    assert code == 0
    inputs = _stamps(in_bag, "/odom")
    a = _stamps(out, "/test/odom_a")
    b = _stamps(out, "/test/odom_b")
    assert len(inputs) == DURATION * ODOM_HZ
    # every input arrived once, in order, with its stamp unchanged by the relay
    assert [s for _, s, _ in a] == [s for _, s, _ in inputs]
    # the recorder's log times are sim time (the bag's clock), not wall time
    end_ns = inputs[-1][1] + int(0.5e9)
    for t, s, _ in a:
        assert s <= t <= end_ns, (t, s)
    # relay_b stamps with its own clock: sim time published by the player on /clock
    assert len(b) == len(inputs)
    assert all(BAG_START_S * 1e9 <= s <= end_ns for _, s, _ in b), [s for _, s, _ in b][:5]
    # sim time follows the bag: relay_b's clock reads close to the stamp of the input it
    # relays (clock ticks every 10 ms at rate 1; processing delay on a loaded machine)
    lag_ms = [(ib[1] - ia[1]) * 1e-6 for ia, ib in zip(a, b)]
    assert all(-50.0 <= d <= 250.0 for d in lag_ms), lag_ms
    assert [s for _, s, _ in b] == sorted(s for _, s, _ in b)
    lat = _stamps(out, "/perception/latency")
    assert len(lat) == len(inputs)
    assert {st.stage for _, _, m in lat for st in m.stages} == {"receive", "publish"}
    assert all(m.node == "relay_b" for _, _, m in lat)


@pytest.mark.timeout(60)
def test_replay_window_and_rate(graph, in_bag, relay_graph, tmp_path):
    from autonomy_replay import main
    out = tmp_path / "out"
    t0 = time.monotonic()
    code = main([str(in_bag), "--record", str(out), "--wait-for", "/odom",
                 "--graph-file", relay_graph, "--graph", "relays",
                 "--record-topics", "/test/odom_a", "--start", "0.4",
                 "--duration", "0.4", "--rate", "0.5", "--settle", "0.3", "--tail", "0.2",
                 "--qos-depth", "200", "--quiet"])
    wall = time.monotonic() - t0
    assert code == 0
    a = _stamps(out, "/test/odom_a")
    lo, hi = int((BAG_START_S + 0.4) * 1e9), int((BAG_START_S + 0.8) * 1e9)
    stamps = [s for _, s, _ in a]
    assert len(stamps) == 20 and stamps[0] == lo and stamps[-1] < hi
    # 0.4 s of bag at half speed takes >= 0.8 s of wall time
    assert wall >= 0.8


@pytest.mark.timeout(90)
def test_replay_starts_graph_mode_with_sim_time_and_writes_report(in_bag, tmp_path):
    """--nodes smoke: the runner starts vehicle_description + stack_monitor with
    use_sim_time; the monitor's 1 Hz diagnostics run on the replayed clock."""
    import json
    from autonomy_tools.replay import main
    rep = tmp_path / "report"
    code = main([str(in_bag), "--nodes", "smoke", "--report", str(rep), "--frames", "2",
                 "--settle", "0.5", "--tail", "1.2", "--quiet"])
    assert code == 0
    diag = _stamps(rep / "output_bag", "/diagnostics")
    stamps = [s for _, s, _ in diag]
    assert len(stamps) >= 2
    # sim-time stamps (the 1 Hz timer runs on the replayed clock): within the bag's time
    # (+ tail), not wall time
    assert all(BAG_START_S * 1e9 <= s <= (BAG_START_S + DURATION + 1.3) * 1e9 for s in stamps)
    assert stamps == sorted(stamps)
    report = json.loads((rep / "report.json").read_text())
    assert report["exit_code"] == 0
    assert report["rates"]["output"]["/diagnostics"]["count"] == len(stamps)
    assert report["replay"]["played"]["/odom"] == DURATION * ODOM_HZ
    assert (rep / "report.md").read_text().startswith("# Replay report")
    assert (rep / "frames" / "topdown_0001.png").exists()
    assert (rep / "frames" / "mosaic_0001.png").exists() and (rep / "replay.gif").exists()


@pytest.mark.timeout(90)
def test_regression_mode_against_a_reference_replay(graph, in_bag, relay_graph, tmp_path,
                                                    capsys):
    """Replay twice through the relays: the second run matches the first within the
    tolerances (exit 0); a shorter replay differs (exit 1) with a readable diff."""
    from autonomy_replay import main
    ref = tmp_path / "reference"
    common = ["--wait-for", "/odom", "--graph-file", relay_graph, "--graph", "relays",
              "--record-topics", "/test/odom_a", "/test/odom_b",
              "--settle", "0.5", "--tail", "0.3", "--qos-depth", "200", "--quiet"]
    assert main([str(in_bag), "--record", str(ref), *common]) == 0
    tol = tmp_path / "tol.yaml"
    # relay_b stamps with its own (sim) clock, which depends on scheduling: pair by
    # position and compare everything but the stamp
    tol.write_text("topics:\n  /test/odom_b:\n    pair: index\n"
                   "    ignore_fields: ['header.stamp.*']\n")
    capsys.readouterr()
    code = main([str(in_bag), "--reference", str(ref), "--tolerances", str(tol), *common])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "REGRESSION PASSED: 2 topics match" in out
    code = main([str(in_bag), "--duration", "0.5", "--reference", str(ref), "--tolerances",
                 str(tol), *common])
    out = capsys.readouterr().out
    assert code == 1
    assert "REGRESSION FAILED" in out
    assert "/test/odom_a: 25 messages vs reference 50 (tolerance ±0)" in out
    assert "/test/odom_a @ stamp 100.500000 s: only in the reference" in out


@pytest.mark.timeout(120)
def test_replay_waits_for_a_second_stage_that_subscribes_late(in_bag, relay_graph, tmp_path):
    """relay_late_b has its publishers at once but subscribes 3 s later, so it looks ready
    before it can receive (the issue's case: exit 0 with 16 of 50). The replay waits for the
    link /test/late_a (relay_late_a -> relay_late_b) and records all 50 on both stages."""
    from autonomy_replay import main
    procs = [_relay("relay_late_a", input_topic="/odom", output_topic="/test/late_a"),
             _relay("relay_late_b", input_topic="/test/late_a", output_topic="/test/late_b",
                    start_delay_s=3.0)]
    out = tmp_path / "out"
    try:
        code = main([str(in_bag), "--record", str(out), "--wait-for", "/odom",
                     "--graph-file", relay_graph, "--graph", "late",
                     "--record-topics", "/test/late_a", "/test/late_b", "--settle", "0.5",
                     "--tail", "0.5", "--wait", "60", "--qos-depth", "200", "--quiet"])
    finally:
        logs = [stop(p) for p in procs]
    assert all("Traceback" not in log for log in logs), logs
    assert "subscribed to /test/late_a (start_delay_s)" in logs[1], logs[1]
    assert code == 0
    assert len(_stamps(out, "/test/late_a")) == DURATION * ODOM_HZ
    assert len(_stamps(out, "/test/late_b")) == DURATION * ODOM_HZ


@pytest.fixture(scope="module")
def stuck_graph():
    """relay_stuck_b never subscribes during the tests (start_delay_s = 1 h)."""
    procs = [_relay("relay_stuck_a", input_topic="/odom", output_topic="/test/stuck_a"),
             _relay("relay_stuck_b", input_topic="/test/stuck_a", output_topic="/test/stuck_b",
                    start_delay_s=3600.0)]
    yield procs
    for p in procs:
        out = stop(p)
        assert "Traceback" not in out, out


@pytest.mark.timeout(60)
def test_replay_names_an_unmatched_link_and_plays_nothing(stuck_graph, in_bag, relay_graph,
                                                          tmp_path, capsys):
    from autonomy_replay.bag import BagReader
    out = tmp_path / "out"
    code = C.main([str(in_bag), "--record", str(out), "--wait-for", "/odom",
                   "--graph-file", relay_graph, "--graph", "stuck",
                   "--record-topics", "/test/stuck_a", "/test/stuck_b", "--settle", "0.5",
                   "--tail", "0.5", "--wait", "3", "--qos-depth", "200", "--quiet"])
    err = capsys.readouterr().err
    assert code == C.EXIT_LINKS == 7, err
    assert ("graph link not matched (nothing played): /test/stuck_a (/relay_stuck_a -> "
            "/relay_stuck_b): no subscription of /relay_stuck_b") in err, err
    with BagReader(out) as b:
        assert b.message_count == 0


@pytest.mark.timeout(60)
def test_replay_without_the_description_reports_lost_messages(stuck_graph, in_bag, tmp_path,
                                                              capsys):
    """No graph description, so no link to wait for: the stage that never subscribed is
    found after playing by --expect (exit 8 naming the topic), not reported as exit 0."""
    out = tmp_path / "out"
    code = C.main([str(in_bag), "--record", str(out), "--wait-for", "/odom",
                   "--record-topics", "/test/stuck_a", "/test/stuck_b",
                   "--expect", "/test/stuck_a=50", "/test/stuck_b=50", "--settle", "0.5",
                   "--tail", "0.5", "--drain", "1", "--wait", "30", "--qos-depth", "200",
                   "--quiet"])
    err = capsys.readouterr().err
    assert code == C.EXIT_LOST == 8, err
    assert "replay: LOST messages: /test/stuck_b received 0 of 50 expected" in err, err

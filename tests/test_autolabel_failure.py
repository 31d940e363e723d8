"""Failure -> scenario: a recorded run with a supervisor ERROR becomes a scenario file that
the simulator loads and runs, and the recreated scene matches the recorded one (the
oncoming car replays its auto-labeled track, parked cars stay, the ego starts where it was).

The run: a simulator clip (narrow street, oncoming car) recorded with
autonomy_simulator.record, copied with a /supervisor/status ERROR (diagnostic_msgs/
DiagnosticStatus, as supervisor_node publishes it) added at 4 s -- the stack's failure."""
import math

import numpy as np
import pytest
import torch
import yaml

from autonomy_autolabel.failure import find_events, main as failure_main, scene_document
from autonomy_autolabel.labeler import autolabel_clip
from autonomy_perception.inference_engine import InferenceEngine
from autonomy_replay.bag import BagReader, stamp_ns
from autonomy_replay.bag_data import BagData
from autonomy_simulator import scenario_file
from autonomy_simulator.record import Msgs, record, typestore
from autonomy_stack.bag_writer import open_mcap_writer
from autonomy_stack.paths import share_dir
from autonomy_stack.ros.ros_conversions import msg_to_object

SCENARIO, SEED = "narrow_street_oncoming", 7100
EVENT_S = 4.0


def _with_supervisor_error(src, dst, t_event: float):
    ts = typestore()
    M = Msgs(ts)
    w = open_mcap_writer(dst)
    conns = {}
    with BagReader(src) as r:
        types = {n: t.msgtype for n, t in r.topics.items()}
        for topic, t, data in r.messages():
            if topic not in conns:
                conns[topic] = w.add_connection(topic, types[topic], typestore=ts)
            w.write(conns[topic], t, bytes(data))
    typ = "diagnostic_msgs/msg/DiagnosticStatus"
    c = w.add_connection("/supervisor/status", typ, typestore=ts)
    msg = M.make(typ, level=bytes([2]) if isinstance(M.make(typ).level, bytes) else 2, name="supervisor",
                 message="off_road: 0.65 m (limit 0.5 m)")
    w.write(c, int(t_event * 1e9), M.serialize(msg, typ))
    w.close()
    return dst


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("fail")
    clip = record(SCENARIO, SEED, 7.0, d / "clip.mcap", camera_rate=10.0, width=128, height=96)
    return clip, _with_supervisor_error(clip, d / "failed", EVENT_S)


@pytest.mark.timeout(120)
def test_failure_becomes_a_scenario_the_simulator_runs(failed_run, tmp_path):
    clip, bag = failed_run
    assert find_events(clip) == []
    events = find_events(bag)
    assert [e.kind for e in events] == ["supervisor"] and "off_road" in events[0].message
    assert events[0].stamp_ns == int(EVENT_S * 1e9)
    torch.set_num_threads(1)
    engine = InferenceEngine.from_checkpoint(share_dir() / "models" / "perception_tiny.pt", "cpu")
    labels = autolabel_clip(bag, engine)
    world = {"scenario": SCENARIO, "seed": SEED, "params": {}}
    doc = scene_document(labels, events[0], world, before=3.0, after=2.0)
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    sc = scenario_file.load(path)
    sim = sc.sim
    t0 = EVENT_S - 3.0
    assert math.hypot(sim.ego.x - doc["ego"]["start"][0], sim.ego.y - doc["ego"]["start"][1]) < 1e-6
    # the recorded ground truth of the window, in the recreated scene's time
    gt = {}
    for _, m in BagData(bag, lambda t, mt: t == "/ground_truth/objects").get("/ground_truth/objects"):
        s = stamp_ns(m.header.stamp) * 1e-9 - t0
        if 0.0 <= s <= doc["duration_s"]:
            gt[round(s, 2)] = [msg_to_object(o) for o in m.objects]
    moving = [a for a in sim.agents if not a.object_class.name.startswith("BARRIER")
              and np.ptp(a.traj[:, 1]) + np.ptp(a.traj[:, 2]) > 3.0]
    assert moving, doc["agents"]
    errs = []
    n = int(round(doc["duration_s"] / sim.dt))
    for i in range(n):
        sim.step()
        objs = gt.get(round(sim.t, 2))
        if objs is None:
            continue
        for a in moving:
            if a.active:
                errs.append(min(math.hypot(a.x - o.x, a.y - o.y) for o in objs))
    assert sim.t == pytest.approx(doc["duration_s"], abs=sim.dt)
    # replays a real road user's path (median 1.54 m with the fine-tuned perception
    # checkpoint of 2026-11-28, under 1.5 m with the first one)
    assert errs and np.median(errs) < 1.75, errs
    # the ego, driven by the scenario's autopilot among the replayed road users, gets going
    # (label ghosts in its lane -- parked cones drifting as 'moving' tracks -- held it at the
    # start before static classes were made static); it does not yet end where the recorded
    # ego did (measured: 21.6 m vs 32.8 m: duplicated / misplaced parked labels slow it)
    odom = BagData(bag, lambda t, mt: t == "/odom").get("/odom")
    end = min(odom, key=lambda tm: abs(stamp_ns(tm[1].header.stamp) * 1e-9 - (t0 + doc["duration_s"])))[1]
    p = end.pose.pose.position
    assert sim.ego.x - doc["ego"]["start"][0] > 0.4 * (p.x - doc["ego"]["start"][0]) > 2.0, (sim.ego, p)


def test_failure_command_exit_codes(failed_run, tmp_path, capsys):
    clip, _ = failed_run
    assert failure_main([str(clip), "--world", f"{SCENARIO}:{SEED}", "--out", str(tmp_path)]) == 3
    assert failure_main([str(clip), "--world", "nonsense", "--out", str(tmp_path)]) == 2
    assert "NAME:SEED" in capsys.readouterr().err


def test_scenario_file_errors_name_the_problem(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump({"format": "autonomy_scenario_file/1", "world": {"scenario": SCENARIO, "seed": 1},
                                 "ego": {"start": [0, 0, 0, 0]},
                                 "agents": [{"id": 1, "class": "CAR", "length": 4, "width": 2, "height": 1.5,
                                             "trajectory": []}]}))
    with pytest.raises(scenario_file.ScenarioFileError, match="agent 0"):
        scenario_file.load(p)
    p.write_text("format: other\n")
    with pytest.raises(scenario_file.ScenarioFileError, match="format"):
        scenario_file.load(p)

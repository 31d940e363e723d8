"""Replay report, metrics, regression and rendering (pure parts, no graph)."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from autonomy_replay import metrics as M

PURE = ["autonomy_replay.bag", "autonomy_replay.bag_scan", "autonomy_replay.recorder",
        "autonomy_replay.metrics", "autonomy_replay.report", "autonomy_replay.perception_eval",
        "autonomy_replay.regression", "autonomy_replay.render",
        "autonomy_replay.synthetic", "autonomy_replay"]


def test_pure_modules_do_not_import_rclpy():
    code = ("import sys, importlib\n"
            f"for m in {PURE!r}: importlib.import_module(m)\n"
            "print('RCLPY' if 'rclpy' in sys.modules else 'CLEAN')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "CLEAN"


# ---------------------------------------------------------------- metrics
def test_bev_layer_names_of_simulator_and_network_match():
    from autonomy_replay.bag_data import layer_key
    assert layer_key("lane_lines") == layer_key("lane")
    assert layer_key("road_edges") == layer_key("road_edge") == layer_key("edge")
    assert layer_key("drivable") == layer_key("drivable_area")
    assert layer_key("curb") != layer_key("edge")


def _boxes(xy, cls=None, score=None, vel=None, occl=None):
    xy = np.asarray(xy, float).reshape(-1, 2)
    n = len(xy)
    return M.Boxes(xy, np.asarray(cls if cls is not None else [1] * n), np.asarray(
        score if score is not None else [1.0] * n, float), np.asarray(
        vel if vel is not None else [[0, 0]] * n, float).reshape(-1, 2), np.arange(n),
        np.asarray(occl if occl is not None else [False] * n), np.zeros(n),
        np.tile([4.5, 1.9], (n, 1)))


def test_collisions_and_comfort():
    agents = M.AgentTracks([(0.0, _boxes([[10, 0]])), (1.0, _boxes([[10, 0]]))])
    ego = M.EgoShape(4.7, 1.9, 0.9)
    # ego rear axle at x=5: its box spans x in [4.1, 8.8] -> no contact with [7.75, 12.25]? yes
    assert M.collisions([(0.0, 5.0, 0.0, 0.0)], agents, ego)
    assert not M.collisions([(0.0, 0.0, 0.0, 0.0)], agents, ego)
    assert not M.collisions([(0.0, 5.0, 3.0, 0.0)], agents, ego)     # next lane
    assert not M.collisions([(5.0, 5.0, 0.0, 0.0)], agents, ego)     # no GT at that time
    t = np.linspace(0, 5, 51)
    smooth = M.comfort(t, 5 + 0.5 * t, np.zeros_like(t))
    assert smooth["comfortable"] and smooth["lon_accel_max"] == pytest.approx(0.5)
    harsh = M.comfort(t, np.where(t < 2.5, 10.0, 0.0), np.zeros_like(t))
    assert harsh["comfortable"] is False and harsh["lon_accel_min"] < -4.05


# ---------------------------------------------------------------- report (end to end)
def _write_outputs(path, in_bag, occluded_kept=False, shift_m=1.0, plan_into_agent=True):
    """An 'output bag' as a perfect-ish stack would record: predictions derived from the
    ground truth (objects shifted 0.3 m, BEV shifted by shift_m), a plan, latency reports."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from autonomy_replay.bag import BagReader, decode_topic, make_typestore
    from autonomy_replay.synthetic import default_msg
    ts = make_typestore()
    r = BagReader(in_bag)
    gts = decode_topic(r, "/ground_truth/objects", ts)
    bevs = decode_topic(r, "/ground_truth/bev/drivable", ts)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c_obj = w.add_connection("/perception/objects", "autonomy_interfaces/msg/ObjectArray", typestore=ts)
        c_bev = w.add_connection("/perception/bev/drivable", "nav_msgs/msg/OccupancyGrid", typestore=ts)
        c_tr = w.add_connection("/planning/trajectory", "autonomy_interfaces/msg/Trajectory", typestore=ts)
        c_lat = w.add_connection("/perception/latency", "autonomy_interfaces/msg/LatencyReport", typestore=ts)
        c_fut = w.add_connection("/planning/agent_futures", "autonomy_interfaces/msg/AgentFutureArray", typestore=ts)
        c_cor = w.add_connection("/planning/corridor", "autonomy_interfaces/msg/Corridor", typestore=ts)
        c_road = w.add_connection("/perception/road", "autonomy_interfaces/msg/RoadStructure", typestore=ts)
        for (t, g), (_, b) in zip(gts, bevs):
            g.objects = [o for o in g.objects if occluded_kept or not o.occluded]
            for o in g.objects:
                o.pose.position.x += 0.3
                o.score = 0.9
            w.write(c_obj, t + 30_000_000, ts.serialize_cdr(g, "autonomy_interfaces/msg/ObjectArray"))
            b.info.origin.position.x += shift_m
            w.write(c_bev, t + 30_000_000, ts.serialize_cdr(b, "nav_msgs/msg/OccupancyGrid"))
            x0 = 5.0 * ((t - r.start_ns) * 1e-9)
            tr = _plan_msg(ts, g.header, x0, plan_into_agent)
            w.write(c_tr, t + 40_000_000, ts.serialize_cdr(tr, "autonomy_interfaces/msg/Trajectory"))
            lat = _latency_msg(ts, g.header)
            w.write(c_lat, t + 30_000_000, ts.serialize_cdr(lat, "autonomy_interfaces/msg/LatencyReport"))
            fut = _futures_msg(ts, g)
            w.write(c_fut, t + 40_000_000, ts.serialize_cdr(fut, "autonomy_interfaces/msg/AgentFutureArray"))
            cor = _corridor_msg(ts, g.header, x0)
            w.write(c_cor, t + 40_000_000, ts.serialize_cdr(cor, "autonomy_interfaces/msg/Corridor"))
            road = _road_msg(ts, g.header, x0)
            w.write(c_road, t + 30_000_000, ts.serialize_cdr(road, "autonomy_interfaces/msg/RoadStructure"))
    r.close()
    return path


def _plan_msg(ts, header, x0, plan_into_agent):
    from autonomy_replay.synthetic import default_msg
    tr = default_msg(ts, "autonomy_interfaces/msg/Trajectory")
    tr.header = header
    tr.maneuver = "keep_lane"
    for k in range(30):
        p = default_msg(ts, "autonomy_interfaces/msg/TrajectoryPoint")
        p.time_from_start.sec, p.time_from_start.nanosec = divmod(k * 100_000_000, 10**9)
        p.pose.position.x = x0 + 5.0 * 0.1 * k
        p.pose.position.y = 3.5 if plan_into_agent else 0.0    # agent 1 drives at y=3.5
        p.pose.orientation.w = 1.0
        p.speed = 5.0
        tr.points.append(p)
    return tr


def _latency_msg(ts, header):
    from autonomy_replay.synthetic import default_msg
    lat = default_msg(ts, "autonomy_interfaces/msg/LatencyReport")
    lat.header = header
    lat.node = "perception"
    for stage, ms in (("network", 20.0), ("postprocess", 3.0)):
        st = default_msg(ts, "autonomy_interfaces/msg/StageLatency")
        st.stage, st.duration_ms = stage, ms
        lat.stages.append(st)
    lat.total_ms = 30.0
    return lat


def _futures_msg(ts, g):
    from autonomy_replay.synthetic import default_msg
    fut = default_msg(ts, "autonomy_interfaces/msg/AgentFutureArray")
    fut.header = g.header
    for o in g.objects:
        a = default_msg(ts, "autonomy_interfaces/msg/AgentFuture")
        a.agent_id = o.id
        for label, prob, dy in (("keep_lane", 0.7, 0.0), ("turn", 0.3, 2.0)):
            h = default_msg(ts, "autonomy_interfaces/msg/PredictedPath")
            h.label, h.probability = label, prob
            for k in range(10):
                p = default_msg(ts, "autonomy_interfaces/msg/TrajectoryPoint")
                p.pose.position.x = o.pose.position.x + o.velocity.x * 0.3 * k
                p.pose.position.y = o.pose.position.y + dy * k / 10
                h.points.append(p)
            a.hypotheses.append(h)
        fut.agents.append(a)
    return fut


def _corridor_msg(ts, header, x0):
    from autonomy_replay.synthetic import default_msg
    cor = default_msg(ts, "autonomy_interfaces/msg/Corridor")
    cor.header = header
    for k in range(15):
        sl = default_msg(ts, "autonomy_interfaces/msg/CorridorSlice")
        sl.station, sl.reference.x = float(k), x0 + k
        sl.left_bound, sl.right_bound = 1.8, -1.8
        cor.slices.append(sl)
    return cor


def _road_msg(ts, header, x0):
    from autonomy_replay.synthetic import default_msg
    road = default_msg(ts, "autonomy_interfaces/msg/RoadStructure")
    road.header = header
    for k, y in enumerate((-4.1, 4.1)):
        line = default_msg(ts, "autonomy_interfaces/msg/RoadLine")
        line.id, line.line_type, line.confidence = k, 4, 0.9
        for xx in (x0 - 20, x0 + 40):
            pt = default_msg(ts, "geometry_msgs/msg/Point")
            pt.x, pt.y = xx, y
            line.points.append(pt)
        road.lines.append(line)
    return road


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    from autonomy_replay.synthetic import write_synthetic_bag
    d = tmp_path_factory.mktemp("report")
    inp = write_synthetic_bag(d / "in", duration=2.0, odom_hz=20, camera_hz=5,
                              cameras=("main", "rear"), image_size=(96, 64))
    out = _write_outputs(d / "out", inp)
    return d, inp, out


def test_report_metrics_from_ground_truth(bags):
    from autonomy_replay.report import build_report, markdown
    d, inp, out = bags
    rep = build_report(inp, out, exit_code=0)
    per = rep["perception"]
    assert per["available"]
    assert per["extent_source"].startswith("perception checkpoint")   # +-24 m from its config
    ev = per["evaluation"]
    # the one protocol (as offline): IoU on the network's +-24 m extent, where the ground
    # truth (x -10..30 m, y -10..10 m of the ego) is known: the road band (8 m wide) covers
    # 34 m of it, the prediction (shifted 1 m forward) 33 m of those.
    assert ev["iou"]["drivable"] == pytest.approx(33 / 34)
    assert ev["iou_frames"]["drivable"] == 10 and ev["frames"] == 10
    # agents (ego frame): x = 10 - 8t and 18 + t, always inside; x = 26 - 8t enters the
    # extent after t = 0.25 s (frames 0.4..1.8 s) and is occluded at 0.8 and 1.0 s (seen
    # before: occluded recall counts it, AP ignores it). 0.3 m off, every visible object is
    # found with full precision (the occluded ones have no prediction).
    assert ev["n_gt"]["vehicle"] == 10 + 10 + 6
    assert ev["occluded_total"] == 2 and ev["occluded_recall"] == 0.0
    assert ev["vehicle_ap"] == 1.0
    assert all(v == 1.0 for v in ev["vehicle_ap_per_threshold"].values())
    assert ev["recall"]["vehicle"] == 1.0
    assert ev["velocity_error"] == pytest.approx(0.0)
    assert set(ev["vehicle_ap_by_range"]) == {"0-10", "10-20", "20-30+"}
    pl = rep["planning"]
    assert pl["planned"]["trajectories"] == 10 and pl["planned"]["plans_in_collision"] > 0
    assert pl["driven"]["collisions"] == 0 and pl["driven"]["comfort"]["comfortable"]
    assert pl["driven"]["progress_ratio_vs_ground_truth"] == pytest.approx(1.0, abs=0.02)
    lat = rep["latency"]["perception"]
    assert lat["stages"]["network"]["mean"] == 20.0 and lat["total_ms"]["p95"] == 30.0
    assert rep["rates"]["input"]["/odom"]["hz"] == pytest.approx(20.0)
    assert rep["rates"]["output"]["/perception/objects"]["count"] == 10
    md = markdown(rep)
    assert "AP by range" in md and "| perception | network |" in md
    assert "drivable IoU" in md and "Network extent from: perception checkpoint" in md


def test_report_without_ground_truth_says_why(tmp_path):
    from autonomy_replay.report import build_report
    from autonomy_replay.synthetic import write_synthetic_bag
    inp = write_synthetic_bag(tmp_path / "in", duration=0.5, cameras=(), ground_truth=False)
    rep = build_report(inp, None)
    assert rep["perception"] == {"available": False,
                                 "reason": "the bag has no /ground_truth/... topics"}
    assert rep["planning"]["available"] and "planned" not in rep["planning"]


def test_render_writes_png_frames_and_video(bags, tmp_path):
    import imageio.v2 as imageio
    from autonomy_replay.render import render_replay
    d, inp, out = bags
    res = render_replay(inp, out, tmp_path, max_frames=3)
    assert res["frames"] == 3 and res["cameras"] == ["main", "rear"]
    td = imageio.imread(tmp_path / "frames" / "topdown_0001.png")
    mo = imageio.imread(tmp_path / "frames" / "mosaic_0001.png")
    assert td.shape[2] >= 3 and td.shape[0] > 300 and mo.shape[:2] == (300, 800)
    # GT drawn in green, predictions in red, the plan in blue: all present
    rgb = td[..., :3].reshape(-1, 3).astype(int)
    assert np.any((rgb[:, 1] > 100) & (rgb[:, 0] < 60) & (rgb[:, 2] < 60))
    assert np.any((rgb[:, 0] > 200) & (rgb[:, 1] < 60) & (rgb[:, 2] < 60))
    assert np.any((rgb[:, 2] > 200) & (rgb[:, 0] < 60) & (rgb[:, 1] < 60))
    # agent futures (dark orange) and the corridor (cyan)
    assert np.any((rgb[:, 0] > 200) & (rgb[:, 1] > 100) & (rgb[:, 1] < 170) & (rgb[:, 2] < 60))
    assert np.any((rgb[:, 0] < 60) & (rgb[:, 1] > 150) & (rgb[:, 2] > 150))
    gif = imageio.mimread(tmp_path / "replay.gif")
    assert len(gif) == 3
    assert (tmp_path / "replay.mp4").stat().st_size > 1000


# ---------------------------------------------------------------- regression
def test_regression_passes_on_identical_and_fails_with_readable_diff(bags, tmp_path):
    from autonomy_replay import regression as R
    d, inp, out = bags
    same = R.compare_bags(out, out)
    assert same.passed and "REGRESSION PASSED" in same.text()
    other = _write_outputs(tmp_path / "other", inp, occluded_kept=True, shift_m=1.2)
    res = R.compare_bags(other, out)
    assert not res.passed
    text = res.text()
    assert "REGRESSION FAILED" in text
    assert "/perception/bev/drivable @ stamp 100.000000 s: info.origin.position.x = " in text
    assert "vs reference" in text and "(|diff| 0.2 > 1e-06)" in text
    assert "/perception/objects @ stamp" in text and "objects.__len__ = 3 vs reference 2" in text
    # within tolerances: the origin differs by 0.2 m, the object lists by one occluded object
    tol = R.load_tolerances({"topics": {
        "/perception/bev/drivable": {"fields": {"info.origin.*": {"abs": 0.25}}},
        "/perception/objects": {"ignore_fields": ["objects*"]},
        "/planning/agent_futures": {"ignore_fields": ["agents*"]}}})
    assert R.compare_bags(other, out, tol).passed
    # message counts
    tol_cnt = R.load_tolerances({"ignore_topics": ["/perception/*", "/planning/*"]})
    assert R.compare_bags(other, out, tol_cnt).passed
    assert R.main([str(other), str(out)]) == 1 and R.main([str(out), str(out)]) == 0


def test_regression_counts_and_missing_topics(bags, tmp_path):
    from autonomy_replay import regression as R
    from autonomy_replay.synthetic import write_synthetic_bag
    a = write_synthetic_bag(tmp_path / "a", duration=1.0, odom_hz=20, cameras=(), ground_truth=False)
    b = write_synthetic_bag(tmp_path / "b", duration=1.2, odom_hz=20, cameras=(), ground_truth=False)
    res = R.compare_bags(a, b)
    assert "/odom: 20 messages vs reference 24 (tolerance ±0)" in res.text()
    assert "/odom @ stamp 101.000000 s: only in the reference" in res.text()
    loose = R.load_tolerances({"count": {"abs": 4}})
    assert "/odom: 20 messages" not in R.compare_bags(a, b, loose).text()
    d, _inp, out = bags
    res = R.compare_bags(a, out)
    assert "/perception/objects: missing in the output (reference has 10 messages)" in res.text()
    with pytest.raises(R.ToleranceError):
        R.load_tolerances({"default": {"abs": "x"}})
    with pytest.raises(R.ToleranceError):
        R.load_tolerances({"bogus": 1})


def test_objects_in_the_ego_frame_are_moved_to_odom():
    from autonomy_replay.bag import make_typestore
    from autonomy_replay.report import objects_to_boxes
    from autonomy_replay.synthetic import default_msg
    ts = make_typestore()
    ego = default_msg(ts, "nav_msgs/msg/Odometry")
    ego.header.frame_id, ego.child_frame_id = "odom", "base_link"
    ego.header.stamp.sec = 5
    ego.pose.pose.position.x, ego.pose.pose.position.y = 10.0, 20.0
    ego.pose.pose.orientation.z, ego.pose.pose.orientation.w = math.sin(math.pi / 4), math.cos(math.pi / 4)
    objs = default_msg(ts, "autonomy_interfaces/msg/ObjectArray")
    objs.header.frame_id = "base_link"
    objs.header.stamp.sec = 5
    o = default_msg(ts, "autonomy_interfaces/msg/Object")
    o.pose.position.x, o.pose.orientation.w, o.velocity.x = 3.0, 1.0, 2.0
    objs.objects.append(o)
    b = objects_to_boxes(objs, [(5_000_000_000, ego)])
    # ego at (10, 20) facing +y: 3 m ahead is (10, 23); forward velocity points along +y
    assert b.xy[0] == pytest.approx([10.0, 23.0]) and b.vel[0] == pytest.approx([0.0, 2.0])
    assert b.yaw[0] == pytest.approx(math.pi / 2)
    objs.header.frame_id = "odom"
    assert objects_to_boxes(objs, [(5_000_000_000, ego)]).xy[0] == pytest.approx([3.0, 0.0])

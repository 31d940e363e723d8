"""The one evaluation protocol (autonomy_perception.evaluation.protocol) on asymmetric
fixtures with known answers, and the same frames through the offline path (ego-frame
ObjectStates) and the replay-report path (ObjectArray / OccupancyGrid messages in odom and
base_link, ego at (100, -40) heading 2.0 rad, written to bags) giving identical figures."""
import math

import numpy as np
import pytest

from autonomy_perception.evaluation.protocol import (EvaluationProtocol, ProtocolEvaluator,
                                                     markdown, nan_to_none)
from autonomy_stack.bev_grid import BEVGrid
from autonomy_stack.vector_space import ObjectClass, ObjectState

CFG = {"bev": {"x_range": [-24.0, 24.0], "y_range": [-24.0, 24.0], "resolution": 1.0}}
P = EvaluationProtocol.from_model_config(CFG)
GRID = BEVGrid.from_config(CFG)


def obj(oid, x, y, cls=ObjectClass.CAR, score=1.0, speed=0.0, yaw=0.0, px=100, occluded=False):
    return ObjectState(oid, cls, x, y, yaw, 4.5, 1.9, 1.5, speed=speed, score=score,
                       visible_pixels=px, occluded=occluded)


def scene():
    """(ground truth, detections, rasters) of the asymmetric fixture, ego frame."""
    gts = [obj(1, 12.0, 5.0, speed=5.0),                                 # front-left, 13 m
           obj(2, -18.0, -12.0),                                         # rear-right, 21.6 m
           obj(3, -8.0, -3.0, ObjectClass.CONE),                         # rear-right, 8.5 m
           obj(4, 30.0, 0.0),                                            # outside the extent
           obj(5, -5.0, 10.0, px=0, occluded=True)]                      # occluded, never seen
    dets = [obj(0, 12.7, 5.0, score=0.9, speed=4.0),                     # car 1, 0.7 m off
            obj(0, -5.0, 10.3, score=0.6),                               # on the occluded car
            obj(0, -15.0, -15.0, score=0.5),                             # FP (4.24 m from car 2)
            obj(0, -18.0, -10.5, score=0.4),                             # car 2, 1.5 m off
            obj(0, -8.0, -3.3, ObjectClass.BARRIER, score=0.7)]          # the cone, as BARRIER
    gt_r = np.zeros(GRID.shape, np.float32)
    gt_r[:24, :24] = 1.0                                                 # front-left quadrant
    pred_r = np.zeros(GRID.shape, np.float32)
    pred_r[:24, :12] = 0.8                                               # its left half
    pred_r[40:, 40:] = 0.3                                               # below threshold
    return gts, dets, {"drivable": (pred_r, gt_r)}


def test_protocol_rules():
    assert P.x_range == (-24.0, 24.0) and P.extent_source == "the checkpoint's model config"
    assert P.inside(obj(0, 23.9, -23.9)) and not P.inside(obj(0, 24.1, 0.0))
    assert [P.range_bin(x, 0.0) for x in (0.0, 9.99, 10.0, 19.9, 20.0, 33.9)] == \
        ["0-10", "0-10", "10-20", "10-20", "20-30+", "20-30+"]
    assert P.range_bin(-6.0, 7.9) == "0-10" and P.range_bin(-6.0, -8.0) == "10-20"
    groups = {c: P.group(obj(0, 0, 0, c)) for c in ObjectClass}
    assert groups == {ObjectClass.UNKNOWN: "static", ObjectClass.CAR: "vehicle",
                      ObjectClass.TRUCK: "vehicle", ObjectClass.PEDESTRIAN: "pedestrian",
                      ObjectClass.CYCLIST: "cyclist", ObjectClass.CONE: "static",
                      ObjectClass.POLE: "static", ObjectClass.BARRIER: "static"}
    assert P.visible(obj(0, 0, 0, px=4)) and not P.visible(obj(0, 0, 0, px=3))
    assert not P.visible(obj(0, 0, 0, px=50, occluded=True))
    d = EvaluationProtocol.with_half_extent(20.0).describe()
    assert d["x_range"] == [-20.0, 20.0] and d["range_bins"][-1] == ["20-30+", 20.0, None]


def test_asymmetric_fixture_exact_ap_per_threshold_and_range():
    gts, dets, rasters = scene()
    ev = ProtocolEvaluator(P, ["drivable"])
    ev.add_frame(0.0, dets, gts, rasters)
    s = ev.summary()
    # vehicle: 2 gt inside (car 4 is outside, car 5 never seen = ignored, and so is the
    # detection on it). Scores .9 (car 1 at 0.7 m), .5 (FP), .4 (car 2 at 1.5 m).
    assert s["n_gt"]["vehicle"] == 2
    assert s["vehicle_ap_per_threshold"] == pytest.approx(
        {"0.5": 0.0, "1.0": 0.5, "2.0": 0.5 + 0.5 * 2 / 3, "4.0": 0.5 + 0.5 * 2 / 3})
    assert s["vehicle_ap"] == pytest.approx(13 / 24)
    # per range: car 1 (13 m) in 10-20, its detection with it (a FP at 0.5 m in its own
    # bin, 13.7 m); car 2 (21.6 m) and the FP (21.2 m) in 20-30+; no vehicle within 10 m
    by = s["vehicle_ap_by_range"]
    assert math.isnan(by["0-10"])
    assert by["10-20"] == pytest.approx((0 + 1 + 1 + 1) / 4)
    assert by["20-30+"] == pytest.approx((0 + 0 + 0.5 + 0.5) / 4)
    assert s["n_gt_by_range"]["vehicle"] == {"0-10": 0, "10-20": 1, "20-30+": 1}
    # the cone, reported as BARRIER, is a static true positive at every threshold
    assert s["mean_ap"]["static"] == 1.0 and s["ap_by_range"]["static"]["0-10"] == 1.0
    assert set(s["ap"]) == {"vehicle", "static"}
    # operating point 0.3: |dv| 1 (car 1), 0 (car 2), 0 (cone); both cars recalled
    assert s["velocity_error"] == pytest.approx(1 / 3) and s["velocity_matches"] == 3
    assert s["recall"] == {"vehicle": 1.0, "static": 1.0}
    assert s["occluded_total"] == 0 and math.isnan(s["occluded_recall"])
    assert s["iou"]["drivable"] == pytest.approx(0.5)
    md = markdown(nan_to_none(s))
    assert "| vehicle | – (0) | 0.750 (1) | 0.250 (1) |" in md and "0.542" in md


def test_old_protocol_figures_are_gone():
    """What the old replay metric did differently, each on its own: a car outside the
    extent, a never-seen occluded car and a cone reported as BARRIER change nothing."""
    ev = ProtocolEvaluator(P)
    ev.add_frame(0.0, [obj(0, 0.5, 8.0, ObjectClass.BARRIER, score=0.8), obj(0, 12.0, 5.0, score=0.9)],
                 [obj(1, 0.5, 8.0, ObjectClass.CONE), obj(2, 12.0, 5.0), obj(3, 40.0, 0.0),
                  obj(4, -3.0, 3.0, px=0, occluded=True)])
    s = ev.summary()
    assert s["vehicle_ap"] == 1.0 and s["mean_ap"]["static"] == 1.0


def test_visibility_memory_and_persistence():
    ev = ProtocolEvaluator(P)
    car = lambda t_px, occ=False, oid=7: obj(oid, 6.0, -4.0, px=t_px, occluded=occ)  # noqa: E731
    ev.add_frame(0.0, [obj(0, 6.0, -4.0, score=0.9)], [car(50)])             # seen
    ev.add_frame(1.0, [obj(0, 6.5, -4.5, score=0.5)], [car(0, True)])         # kept: found
    ev.add_frame(3.5, [], [car(0, True)])                                     # 2.5 s later: ignored
    ev.add_frame(3.6, [obj(0, 6.0, -4.0, score=0.9)], [car(2)])               # 2 px: ignored
    ev.add_frame(3.7, [], [car(0, True, oid=8)])                              # never seen
    ev.add_frame(1.0, [], [car(0, True)], sequence=1)                         # other sequence
    s = ev.summary()
    assert s["occluded_total"] == 1 and s["occluded_recall"] == 1.0
    assert s["n_gt"]["vehicle"] == 1 and s["vehicle_ap"] == 1.0 and s["frames"] == 6


def test_raster_shape_must_match_the_protocol_grid():
    ev = ProtocolEvaluator(P, ["lane"])
    with pytest.raises(ValueError, match="lane"):
        ev.add_frame(0.0, [], [], {"lane": (np.zeros((10, 10)), np.zeros((10, 10)))})


def test_report_protocol_extent_sources(tmp_path):
    from autonomy_replay.perception_eval import report_protocol
    p = report_protocol({"eval_extent": 20.0})
    assert p.x_range == (-20.0, 20.0) and p.extent_source == "--eval-extent 20 m"
    bad = report_protocol({"param": [f"perception.checkpoint:={tmp_path / 'none.pt'}"]})
    assert bad.x_range == (-24.0, 24.0) and "not readable" in bad.extent_source
    ck = report_protocol({})                                   # models/perception_tiny.pt
    assert ck.extent_source.startswith("perception checkpoint") and \
        ck.extent_source.endswith("perception_tiny.pt")
    import torch
    torch.save({"format": "x", "config": {"bev": {"x_range": [-16, 32], "y_range": [-20, 20],
                                                  "resolution": 0.5}}}, tmp_path / "c.pt")
    p = report_protocol({"param": [f"perception.checkpoint:={tmp_path / 'c.pt'}"]})
    assert p.x_range == (-16.0, 32.0) and p.y_range == (-20.0, 20.0) and p.resolution == 0.5


# ---------------------------------------------------------------- offline == report
EGO0 = (100.0, -40.0, 2.0)
STAMPS = (10.0, 10.1, 10.2)


def _ego(k):
    x, y, yaw = EGO0
    return (x + 0.5 * k * math.cos(yaw), y + 0.5 * k * math.sin(yaw), yaw + 0.05 * k)


def _frames():
    """Three frames of the fixture, ego frame; car 2 is occluded in the last one (seen
    before: occluded recall), with a detection near it."""
    out = []
    for k, t in enumerate(STAMPS):
        gts, dets, rasters = scene()
        gts = [g if g.id != 1 else obj(1, 12.0 - 0.4 * k, 5.0, speed=5.0, yaw=0.2) for g in gts]
        gts.append(obj(6, 3.0, -2.0, ObjectClass.PEDESTRIAN, speed=1.2, yaw=-1.0))
        dets.append(obj(0, 3.2, -2.0, ObjectClass.PEDESTRIAN, score=0.8, speed=1.0, yaw=-1.1))
        if k == 2:
            gts = [g if g.id != 2 else obj(2, -18.0, -12.0, px=0, occluded=True) for g in gts]
            dets.append(obj(0, -17.5, -12.5, score=0.35))
        lane_gt = np.zeros(GRID.shape, np.float32)
        lane_gt[5:30, 40] = 1.0                                           # front-right line
        lane_pred = np.zeros(GRID.shape, np.float32)
        lane_pred[5:30, 39] = 0.7
        lane_pred[10:20, 40] = 0.6
        rasters["lane"] = (lane_pred, lane_gt)
        out.append((t, dets, gts, rasters))
    return out


def _write_bags(tmp_path, frames):
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import StoragePlugin, Writer

    from autonomy_perception.nodes.ros_outputs import probability_grid
    from autonomy_replay.bag import make_typestore
    from autonomy_stack.bev_grid import to_occupancy_layout
    from autonomy_stack.ros.ros_conversions import (ego_to_odometry, sec_to_stamp,
                                                    vector_space_to_msgs)
    from autonomy_stack.vector_space import EgoState, VectorSpace, transform_vector_space
    from nav_msgs.msg import OccupancyGrid
    ts = make_typestore()
    OA, OG, OD = ("autonomy_interfaces/msg/ObjectArray", "nav_msgs/msg/OccupancyGrid",
                  "nav_msgs/msg/Odometry")
    inp, out = tmp_path / "in", tmp_path / "out"
    with Writer(inp, version=9, storage_plugin=StoragePlugin.MCAP) as wi, \
            Writer(out, version=9, storage_plugin=StoragePlugin.MCAP) as wo:
        c = {t: wi.add_connection(t, mt, typestore=ts) for t, mt in (
            ("/odom", OD), ("/ground_truth/ego", OD), ("/ground_truth/objects", OA),
            ("/ground_truth/bev/drivable", OG), ("/ground_truth/bev/lane_lines", OG))}
        c.update({t: wo.add_connection(t, mt, typestore=ts) for t, mt in (
            ("/perception/objects", OA), ("/perception/bev/drivable", OG),
            ("/perception/bev/lane", OG))})
        for k, (t, dets, gts, rasters) in enumerate(frames):
            tn = int(round(t * 1e9))
            x, y, yaw = _ego(k)
            od = ego_to_odometry(EgoState(x=x, y=y, yaw=yaw, speed=5.0))
            od.header.stamp = sec_to_stamp(t)
            for topic in ("/odom", "/ground_truth/ego"):
                wi.write(c[topic], tn, serialize_message(od))
            g_odom, _ = vector_space_to_msgs(transform_vector_space(
                VectorSpace(t, "base_link", gts), x, y, yaw, "odom"))
            wi.write(c["/ground_truth/objects"], tn, serialize_message(g_odom))
            # the node's output frame: odom (demo), base_link in frame 1 (stamped 20 ms late)
            if k == 1:
                p_msg, _ = vector_space_to_msgs(VectorSpace(t + 0.02, "base_link", dets))
            else:
                p_msg, _ = vector_space_to_msgs(transform_vector_space(
                    VectorSpace(t, "base_link", dets), x, y, yaw, "odom"))
            wo.write(c["/perception/objects"], tn + 30_000_000, serialize_message(p_msg))
            for layer, gt_topic in (("drivable", "/ground_truth/bev/drivable"),
                                    ("lane", "/ground_truth/bev/lane_lines")):
                pred, gt = rasters[layer]
                wo.write(c[f"/perception/bev/{layer}"], tn + 30_000_000, serialize_message(
                    probability_grid(pred, GRID, "base_link", sec_to_stamp(t))))
                g = OccupancyGrid()             # as the simulator publishes it: base_link
                g.header.stamp, g.header.frame_id = sec_to_stamp(t), "base_link"
                g.info.resolution = 1.0
                occ = to_occupancy_layout((gt >= 0.5).astype(np.int8) * np.int8(100))
                g.info.height, g.info.width = occ.shape
                g.info.origin.position.x, g.info.origin.position.y = GRID.occupancy_origin()
                g.info.origin.orientation.w = 1.0
                g.data = occ.reshape(-1).tolist()
                wi.write(c[gt_topic], tn, serialize_message(g))
    return inp, out


def _assert_same(a, b, path="summary"):
    if isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            _assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), path
    else:
        assert a == b, path


def test_offline_and_report_paths_agree(tmp_path):
    from autonomy_replay.bag_data import BagData
    from autonomy_replay.perception_eval import perception_metrics
    frames = _frames()
    ev = ProtocolEvaluator(P, ["drivable", "lane"])
    for t, dets, gts, rasters in frames:
        ev.add_frame(t, dets, gts, rasters)
    offline = nan_to_none(ev.summary())
    inp, out = _write_bags(tmp_path, frames)
    rep = perception_metrics(BagData(inp), BagData(out), protocol=P)
    assert rep["available"] and rep["ground_truth_frames"] == 3
    assert rep["bev_layers"] == {
        "drivable": {"prediction": "/perception/bev/drivable", "ground_truth": "/ground_truth/bev/drivable"},
        "lane": {"prediction": "/perception/bev/lane", "ground_truth": "/ground_truth/bev/lane_lines"}}
    _assert_same(offline, rep["evaluation"])
    # and the figures are the fixture's, not trivial ones
    s = rep["evaluation"]
    assert s["frames"] == 3 and s["occluded_total"] == 1 and s["occluded_recall"] == 1.0
    assert s["n_gt"] == {"vehicle": 5, "pedestrian": 3, "cyclist": 0, "static": 3}
    assert 0.3 < s["vehicle_ap"] < 0.9 and s["mean_ap"]["pedestrian"] == 1.0
    assert s["iou"]["drivable"] == pytest.approx(0.5)
    assert s["iou"]["lane"] == pytest.approx(10 / 50)

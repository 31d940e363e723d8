"""Evaluation metrics and post-processing on hand-made cases with known answers."""
import math

import numpy as np
import pytest

from autonomy_perception.evaluation.metrics import (DetectionEvaluator, IoUAccumulator,
                                                    average_precision)
from autonomy_perception.postprocess import (PostProcessor, Tracker, decode_objects,
                                             extract_polylines)
from autonomy_perception.training.targets import detection_target
from autonomy_stack.bev_grid import BEVGrid
from autonomy_stack.vector_space import LineType, ObjectClass, ObjectState


def car(x, y, score=1.0, speed=0.0, yaw=0.0, cls=ObjectClass.CAR, oid=0):
    return ObjectState(oid, cls, x, y, yaw, 4.5, 1.8, 1.5, speed=speed, score=score)


def test_iou_accumulates_over_frames():
    acc = IoUAccumulator()
    p = np.zeros((4, 4), bool)
    g = np.zeros((4, 4), bool)
    p[0:2, 0:2] = True          # 4 cells
    g[0:2, 1:3] = True          # 4 cells, 2 shared
    acc.add(p, g)
    assert acc.value == pytest.approx(2 / 6)
    acc.add(np.zeros((4, 4), bool), np.zeros((4, 4), bool))   # empty frame changes nothing
    assert acc.value == pytest.approx(2 / 6)
    acc.add(g, g)
    assert acc.value == pytest.approx((2 + 4) / (6 + 4))
    assert math.isnan(IoUAccumulator().value)


def test_average_precision_known_curves():
    assert average_precision(np.array([1, 1]), np.array([0.9, 0.8]), 2) == pytest.approx(1.0)
    assert average_precision(np.array([0, 1]), np.array([0.9, 0.8]), 1) == pytest.approx(0.5)
    assert average_precision(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.7]), 2) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision(np.array([]), np.array([]), 3) == 0.0
    assert math.isnan(average_precision(np.array([1]), np.array([1.0]), 0))


def test_detection_ap_by_centre_distance_thresholds():
    ev = DetectionEvaluator()
    gts = [car(10, 0), car(-5, 3)]
    dets = [car(10.3, 0, 0.9), car(20, 20, 0.8), car(-5, 4.5, 0.7)]   # 0.3 m, FP, 1.5 m
    ev.add_frame(dets, gts)
    assert ev.ap("vehicle", 0.5) == pytest.approx(0.5)
    assert ev.ap("vehicle", 1.0) == pytest.approx(0.5)
    assert ev.ap("vehicle", 2.0) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert ev.ap("vehicle", 4.0) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert ev.mean_ap("vehicle") == pytest.approx((0.5 + 0.5 + 2 * (0.5 + 1 / 3)) / 4)
    # a pedestrian detection does not match a car; trucks and cars are both "vehicle"
    ev2 = DetectionEvaluator()
    ev2.add_frame([car(10, 0, 0.9, cls=ObjectClass.PEDESTRIAN), car(-5, 3, 0.8, cls=ObjectClass.TRUCK)], gts)
    assert ev2.ap("vehicle", 2.0) == pytest.approx(0.5)
    assert ev2.ap("pedestrian", 2.0) is not None and "pedestrian" not in ev2.summary()["ap"]


def test_detection_ignored_objects_and_double_detections():
    ev = DetectionEvaluator()
    # a detection on an ignored (never visible) car is not a false positive
    ev.add_frame([car(10, 0, 0.9), car(30, 0, 0.95)], [car(10, 0)], ignore=[car(30.5, 0)])
    assert ev.ap("vehicle", 1.0) == pytest.approx(1.0)
    ev = DetectionEvaluator()
    # two detections of one car: the second is a false positive
    ev.add_frame([car(10, 0, 0.9), car(10.2, 0, 0.8)], [car(10, 0)])
    assert ev.ap("vehicle", 1.0) == pytest.approx(1.0)   # FP after full recall costs nothing
    ev.add_frame([car(10.2, 0, 0.95), car(10, 0, 0.5)], [car(10, 0)])
    # scores: .95 TP, .9 TP, .8 FP, .5 FP -> AP 1
    assert ev.ap("vehicle", 1.0) == pytest.approx(1.0)
    ev.add_frame([car(50, 0, 0.99)], [car(0, 0)])
    # .99 FP, .95 TP (p 1/2, r 1/3), .9 TP (p 2/3, r 2/3), .8 FP, .5 FP; 3 gts.
    # envelope: p(r <= 2/3) = 2/3 -> AP = 2/3 * 2/3
    assert ev.ap("vehicle", 1.0) == pytest.approx(4 / 9)


def test_velocity_error_and_occlusion_recall():
    ev = DetectionEvaluator(score_threshold=0.3)
    gts = [car(10, 0, speed=10.0), car(0, 10, speed=5.0, yaw=math.pi / 2)]
    dets = [car(10.5, 0, 0.9, speed=7.0),                        # |dv| = 3
            car(0, 11, 0.8, speed=5.0, yaw=math.pi / 2 + 0.0),  # |dv| = 0
            car(30, 30, 0.2, speed=1.0)]                         # below threshold, unmatched
    occ = [car(-10, 0), car(-20, 0)]
    ev.add_frame(dets + [car(-10.5, 0.5, 0.6), car(-20, 0, 0.1)], gts, occluded_recent=occ)
    assert ev.velocity_error == pytest.approx(1.5)
    assert ev.occluded_recall == pytest.approx(0.5)   # second occluded car's det scores 0.1
    s = ev.summary()
    assert s["occluded_total"] == 2 and s["velocity_matches"] == 2


def test_targets_and_decoding_round_trip():
    grid = BEVGrid([-24, 24], [-24, 24], 1.0)
    classes = ["car", "truck", "pedestrian", "cyclist", "static"]
    objs = [ObjectState(1, ObjectClass.CAR, 10.3, -4.6, 0.4, 4.5, 1.9, 1.6, speed=8.0),
            ObjectState(2, ObjectClass.PEDESTRIAN, -3.2, 7.7, -1.2, 0.6, 0.6, 1.8, speed=1.2)]
    t = detection_target(grid, objs, classes)
    assert t["reg_mask"].sum() == 2 and (t["obj_heat"] == 1).sum() == 2
    out = {"obj": t["obj_heat"][0], "offset": t["offset"], "size": t["size"], "heading": t["heading"],
           "vel": t["vel"], "cls": np.stack([(t["cls"] == i).astype(float) for i in range(5)])}
    dec = decode_objects(out, grid, classes, 0.5)
    assert len(dec) == 2
    for o, d in zip(objs, sorted(dec, key=lambda d: -d.x)):
        assert (d.x, d.y) == pytest.approx((o.x, o.y), abs=1e-5)
        assert (d.length, d.width, d.height) == pytest.approx((o.length, o.width, o.height), rel=1e-5)
        assert d.yaw == pytest.approx(o.yaw, abs=1e-5) and d.speed == pytest.approx(o.speed, abs=1e-4)
        assert d.object_class == o.object_class
    # ignored objects: neither positive nor negative
    t2 = detection_target(grid, objs, classes, ignore_ids={2})
    assert t2["reg_mask"].sum() == 1 and t2["obj_ignore"].sum() > 0


def test_tracker_keeps_ids_and_polylines_follow_lines():
    tr = Tracker(gate_m=2.0)
    ids = None
    for k in range(5):
        dets = [car(10 + k * 1.0, 0, speed=10.0), car(-5, 3)]
        out = tr.update(dets, 0.1)
        if ids is None:
            ids = [d.id for d in out]
        assert [d.id for d in out] == ids
    assert len(set(ids)) == 2
    out = tr.update([car(40, 40)], 0.1)
    assert out[0].id not in ids
    grid = BEVGrid([-24, 24], [-24, 24], 1.0)
    m = np.zeros((48, 48), bool)
    m[5:40, 20] = True                    # a line along x at y = 24 - 20.5 = 3.5
    m[10, 30:45] = True                   # a line along y at x = 24 - 10.5 = 13.5
    lines = extract_polylines(m, grid, LineType.LANE_DASHED_WHITE)
    assert len(lines) == 2
    along_x = [l for l in lines if np.ptp(l.points[:, 0]) > 10][0]
    assert np.allclose(along_x.points[:, 1], 3.5)
    assert along_x.points[:, 0].min() == pytest.approx(24 - 39.5) and along_x.points[:, 0].max() == pytest.approx(24 - 5.5)
    # full post-processor output is a VectorSpace with typed contents
    cfg = {"bev": {"x_range": [-24, 24], "y_range": [-24, 24], "resolution": 1.0},
           "heads": {"segmentation": {"classes": ["drivable", "lane", "edge"]},
                     "detection": {"classes": ["car", "truck", "pedestrian", "cyclist", "static"]}}}
    pp = PostProcessor(cfg, score_threshold=0.5)
    seg = np.zeros((3, 48, 48), np.float32)
    seg[0, :, 10:30] = 0.9
    seg[1] = m * 0.8
    t = detection_target(grid, [car(5.2, 1.1, speed=3.0)], cfg["heads"]["detection"]["classes"])
    out = {"seg": seg, "obj": t["obj_heat"][0], "offset": t["offset"], "size": t["size"],
           "heading": t["heading"], "vel": t["vel"], "cls": np.eye(5)[np.maximum(t["cls"], 0)].transpose(2, 0, 1)}
    vs = pp.process(out, stamp=1.0)
    assert len(vs.objects) == 1 and vs.objects[0].id == 1 and vs.objects[0].x == pytest.approx(5.2)
    assert len(vs.lines) == 2 and vs.drivable_area is not None
    # polygon through the centres of the boundary cells (cols 10..29)
    assert vs.drivable_area[:, 1].max() == pytest.approx(13.5) and vs.drivable_area[:, 1].min() == pytest.approx(-5.5)

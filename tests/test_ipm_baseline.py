"""IPM baseline (autonomy_perception.ipm_baseline): asymmetric fixtures in the network's raster
convention (row 0 = front, column 0 = left; autonomy_stack/bev_grid.py), a missing camera,
objects, and end to end on a tiny simulator sequence with semantic images."""
import numpy as np
import pytest

from autonomy_perception.ipm_baseline import (SEG_LAYERS, IPMBaseline, SemanticClasses,
                                              ground_hits)
from autonomy_perception.network.config import load_model_config
from autonomy_stack.paths import config_file
from autonomy_stack.vector_space import ObjectClass

SEM = SemanticClasses()
DRV, LANE, EDGE = (SEG_LAYERS.index(k) for k in ("drivable", "lane", "edge"))


@pytest.fixture(scope="module")
def cfg():
    return load_model_config(config_file("perception_model_tiny.yaml"))


@pytest.fixture(scope="module")
def ipm(cfg):
    return IPMBaseline.from_config(cfg)


def _scene(ipm, cam_names, paint):
    """Semantic images of flat ground: grass everywhere, sky above the horizon; in the
    cameras `cam_names`, `paint(x, y)` -> class id (or 0 = keep grass) per ground point."""
    N, H, W = len(ipm.cameras), ipm.H, ipm.W
    sem = np.full((N, H, W), SEM.ground, np.uint8)
    v, u = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    for n, cam in enumerate(ipm.cameras):
        p, down = ground_hits(cam, u, v)
        sem[n][~down] = SEM.sky
        if cam.name in cam_names:
            cls = paint(p[..., 0], p[..., 1])
            sem[n][down & (cls > 0)] = cls[down & (cls > 0)]
    return sem


def _front_left_patch(x, y):
    """Asphalt on x in [12, 20], y in [2, 7] (front-left, inside the main camera's view)."""
    return np.where((x >= 12) & (x <= 20) & (y >= 2) & (y <= 7), SEM.road, 0)


def _right_lane_line(x, y):
    """Lane paint 0.2 m wide at y = -3.5 (right), x in [5, 20]."""
    return np.where((x >= 5) & (x <= 20) & (np.abs(y + 3.5) <= 0.1), SEM.lane_marking, 0)


def test_semantic_classes_are_the_simulators():
    from autonomy_simulator import rendering as r
    assert (SEM.none, SEM.sky, SEM.ground, SEM.road, SEM.lane_marking, SEM.road_edge, SEM.curb,
            SEM.object_base) == (r.SEM_NONE, r.SEM_SKY, r.SEM_GROUND, r.SEM_ROAD,
                                 r.SEM_LANE_MARKING, r.SEM_ROAD_EDGE, r.SEM_CURB,
                                 r.SEM_OBJECT_BASE)


def test_lookup_uses_the_networks_cameras_and_raster(ipm, cfg):
    assert ipm.names == cfg["cameras"] and (ipm.H, ipm.W) == tuple(cfg["input_hw"])
    assert ipm.grid.shape == (48, 48)
    cov = ipm.coverage()
    main = ipm.names.index("main")
    rear = ipm.names.index("rear")
    # main looks forward: front rows only; rear camera: rear rows only
    assert cov[main, :20].any() and not cov[main, 26:].any()
    assert cov[rear, 28:].any() and not cov[rear, :22].any()
    assert cov.any(0).all()


def test_front_left_patch_seen_by_main_lands_front_left(ipm):
    sem = _scene(ipm, ["main"], _front_left_patch)
    seg = ipm.segment(sem)
    d = seg[DRV] >= 0.5
    # x 20..12 -> rows 4..12, y 7..2 -> columns 17..22 (row 0 front, column 0 left)
    assert d[5:11, 18:21].all()
    rows, cols = np.nonzero(d)
    assert rows.min() >= 3 and rows.max() <= 12 and cols.min() >= 16 and cols.max() <= 22
    assert not d[:, 24:].any(), "nothing drivable front-right / right"
    assert not d[24:, :].any(), "nothing drivable behind"
    xy = ipm.grid.cell_centres()[d]
    assert (xy[:, 0] > 10).all() and (xy[:, 1] > 0.5).all()
    assert not (seg[LANE] >= 0.5).any() and not (seg[EDGE] >= 0.5).any()


def test_lane_line_on_the_right_lands_in_its_column(ipm):
    seg = ipm.segment(_scene(ipm, ["main"], _right_lane_line))
    lane = seg[LANE] >= 0.5
    # y = -3.5 -> column 27; x 20..5 -> rows 4..19 (beyond ~17 m the 0.2 m line is
    # narrower than a pixel of the 128-pixel main camera and may fall between pixel centres)
    assert lane[8:18, 27].all()
    assert not lane[:, :24].any() and not lane[22:].any()
    assert set(np.nonzero(lane)[1]) <= {26, 27, 28}


def test_missing_camera_observes_nothing(ipm):
    main = ipm.names.index("main")
    sem = _scene(ipm, ["main"], _front_left_patch)
    present = np.ones(len(ipm.cameras), bool)
    present[main] = False
    # the other cameras see grass there: without main the patch is gone
    assert not (ipm.segment(sem, present)[DRV] >= 0.5).any()
    # a missing camera's image content is ignored, whatever it holds
    sem2 = sem.copy()
    sem2[main] = SEM.road
    assert np.array_equal(ipm.segment(sem2, present), ipm.segment(sem, present))
    # when the fisheye sees the patch too, it is still found without main
    sem3 = _scene(ipm, ["main", "fisheye"], _front_left_patch)
    d = ipm.segment(sem3, present)[DRV] >= 0.5
    assert d[6:10, 18:21].all() and not d[:, 24:].any()
    # no camera at all: empty rasters
    assert not ipm.segment(sem, np.zeros(len(ipm.cameras), bool)).any()
    with pytest.raises(ValueError, match="main"):
        ipm.segment(sem[:-1])


def test_object_pixels_are_not_ground(ipm):
    """Object pixels say nothing about the ground: a car over the patch hides it; the same
    pixels as asphalt show it."""
    def car(x, y):
        return np.where((x >= 12) & (x <= 20) & (y >= 2) & (y <= 7),
                        SEM.object_base + int(ObjectClass.CAR), 0)
    sem = _scene(ipm, ["main"], car)
    assert not (ipm.segment(sem)[DRV] >= 0.5).any()


def test_objects_from_ipm_front_left(ipm):
    def car(x, y):
        return np.where((np.abs(x - 10) <= 1.0) & (np.abs(y - 5) <= 1.0),
                        SEM.object_base + int(ObjectClass.CAR), 0)
    sem = _scene(ipm, ["main"], car)
    dets = ipm.objects(sem)
    assert len(dets) == 1
    d = dets[0]
    assert d.object_class == ObjectClass.CAR and d.x > 0 and d.y > 0
    assert np.hypot(d.x - 10, d.y - 5) < 2.0 and 0 < d.score <= 1
    present = np.ones(len(ipm.cameras), bool)
    present[ipm.names.index("main")] = False
    assert ipm.objects(sem, present) == []


@pytest.mark.timeout(300)
def test_end_to_end_on_a_simulated_sequence(tmp_path, cfg):
    """The simulator's own semantic images of 2 frames, rectified and lifted: drivable IoU
    far above chance (and above predicting every cell drivable)."""
    from autonomy_simulator import labels as lab
    from autonomy_simulator.dataset import DatasetWriter
    from autonomy_tools.ipm_baseline import evaluate_ipm, iter_ipm_predictions
    w = DatasetWriter(tmp_path / "sem", width=128, height=96, frames=2, stride=0.1, seed=1000,
                      scenario_names=["random"], bev=lab.BevSpec(48.0, 48.0, 1.0, -24.0, -24.0),
                      semantic=True)
    w.run(1, progress=False)
    w.close()
    res = evaluate_ipm(tmp_path / "sem", cfg)
    assert res["frames"] == 2
    gt = np.concatenate([p["labels"].seg[p["t"], DRV] >= 0.5 for p in
                         iter_ipm_predictions(tmp_path / "sem", cfg, objects=False)])
    chance = gt.mean()          # IoU of "everything drivable"
    assert 0.02 < chance < 0.8
    assert res["drivable_iou"] > max(0.6, 2 * chance), (res["drivable_iou"], chance)
    for k in ("lane_iou", "edge_iou", "vehicle_ap"):
        assert k in res

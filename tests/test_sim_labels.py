"""Simulator labels: BEV rasters agree with the ground-truth polygons/lines, ego-frame
transform is consistent, visibility marks occluded objects without dropping them, worlds
have connected lanes and one drivable polygon, scenarios build and step."""
import math

import numpy as np
import pytest

from autonomy_simulator import geometry as geo
from autonomy_simulator import labels as lab
from autonomy_simulator import scenarios, worlds
from autonomy_simulator.simulation import Simulation, to_ego_frame
from autonomy_stack.geometry import arc_length, project_to_polyline
from autonomy_stack.vector_space import EgoState, LineType


@pytest.mark.parametrize("builder", [worlds.intersection, worlds.parking_lot, worlds.road])
def test_bev_drivable_raster_matches_polygon(builder):
    w = builder(3)
    ego = EgoState(x=float(w.drivable_polygons[0][:, 0].mean()), y=float(w.drivable_polygons[0][:, 1].mean()),
                   yaw=0.4)
    v = to_ego_frame(w.vector_space(), ego)
    spec = lab.BevSpec(80.0, 60.0, 0.5, -40.0, -30.0)
    r = lab.bev_rasters(v, spec)
    assert r["drivable"].shape == (spec.ny, spec.nx)
    centers = spec.cell_centers().reshape(-1, 2)
    inside = geo.point_in_polygon(centers, v.drivable_area).reshape(spec.ny, spec.nx)
    assert inside.sum() > 200, "test scene should contain drivable area"
    agree = (inside == (r["drivable"] > 0)).mean()
    assert agree > 0.98, agree
    # cells far (> 1 cell) from the boundary must agree exactly
    import cv2
    poly = v.drivable_area.astype(np.float32).reshape(-1, 1, 2)
    seg_d = np.array([abs(cv2.pointPolygonTest(poly, (float(x), float(y)), True))
                      for x, y in centers]).reshape(inside.shape)
    far = seg_d > 1.5 * spec.cell
    assert np.array_equal(inside[far], r["drivable"][far] > 0)


def _dist_to_polyline(q, pts):
    s = arc_length(pts)
    _, d = project_to_polyline(pts, s, q)
    return np.abs(d)


def test_bev_lane_lines_and_edges_lie_on_their_polylines():
    w = worlds.intersection(1)
    ego = EgoState(x=-20.0, y=-3.0, yaw=0.0)
    v = to_ego_frame(w.vector_space(), ego)
    spec = lab.BevSpec()
    r = lab.bev_rasters(v, spec)
    centers = spec.cell_centers()
    for layer, types in (("lane_lines", lab.PAINT_TYPES), ("road_edges", lab.EDGE_TYPES)):
        on = centers[r[layer] > 0]
        assert len(on) > 50, layer
        lines = [l.points[:, :2] for l in v.lines if l.line_type in types]
        d = np.min([_dist_to_polyline(on, p) if len(p) > 1 else np.full(len(on), 1e9) for p in lines], axis=0)
        assert d.max() < spec.cell * 1.5 + spec.line_width, (layer, d.max())
    assert not r["lane_lines"][r["road_edges"] > 0].all()


def test_objects_raster_and_ego_frame_and_visibility():
    sc = scenarios.make("intersection_occlusion", seed=2)
    sim = sc.sim
    for _ in range(50):
        sim.step()
    v = sim.ground_truth("base_link")
    e = sim.ego
    for o_w, o_e in zip(sim.objects(), v.objects):
        x = math.cos(e.yaw) * (o_w.x - e.x) + math.sin(e.yaw) * (o_w.y - e.y)
        assert abs(o_e.x - x) < 1e-9 and o_e.id == o_w.id and o_e.speed == o_w.speed
    spec = lab.BevSpec()
    r = lab.bev_rasters(v, spec)
    inside = [o for o in v.objects if lab.in_grid(o, spec) and o.length > 1.0]
    assert inside
    for o in inside:
        col = int((o.x - spec.origin_x) / spec.cell)
        row = int((o.y - spec.origin_y) / spec.cell)
        assert r["objects"][row, col] == 1, o
    vis = {inside[0].id: 120}
    labels = lab.object_labels(v.objects, vis, spec)
    assert len(labels) == len([o for o in v.objects if lab.in_grid(o, spec)])
    by_id = {o.id: o for o in labels}
    assert by_id[inside[0].id].visible_pixels == 120 and not by_id[inside[0].id].occluded
    assert all(o.occluded for o in labels if o.id != inside[0].id)   # kept, marked occluded
    arr = lab.objects_to_array(labels)
    assert arr.shape == (len(labels), len(lab.OBJECT_FIELDS))


@pytest.mark.parametrize("builder", [worlds.road, worlds.intersection, worlds.narrow_street,
                                     worlds.parking_lot])
def test_worlds_lanes_are_connected_and_seeded(builder):
    w = builder(5)
    for lid, ln in w.lanes.items():
        for s in ln.successors:
            assert np.hypot(*(w.lanes[s].centerline[0] - ln.centerline[-1])) < 0.5
            assert lid in w.lanes[s].predecessors
        for nb in (ln.left, ln.right):
            if nb is not None:
                assert abs(project_to_polyline(w.lanes[nb].centerline, w.lanes[nb].s, ln.centerline[len(ln.centerline) // 2][None])[1][0]) \
                    == pytest.approx(0.5 * (ln.width + w.lanes[nb].width), abs=0.3)
    assert len(w.drivable_polygons) == 1
    curbs = [c for c in w.curbs if c.line_type == LineType.CURB]
    assert all(c.height > 0 for c in curbs)
    w2 = builder(5)
    assert [o.x for o in w.static_objects] == [o.x for o in w2.static_objects]
    w3 = builder(6)
    assert [o.x for o in w.static_objects] != [o.x for o in w3.static_objects]
    d = w.lanes_dict()
    assert set(next(iter(d.values()))) >= {"centerline", "width", "left", "right", "successors", "turn"}


def test_parking_lot_geometry_is_plain_data():
    w = worlds.parking_lot(2)
    lot = w.parking.as_dict()
    assert not lot["bay_occupied"][lot["target_bay"]]
    bay = np.array(lot["bays"][lot["target_bay"]])
    gx, gy, gh = lot["goal_pose"]
    assert geo.point_in_polygon(np.array([[gx, gy]]), bay)[0]
    assert all(len(c) >= 2 for c in lot["curbs"]) and lot["static_boxes"]


@pytest.mark.parametrize("name", sorted(scenarios.CATALOGUE))
def test_scenarios_build_step_and_expose_goal_and_route(name):
    sc = scenarios.make(name, seed=4)
    sim = sc.sim
    for _ in range(25):
        sim.step()
    assert len(sc.goal) == 3 and all(math.isfinite(v) for v in sc.goal)
    assert sc.route and all(l in sim.world.lanes for l in sc.route)
    assert sc.route_path.shape[1] == 2 and len(sc.route_path) > 5
    snap = sim.snapshot()
    assert snap.objects and snap.drivable_polygons
    assert all(math.isfinite(o.x) and math.isfinite(o.yaw_rate) for o in snap.objects)
    k = sim.kinematics()
    assert math.isfinite(k.speed) and abs(sim.t - 0.5) < 1e-9

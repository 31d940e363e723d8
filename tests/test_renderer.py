"""The offscreen rig renderer: occlusion, labels vs images, fisheye field of view, depth.

Scenes are built by hand here (a straight road along +x) so that every expected value is
known; the renderer runs on Mesa llvmpipe through EGL at a low resolution to stay fast."""
import math

import numpy as np
import pytest

from autonomy_vehicle.camera_models import load_rig, scale_rig
from autonomy_simulator.scene import PaintedLine, SceneSnapshot
from autonomy_stack.vector_space import EgoState, LineType, ObjectClass, ObjectState, RoadLine

from autonomy_simulator import rendering
from autonomy_simulator.rendering import (SEM_CURB, SEM_LANE_MARKING, SEM_ROAD, SEM_SKY,
                                          RigRenderer, label_visibility,
                                          semantic_of_object_class)

W, H = 320, 240


def straight_road_scene(objects=(), colors=None, ego=EgoState()):
    x = np.array([-300.0, 400.0])
    def line(y):
        return np.stack([x, [y, y]], 1)
    painted = [PaintedLine(RoadLine(1, LineType.LANE_DASHED_WHITE, line(1.75)), 0.15,
                           (0.92, 0.92, 0.9), 3.0, 6.0),
               PaintedLine(RoadLine(2, LineType.LANE_SOLID_YELLOW, line(-1.75)), 0.15,
                           (0.95, 0.78, 0.15)),
               PaintedLine(RoadLine(3, LineType.LANE_SOLID_WHITE, line(5.1)), 0.15),
               PaintedLine(RoadLine(4, LineType.LANE_SOLID_WHITE, line(-5.1)), 0.15)]
    curbs = [RoadLine(5, LineType.CURB, line(5.35), height=0.15),
             RoadLine(6, LineType.CURB, line(-5.35), height=0.15)]
    edges = [RoadLine(7, LineType.ROAD_EDGE, line(5.25)), RoadLine(8, LineType.ROAD_EDGE, line(-5.25))]
    poly = np.array([[-300, -5.25], [400, -5.25], [400, 5.25], [-300, 5.25]], float)
    return SceneSnapshot(0.0, ego, [poly], painted, curbs, edges, list(objects),
                         dict(colors or {}), seed=3)


def box(id_, cls, x, y, L, Wd, Hh, yaw=0.0):
    return ObjectState(id=id_, object_class=cls, x=x, y=y, yaw=yaw, length=L, width=Wd,
                       height=Hh, z=Hh / 2)


@pytest.fixture(scope="module")
def rig():
    return scale_rig(load_rig(), W, H)


@pytest.fixture(scope="module")
def rr(rig):
    r = RigRenderer(rig)
    yield r
    r.release()


def box_vertices_3d(o):
    """8x3 vertices of an object's box (footprint corners at the ground and at its height)."""
    c = o.corners()
    return np.vstack([np.hstack([c, np.zeros((4, 1))]), np.hstack([c, np.full((4, 1), o.height)])])


def test_front_box_hides_back_box(rr):
    wall = box(1, ObjectClass.BARRIER, 15.0, 0.0, 1.0, 2.4, 2.6)
    hidden = box(2, ObjectClass.BARRIER, 30.0, 0.0, 1.0, 1.0, 1.0)
    colors = {1: (0.1, 0.8, 0.1), 2: (0.9, 0.1, 0.9)}
    f = rr.render(straight_road_scene([wall, hidden], colors))
    assert f.visible_pixels[1] > 500
    assert f.visible_pixels[2] == 0
    for cam in f.cameras.values():
        assert not (cam.instance == 2).any()
        # no magenta pixels anywhere
        rgb = cam.rgb.astype(int)
        assert not ((rgb[..., 0] > 150) & (rgb[..., 2] > 150) & (rgb[..., 1] < 60)).any()
    labelled = label_visibility([wall, hidden], f)
    assert labelled[1].occluded and labelled[1].visible_pixels == 0
    assert not labelled[0].occluded
    # without the wall the same box is seen (by the forward cameras)
    f2 = rr.render(straight_road_scene([hidden], colors))
    assert f2.visible_pixels[2] > 20
    assert f2.cameras["main"].visible_pixels[2] > 5
    assert f2.cameras["rear"].visible_pixels[2] == 0


@pytest.mark.parametrize("cam_name,pos", [("main", (12.0, 2.0)), ("left_pillar", (6.0, 6.5)),
                                          ("fisheye", (6.0, -5.0)), ("rear", (-9.0, 1.5)),
                                          ("right_repeater", (-6.0, -3.5))])
def test_labelled_car_covers_its_projected_box(rr, rig, cam_name, pos):
    car = box(7, ObjectClass.CAR, pos[0], pos[1], 4.5, 1.9, 1.5, yaw=0.3)
    f = rr.render(straight_road_scene([car], {7: (0.85, 0.05, 0.05)}), cameras=[cam_name])
    cam = rig[cam_name]
    fr = f.cameras[cam_name]
    mask = fr.instance == 7
    assert mask.sum() > 100
    assert fr.visible_pixels[7] == int(mask.sum())
    assert (fr.semantic[mask] == semantic_of_object_class(ObjectClass.CAR)).all()
    # the projection of the labelled 3-D box bounds the car's pixels ...
    uv, valid = cam.project(box_vertices_3d(car), check_image=False)
    assert valid.all()
    u0, v0 = uv.min(0) - 1.5
    u1, v1 = uv.max(0) + 1.5
    vv, uu = np.nonzero(mask)
    inside = (uu >= u0) & (uu <= u1) & (vv >= v0) & (vv <= v1)
    assert inside.mean() > 0.99
    # ... and the car fills a good part of it (the projected box of a box-like car)
    uc0, vc0 = max(u0, 0), max(v0, 0)
    uc1, vc1 = min(u1, W - 1), min(v1, H - 1)
    assert mask.sum() > 0.35 * (uc1 - uc0) * (vc1 - vc0)
    # the pixels of its instance have its colour (red body; glass and tyres are dark)
    rgb = fr.rgb[mask].astype(float)
    bright = rgb[rgb.max(1) > 60]
    assert len(bright) > 0.3 * len(rgb)
    assert (bright[:, 0] > 1.5 * bright[:, 1]).mean() > 0.8
    # labels are consistent with depth: the car is nearer than the road behind it
    assert np.nanmax(fr.depth[mask]) < np.hypot(*pos) + 5.0


def test_fisheye_sees_about_180_degrees(rr, rig):
    cam = rig["fisheye"]
    c = cam.position
    poles = []
    for i, ang in enumerate((87.0, -87.0, 120.0)):
        a = math.radians(ang)
        poles.append(box(20 + i, ObjectClass.POLE, c[0] + 6 * math.cos(a), c[1] + 6 * math.sin(a),
                         0.3, 0.3, 4.0))
    f = rr.render(straight_road_scene(poles), cameras=["fisheye", "main"])
    fe = f.cameras["fisheye"]
    assert fe.visible_pixels[20] > 10 and fe.visible_pixels[21] > 10
    assert fe.visible_pixels[22] == 0          # behind the lens
    assert f.cameras["main"].visible_pixels[20] == 0
    cols_left = np.nonzero((fe.instance == 20).any(0))[0]
    cols_right = np.nonzero((fe.instance == 21).any(0))[0]
    assert cols_left.max() < 0.1 * W and cols_right.min() > 0.9 * W
    # corners outside the image circle are empty, the sky is above the horizon
    assert fe.semantic[0, 0] == 0 and np.isnan(fe.depth[0, 0])
    assert fe.semantic[int(0.2 * H), W // 2] == SEM_SKY


def test_depth_matches_known_geometry(rr, rig):
    wall = box(3, ObjectClass.BARRIER, 25.5, 0.0, 1.0, 12.0, 8.0)
    f = rr.render(straight_road_scene([wall]), cameras=["main", "rear"])
    cam = rig["main"]
    fr = f.cameras["main"]
    # centre pixel: the optical axis hits the wall face x = 25 at range (25 - x_c)/cos(pitch)
    axis = cam.optical_axis_base
    rng_expected = (25.0 - cam.position[0]) / axis[0]
    z_expected = rng_expected            # along the optical axis
    u, v = cam.K[0, 2], cam.K[1, 2]
    d = fr.depth[int(round(v)), int(round(u))]
    assert d == pytest.approx(z_expected, rel=0.01)
    # a ground pixel of the rear camera: intersect its ray with z = 0
    rc = rig["rear"]
    rr_ = f.cameras["rear"]
    uv = np.array([[W / 2, H * 0.8]])
    ray_c = rc.pixel_rays(uv)[0]
    ray_b = rc.T_base_camera[:3, :3] @ ray_c
    t = -rc.position[2] / ray_b[2]
    assert rr_.semantic[int(H * 0.8), W // 2] == SEM_ROAD
    assert rr_.range[int(H * 0.8), W // 2] == pytest.approx(t, rel=0.02)
    assert rr_.depth[int(H * 0.8), W // 2] == pytest.approx(t * ray_c[2], rel=0.02)
    # the sky has infinite depth
    assert np.isinf(fr.depth[0, W // 2])


def test_road_paint_and_curbs_are_labelled(rr):
    f = rr.render(straight_road_scene(), cameras=["main", "left_repeater"])
    sem = f.cameras["main"].semantic
    assert (sem == SEM_ROAD).mean() > 0.15
    assert (sem == SEM_LANE_MARKING).sum() > 50
    assert (sem == SEM_CURB).sum() > 20
    assert (sem[: H // 4] == SEM_SKY).mean() > 0.9
    assert (f.cameras["left_repeater"].semantic == SEM_LANE_MARKING).sum() > 20


def test_mounting_error_moves_the_image(rig):
    from autonomy_vehicle.camera_models import rotvec_to_matrix
    wall = box(3, ObjectClass.BARRIER, 20.0, 0.0, 1.0, 1.0, 6.0)
    scene = straight_road_scene([wall])
    r = RigRenderer({"main": rig["main"]})
    cols0 = np.nonzero((r.render(scene).cameras["main"].instance == 3).any(0))[0]
    r.set_rig({"main": rig["main"].with_mounting_error(rotvec_to_matrix([0, math.radians(3), 0]),
                                                       [0, 0, 0])})
    cols1 = np.nonzero((r.render(scene).cameras["main"].instance == 3).any(0))[0]
    r.release()
    shift = cols1.mean() - cols0.mean()
    expected = -rig["main"].K[0, 0] * math.tan(math.radians(3))
    assert shift == pytest.approx(expected, abs=2.0)


@pytest.mark.parametrize("cam_name", ["fisheye", "rear", "main", "left_repeater"])
def test_ground_range_matches_every_pixel(rr, rig, cam_name):
    """Every ground pixel, over all cube faces behind the lens model, has the range of its
    ray's intersection with the ground plane (catches seams and mis-oriented faces)."""
    f = rr.render(straight_road_scene(), cameras=[cam_name])
    cam = rig[cam_name]
    fr = f.cameras[cam_name]
    ground = np.isin(fr.semantic, [SEM_ROAD, SEM_LANE_MARKING, rendering.SEM_GROUND,
                                   rendering.SEM_ROAD_EDGE])
    vv, uu = np.nonzero(ground)
    assert len(vv) > 0.2 * W * H
    rays = rendering.dense_pixel_rays(cam)[vv, uu]
    rb = rays @ cam.T_base_camera[:3, :3].T
    t = (cam.position[2] + 0.005) / -rb[:, 2]        # the ground quad lies at z = -0.005
    # closer than 25 m (3 deg below the horizon; further out a 0.1 px sampling offset of
    # this 320x240 fisheye already changes the range by a few percent)
    near = t < 25.0
    rel = np.abs(fr.range[vv, uu] - t)[near] / t[near]
    assert near.sum() > 0.1 * W * H
    assert np.median(rel) < 0.002
    assert np.percentile(rel, 98) < 0.02
    # faces of the atlas used by this camera all contribute ground pixels
    if cam_name == "fisheye":
        assert len(rr.maps[cam_name].faces) >= 4

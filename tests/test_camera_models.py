"""Camera models of the rig against OpenCV, and their round trips."""
import cv2
import numpy as np
import pytest

from autonomy_vehicle.camera_models import (CAMERA_NAMES, CameraCalibration, load_rig,
                                               rotvec_to_matrix, sample_mounting_error)


@pytest.fixture(scope="module")
def rig():
    return load_rig()


def _points_in_view(cam, n, rng, max_angle_deg=85.0):
    """Random base_link points that the camera sees (z > 0 in the camera frame)."""
    uv = np.stack([rng.uniform(0, cam.width - 1, n), rng.uniform(0, cam.height - 1, n)], 1)
    rays = cam.pixel_rays(uv)
    ok = np.isfinite(rays).all(1)
    rays = rays[ok]
    ok = np.degrees(np.arccos(np.clip(rays[:, 2], -1, 1))) < max_angle_deg
    rays = rays[ok]
    depth = rng.uniform(0.5, 80.0, len(rays))
    pc = rays * depth[:, None]
    return pc @ cam.T_base_camera[:3, :3].T + cam.T_base_camera[:3, 3]


def test_rig_has_8_distinct_cameras(rig):
    assert tuple(rig) == CAMERA_NAMES
    Ks = {tuple(np.round(c.K.ravel(), 3)) for c in rig.values()}
    Ds = {tuple(np.round(c.D, 6)) for c in rig.values()}
    assert len(Ks) == 8 and len(Ds) == 8
    for c in rig.values():
        assert (c.width, c.height) == (1280, 960)
        R = c.T_base_camera[:3, :3]
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert rig["fisheye"].distortion_model == "equidistant"
    hfov = rig["fisheye"].fov_deg()[0]
    assert 170.0 < hfov < 200.0
    assert rig["narrow"].fov_deg()[0] < rig["main"].fov_deg()[0] < hfov
    # repeaters look backwards, pillars forward-sideways, rear backwards
    assert rig["left_repeater"].optical_axis_base[0] < -0.3
    assert rig["left_repeater"].optical_axis_base[1] > 0.3
    assert rig["right_repeater"].optical_axis_base[1] < -0.3
    assert rig["left_pillar"].optical_axis_base[1] > 0.5
    assert rig["rear"].optical_axis_base[0] < -0.9
    assert rig["main"].optical_axis_base[0] > 0.99


@pytest.mark.parametrize("name", CAMERA_NAMES)
def test_projection_matches_opencv(rig, name):
    cam = rig[name]
    rng = np.random.default_rng(1)
    pts = _points_in_view(cam, 400, rng)
    assert len(pts) > 200
    uv, valid = cam.project(pts)
    assert valid.mean() > 0.98
    rvec, tvec = cam.rvec_tvec()
    obj = pts.reshape(-1, 1, 3).astype(np.float64)
    if cam.is_fisheye:
        ref, _ = cv2.fisheye.projectPoints(obj, rvec.reshape(1, 1, 3), tvec.reshape(1, 1, 3),
                                           cam.K, cam.D.reshape(4, 1))
    else:
        ref, _ = cv2.projectPoints(obj, rvec, tvec, cam.K, cam.D)
    ref = ref.reshape(-1, 2)
    err = np.abs(uv - ref).max()
    assert err < 1e-6, f"{name}: max |uv - opencv| = {err}"


@pytest.mark.parametrize("name", CAMERA_NAMES)
def test_pixel_ray_pixel_round_trip(rig, name):
    cam = rig[name]
    u, v = np.meshgrid(np.linspace(0, cam.width - 1, 41), np.linspace(0, cam.height - 1, 31))
    uv = np.stack([u.ravel(), v.ravel()], 1)
    rays = cam.pixel_rays(uv)
    ok = np.isfinite(rays).all(1)
    if cam.is_fisheye:
        assert ok.mean() > 0.8      # corners lie outside the fisheye's image circle
    else:
        assert ok.all()
    assert np.allclose(np.linalg.norm(rays[ok], axis=1), 1.0)
    back, valid = cam.project_camera(rays[ok] * 7.0)
    assert valid.all()
    assert np.abs(back - uv[ok]).max() < 1e-6
    # and the same through base_link
    pb = (rays[ok] * 3.0) @ cam.T_base_camera[:3, :3].T + cam.T_base_camera[:3, 3]
    back2, _ = cam.project(pb)
    assert np.abs(back2 - uv[ok]).max() < 1e-6


def test_pixel_rays_match_opencv_undistort(rig):
    cam = rig["main"]
    uv = np.array([[10.0, 20.0], [640.0, 480.0], [1200.0, 900.0]])
    ref = cv2.undistortPoints(uv.reshape(-1, 1, 2), cam.K, cam.D, None, None, None,
                              (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-14))
    ref = ref.reshape(-1, 2)
    rays = cam.pixel_rays(uv)
    assert np.abs(rays[:, :2] / rays[:, 2:] - ref).max() < 1e-8


def test_fisheye_sees_sideways(rig):
    cam = rig["fisheye"]
    # points 89 degrees to the left and right of the optical axis (and slightly ahead)
    for side in (-1, 1):
        a = np.radians(89.0)
        pc = np.array([[side * np.sin(a), 0.0, np.cos(a)]]) * 10
        uv, valid = cam.project_camera(pc)
        assert valid[0]
        assert (uv[0, 0] < 40) if side < 0 else (uv[0, 0] > cam.width - 40)
    # behind the camera: invalid
    _, valid = cam.project_camera(np.array([[0.0, 0.0, -5.0]]))
    assert not valid[0]


def test_behind_pinhole_is_invalid(rig):
    cam = rig["main"]
    _, valid = cam.project_camera(np.array([[0.0, 0.0, -5.0], [0.0, 0.0, 5.0]]))
    assert list(valid) == [False, True]


def test_scaled_keeps_field_of_view(rig):
    for cam in rig.values():
        small = cam.scaled(320, 240)
        assert (small.width, small.height) == (320, 240)
        h0, v0 = cam.fov_deg()
        h1, v1 = small.fov_deg()
        assert abs(h0 - h1) < 0.2 and abs(v0 - v1) < 0.2
        # the same 3-D point lands at the scaled pixel
        pts = _points_in_view(cam, 50, np.random.default_rng(2), 60.0)
        uv0, _ = cam.project(pts)
        uv1, _ = small.project(pts)
        assert np.allclose((uv0 + 0.5) / 4.0 - 0.5, uv1, atol=1e-6)


def test_mounting_error_is_seeded_and_small(rig):
    a = sample_mounting_error(rig, 7, rot_std_deg=0.5, trans_std_m=0.01)
    b = sample_mounting_error(rig, np.random.default_rng(7), rot_std_deg=0.5, trans_std_m=0.01)
    c = sample_mounting_error(rig, 8, rot_std_deg=0.5, trans_std_m=0.01)
    for n in rig:
        assert np.array_equal(a[n].T_base_camera, b[n].T_base_camera)
        assert not np.allclose(a[n].T_base_camera, c[n].T_base_camera)
        assert not np.allclose(a[n].T_base_camera, rig[n].T_base_camera)
        dR = rig[n].T_base_camera[:3, :3].T @ a[n].T_base_camera[:3, :3]
        ang = np.degrees(np.arccos(np.clip((np.trace(dR) - 1) / 2, -1, 1)))
        assert 0.0 < ang < 4.0
        assert np.linalg.norm(a[n].position - rig[n].position) < 0.1
        assert np.array_equal(a[n].K, rig[n].K)


def test_with_mounting_error_moves_the_image(rig):
    cam = rig["main"]
    R = rotvec_to_matrix([0.0, np.radians(1.0), 0.0])   # yaw right 1 degree (about y down)
    cocked = cam.with_mounting_error(R, [0, 0, 0])
    p = np.array([[50.0, 0.0, 1.38]])
    uv0, _ = cam.project(p)
    uv1, _ = cocked.project(p)
    # camera turned towards +x (right): the point moves left by ~fx * tan(1 deg)
    assert uv1[0, 0] - uv0[0, 0] == pytest.approx(-700 * np.tan(np.radians(1.0)), rel=0.1)


def test_bad_config_rejected():
    with pytest.raises(ValueError):
        CameraCalibration("x", 10, 10, np.eye(3), [0, 0, 0, 0], "plumb_bob")
    with pytest.raises(ValueError):
        CameraCalibration("x", 10, 10, np.eye(3), [0] * 5, "kannala")

"""Rectification core: maps against OpenCV, identity, CPU vs torch, encodings, caching,
the static TF cache and the virtual camera config."""
import math

import cv2
import numpy as np
import pytest

from autonomy_vehicle.camera_models import load_rig
from autonomy_perception.rectification import (CalibrationError, CameraGeometry, Rectifier,
                                               StaticTransformCache, build_maps,
                                               project_to_image, rectify_image,
                                               virtual_to_real)
from autonomy_perception.virtual_camera import (VirtualCamera, VirtualCameraError,
                                                load_virtual_cameras, rot_rpy,
                                                virtual_camera_from_dict)

W, H = 320, 240   # small images keep the tests fast; the geometry is resolution-independent


@pytest.fixture(scope="module")
def rig():
    return load_rig(width=W, height=H)


@pytest.fixture(scope="module")
def virtuals():
    return load_virtual_cameras(width=W, height=H)


def _rotated(geom_cal, rx_deg, ry_deg, rz_deg):
    """The rig camera with a mounting error (rotation in its own optical frame)."""
    R_err = cv2.Rodrigues(np.radians([rx_deg, ry_deg, rz_deg]))[0]
    return geom_cal.with_mounting_error(R_err, np.zeros(3))


def _texture(h, w, seed=0, channels=3):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8, w // 8, channels), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return img if channels > 1 else img.reshape(h, w)


def _cv_undistort(uv, cal, R):
    """OpenCV's undistortPoints, iterated to convergence (its default 5 iterations leave
    tenths of a pixel on strongly distorted lenses)."""
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-14)
    return cv2.undistortPoints(uv.reshape(-1, 1, 2), cal.K, cal.D, R=R,
                               criteria=crit).reshape(-1, 2)


def _bilinear(m, uv):
    """Exact bilinear sample of a float map at fractional (u, v) (inside the map)."""
    x0 = np.floor(uv[:, 0]).astype(int)
    y0 = np.floor(uv[:, 1]).astype(int)
    fx, fy = uv[:, 0] - x0, uv[:, 1] - y0
    m = m.astype(np.float64)
    return ((1 - fx) * (1 - fy) * m[y0, x0] + fx * (1 - fy) * m[y0, x0 + 1]
            + (1 - fx) * fy * m[y0 + 1, x0] + fx * fy * m[y0 + 1, x0 + 1])


# ------------------------------------------------------------------ against OpenCV
@pytest.mark.parametrize("name", ["main", "left_pillar", "left_repeater", "rear"])
def test_pinhole_maps_match_opencv(rig, virtuals, name):
    """plumb_bob and rational_polynomial: our maps == cv2.initUndistortRectifyMap."""
    cal = _rotated(rig[name], 0.7, -0.4, 0.5)
    v = virtuals[name]
    geom = CameraGeometry.from_calibration(cal)
    mapx, mapy = build_maps(geom, v)
    R = v.R_base_virtual.T @ cal.T_base_camera[:3, :3]     # real camera -> virtual
    cx, cy = cv2.initUndistortRectifyMap(cal.K, cal.D, R, v.K, (v.width, v.height), cv2.CV_32FC1)
    ok = mapx > -100
    assert ok.mean() > 0.9
    assert np.abs(mapx[ok] - cx[ok]).max() < 2e-3
    assert np.abs(mapy[ok] - cy[ok]).max() < 2e-3


@pytest.mark.parametrize("name", ["main", "left_pillar", "right_repeater", "rear"])
def test_point_round_trip_pinhole(rig, virtuals, name):
    """A 3-D point seen by the real camera: OpenCV undistortPoints + the virtual projection
    give a virtual pixel; our map at that pixel points back at the real pixel, and the
    rectified image of a dot has its dot there."""
    cal = _rotated(rig[name], -0.6, 0.9, 0.3)
    v = virtuals[name]
    rng = np.random.default_rng(1)
    # points in front of the real camera, inside the central part of its image
    uv_real = np.column_stack([rng.uniform(0.2, 0.8, 40) * W, rng.uniform(0.2, 0.8, 40) * H])
    rays = cal.pixel_rays(uv_real)
    pts_base = cal.T_base_camera[:3, :3] @ (rays.T * rng.uniform(5, 50, 40)) \
        + cal.T_base_camera[:3, 3:4]
    rvec, tvec = cal.rvec_tvec()
    proj, _ = cv2.projectPoints(pts_base.T.reshape(-1, 1, 3), rvec, tvec, cal.K, cal.D)
    proj = proj.reshape(-1, 2)
    assert np.abs(proj - uv_real).max() < 1e-3
    R = v.R_base_virtual.T @ cal.T_base_camera[:3, :3]
    norm = _cv_undistort(proj, cal, R)
    uv_virtual, ok = v.project(np.column_stack([norm, np.ones(len(norm))]))
    assert ok.sum() >= 30
    geom = CameraGeometry.from_calibration(cal)
    u, vv, valid = virtual_to_real(geom, v, uv_virtual[ok])
    assert valid.all()
    assert np.abs(np.column_stack([u, vv]) - proj[ok]).max() < 1e-4
    # the (float) maps sampled at the virtual pixel agree up to map interpolation
    mapx, mapy = build_maps(geom, v)
    back = np.column_stack([_bilinear(mapx, uv_virtual[ok]), _bilinear(mapy, uv_virtual[ok])])
    assert np.abs(back - proj[ok]).max() < 0.1
    # end to end through the warp: a dot at a real pixel appears at the virtual pixel
    dot = np.round(proj[ok][0]).astype(int)
    img = np.zeros((H, W), np.uint8)
    cv2.circle(img, tuple(int(x) for x in dot), 3, 255, -1)
    out = rectify_image(img, cal, v)
    norm1 = _cv_undistort(dot.reshape(1, 2).astype(float), cal, R).reshape(2)
    target, _ = v.project(np.array([[norm1[0], norm1[1], 1.0]]))
    ys, xs = np.nonzero(out > 0)
    wts = out[ys, xs].astype(float)
    centroid = np.array([(xs * wts).sum() / wts.sum(), (ys * wts).sum() / wts.sum()])
    assert np.linalg.norm(centroid - target[0]) < 0.5


def test_fisheye_round_trip_and_maps(rig, virtuals):
    """equidistant real camera: OpenCV's fisheye undistortPoints + the virtual (f-theta)
    projection; and against cv2.fisheye.initUndistortRectifyMap for a pinhole virtual."""
    cal = _rotated(rig["fisheye"], 0.8, 0.5, -0.7)
    v = virtuals["fisheye"]
    assert v.model == "equidistant"
    geom = CameraGeometry.from_calibration(cal)
    R = v.R_base_virtual.T @ cal.T_base_camera[:3, :3]
    rng = np.random.default_rng(2)
    # pixels within ~75 deg of the axis (OpenCV's fisheye undistort works for z > 0)
    uv_real = np.column_stack([cal.K[0, 2] + rng.uniform(-0.35, 0.35, 50) * W,
                               cal.K[1, 2] + rng.uniform(-0.35, 0.35, 50) * H])
    norm = cv2.fisheye.undistortPoints(uv_real.reshape(-1, 1, 2), cal.K, cal.D,
                                       R=R).reshape(-1, 2)
    uv_virtual, ok = v.project(np.column_stack([norm, np.ones(len(norm))]))
    assert ok.all()
    mapx, mapy = build_maps(geom, v)
    u, vv, valid = virtual_to_real(geom, v, uv_virtual)
    assert valid.all()
    assert np.abs(np.column_stack([u, vv]) - uv_real).max() < 1e-4
    back = np.column_stack([_bilinear(mapx, uv_virtual), _bilinear(mapy, uv_virtual)])
    assert np.abs(back - uv_real).max() < 0.1
    # a pinhole virtual camera looking the same way: compare with OpenCV's fisheye maps
    vp = VirtualCamera("fisheye", W, H, np.array([[120.0, 0, W / 2 - .5], [0, 120.0, H / 2 - .5],
                                                  [0, 0, 1]]), "pinhole", v.T_base_virtual)
    mx, my = build_maps(geom, vp)
    cx, cy = cv2.fisheye.initUndistortRectifyMap(cal.K, cal.D, R, vp.K, (W, H), cv2.CV_32FC1)
    ok = mx > -100
    assert ok.mean() > 0.95
    assert np.abs(mx[ok] - cx[ok]).max() < 2e-3 and np.abs(my[ok] - cy[ok]).max() < 2e-3


def test_fisheye_beyond_90_degrees(rig, virtuals):
    """The 176 degree virtual fisheye: rays more than 90 degrees off the real axis map to
    the real image rim (OpenCV cannot do these; checked against the rig's own projection)."""
    cal = rig["fisheye"]
    v = virtuals["fisheye"]
    geom = CameraGeometry.from_calibration(cal)
    R_cv = cal.T_base_camera[:3, :3].T @ v.R_base_virtual
    uv_v = np.array([[2.0, H / 2 - 0.5], [W - 3.0, H / 2 - 0.5]])
    rays = v.pixel_rays(uv_v) @ R_cv.T
    ang = np.degrees(np.arctan2(np.hypot(rays[:, 0], rays[:, 1]), rays[:, 2]))
    assert ang.max() > 86.0
    u, vv, ok = project_to_image(geom, rays)
    ref, ref_ok = cal.project_camera(rays, check_image=False)
    assert ok.all() and ref_ok.all()
    assert np.allclose(np.column_stack([u, vv]), ref, atol=1e-6)


# ------------------------------------------------------------------ identity
def test_identity_when_virtual_equals_real():
    """Zero mounting error, identical intrinsics, no distortion: output == input."""
    K = np.array([[250.0, 0, 159.5], [0, 250.0, 119.5], [0, 0, 1]])
    T = np.eye(4)
    T[:3, :3] = rot_rpy(0.0, math.radians(8), math.radians(140)) @ np.array(
        [[0, 0, 1.0], [-1, 0, 0], [0, -1, 0]])
    v = VirtualCamera("left_repeater", W, H, K, "pinhole", T)
    geom = CameraGeometry("left_repeater", W, H, K, np.zeros(5), "plumb_bob", T[:3, :3])
    img = _texture(H, W, 3)
    out = rectify_image(img, geom, v)
    assert np.abs(out.astype(int) - img).max() <= 1
    assert np.array_equal(out, img)


def test_undistort_only_matches_cv_undistort(rig):
    """Zero mounting error, same K: the warp is OpenCV's undistort (up to interpolation)."""
    cal = rig["left_repeater"]
    v = VirtualCamera("left_repeater", W, H, cal.K, "pinhole", cal.T_base_camera)
    img = _texture(H, W, 4)
    out = rectify_image(img, cal, v)
    ref = cv2.undistort(img, cal.K, cal.D)
    inner = (slice(10, H - 10), slice(10, W - 10))
    assert np.abs(out[inner].astype(float) - ref[inner]).mean() < 0.5


# ------------------------------------------------------------------ paths and formats
def test_cpu_and_torch_paths_agree(rig, virtuals):
    cal = _rotated(rig["right_pillar"], 0.5, 0.5, -0.5)
    img = _texture(H, W, 5)
    cpu = Rectifier(virtuals["right_pillar"], cal, device="cpu").rectify(img)
    tor = Rectifier(virtuals["right_pillar"], cal, device="torch-cpu").rectify(img)
    diff = np.abs(cpu.astype(float) - tor)
    assert diff.mean() < 1.0, diff.mean()
    assert np.percentile(diff, 99) <= 3
    # 16-bit through torch too
    img16 = (img[..., 0].astype(np.uint16) * 16)
    a = Rectifier(virtuals["right_pillar"], cal, device="cpu").rectify(img16)
    b = Rectifier(virtuals["right_pillar"], cal, device="torch-cpu").rectify(img16)
    assert np.abs(a.astype(float) - b).mean() < 16.0


def test_cuda_request_falls_back_with_warning(rig, virtuals):
    import torch
    if torch.cuda.is_available():
        pytest.skip("CUDA present: no fallback to test")
    with pytest.warns(RuntimeWarning, match="falling back"):
        r = Rectifier(virtuals["main"], rig["main"], device="cuda")
    assert r.device == "cpu" and r.map1 is not None


def test_encodings_and_12bit(rig, virtuals):
    cal = _rotated(rig["rear"], 0.3, -0.2, 0.4)
    r = Rectifier(virtuals["rear"], cal)
    rgb = _texture(H, W, 6)
    out_rgb = r.rectify(rgb)
    assert out_rgb.shape == (H, W, 3) and out_rgb.dtype == np.uint8
    # channel-wise identical to mono
    assert np.array_equal(out_rgb[..., 1], r.rectify(np.ascontiguousarray(rgb[..., 1])))
    mono12 = (rgb[..., 0].astype(np.uint16) << 4) | 0x0F      # 12-bit data in mono16
    out12 = r.rectify(mono12)
    assert out12.dtype == np.uint16 and out12.max() <= 4095
    out8 = r.rectify(np.ascontiguousarray(rgb[..., 0])).astype(float)
    valid = out8 > 0
    assert np.abs(out12[valid] / 16.0 - out8[valid]).mean() < 1.0
    # preallocated output is written in place
    dst = np.empty((H, W, 3), np.uint8)
    assert r.rectify(rgb, dst) is dst and np.array_equal(dst, out_rgb)
    with pytest.raises(ValueError, match="rear"):
        r.rectify(np.zeros((H + 2, W, 3), np.uint8))


def test_maps_rebuilt_only_on_change(rig, virtuals):
    cal = rig["main"]
    r = Rectifier(virtuals["main"], cal)
    assert r.map_builds == 1
    assert r.set_calibration(cal.copy()) is False
    assert r.map_builds == 1
    assert r.set_calibration(_rotated(cal, 0.2, 0, 0)) is True
    assert r.map_builds == 2


def test_bad_calibrations_rejected(rig, virtuals):
    cal = rig["main"]
    geom = CameraGeometry.from_calibration(cal)
    r = Rectifier(virtuals["main"], geom)
    bad = CameraGeometry("main", W, H, geom.K.copy(), geom.D.copy(), "plumb_bob",
                         geom.R_base_camera)
    bad.K[0, 0] = np.nan
    with pytest.raises(CalibrationError, match="main.*NaN"):
        r.set_calibration(bad)
    assert r.ready and r.map_builds == 1          # previous maps kept
    with pytest.raises(CalibrationError, match="unsupported distortion"):
        r.set_calibration(CameraGeometry("main", W, H, geom.K, geom.D, "kannala", geom.R_base_camera))
    with pytest.raises(CalibrationError, match="needs 8"):
        r.set_calibration(CameraGeometry("main", W, H, geom.K, geom.D, "rational_polynomial",
                                         geom.R_base_camera))


# ------------------------------------------------------------------ TF cache, config
def test_static_transform_cache_chains():
    c = StaticTransformCache()
    assert c.lookup("base_link", "camera_main") is None
    s = math.sqrt(0.5)
    c.add("base_link", "mount", (1.0, 0.0, 0.0), (0.0, 0.0, s, s))      # yaw +90 deg
    c.add("mount", "camera_main", (0.0, 2.0, 0.0), (0.0, 0.0, 0.0, 1.0))
    T = c.lookup("base_link", "camera_main")
    assert np.allclose(T[:3, 3], [-1.0, 0.0, 0.0])
    assert np.allclose(T[:3, :3] @ [1, 0, 0], [0, 1, 0])
    Ti = c.lookup("camera_main", "base_link")
    assert np.allclose(Ti @ T, np.eye(4))
    v = c.version
    assert c.add("mount", "camera_main", (0.0, 2.0, 0.0), (0.0, 0.0, 0.0, 1.0)) is False
    assert c.version == v
    c.add("odom", "other", (0, 0, 0), (0, 0, 0, 1))
    assert c.lookup("base_link", "other") is None


def test_virtual_camera_config(virtuals, rig):
    full = load_virtual_cameras()
    assert set(full) == set(rig)
    for name, v in full.items():
        assert (v.width, v.height) == (1280, 960)
        # the virtual camera looks where the nominal rig camera looks
        cos = float(v.R_base_virtual[:, 2] @ rig[name].T_base_camera[:3, 2])
        assert cos > math.cos(math.radians(0.1)), name
        assert v.frame_id == f"virtual_camera_{name}"
        f = v.camera_info_fields()
        assert not any(f["d"]) and f["p"][0] == v.K[0, 0]
    assert virtuals["main"].width == W
    with pytest.raises(VirtualCameraError, match="rear.*mount"):
        virtual_camera_from_dict("rear", {"width": 10, "height": 10, "fx": 5.0})
    with pytest.raises(VirtualCameraError, match="rear.*model"):
        virtual_camera_from_dict("rear", {"width": 10, "height": 10, "fx": 5.0, "model": "x",
                                          "mount": {"xyz": [0, 0, 0], "rpy_deg": [0, 0, 0]}})


def test_core_does_not_import_rclpy():
    import subprocess
    import sys
    code = ("import sys, autonomy_perception.rectification, autonomy_perception.virtual_camera;"
            "sys.exit(1 if 'rclpy' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

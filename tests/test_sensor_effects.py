"""Sensor effects: seeded noise, vignetting, exposure and ego-motion blur."""
import numpy as np
import pytest

from autonomy_vehicle.camera_models import load_rig, scale_rig
from autonomy_simulator.sensor_effects import SensorEffects, SensorEffectsConfig

W, H = 160, 120


@pytest.fixture(scope="module")
def rig():
    return scale_rig(load_rig(), W, H)


def test_noise_is_seeded_and_scaled(rig):
    img = np.full((H, W, 3), 100, np.uint8)
    fx = SensorEffects(SensorEffectsConfig(motion_blur=False, vignetting=0.0, shot_noise=0.5,
                                           read_noise=2.0))
    a = fx.apply(img, rig["main"], np.random.default_rng(1))
    b = fx.apply(img, rig["main"], np.random.default_rng(1))
    c = fx.apply(img, rig["main"], np.random.default_rng(2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    std = a.astype(float).std()
    assert std == pytest.approx(np.sqrt(0.5 * 100 + 4.0), rel=0.1)
    assert abs(a.astype(float).mean() - 100) < 0.5
    off = SensorEffects(SensorEffectsConfig.off()).apply(img, rig["main"], np.random.default_rng(1))
    assert np.array_equal(off, img)


def test_vignetting_darkens_corners(rig):
    img = np.full((H, W, 3), 200, np.uint8)
    fx = SensorEffects(SensorEffectsConfig(motion_blur=False, vignetting=1.0, shot_noise=0.0,
                                           read_noise=0.0))
    out = fx.apply(img, rig["rear"], np.random.default_rng(0)).astype(float)
    assert out[H // 2, W // 2, 0] > 195
    assert out[2, 2, 0] < 0.6 * out[H // 2, W // 2, 0]


def test_exposure_brightens_and_saturates(rig):
    img = np.tile(np.linspace(0, 255, W, dtype=np.uint8)[None, :, None], (H, 1, 3))
    fx = SensorEffects(SensorEffectsConfig(motion_blur=False, vignetting=0.0, exposure_ev=1.0,
                                           shot_noise=0.0, read_noise=0.0))
    out = fx.apply(img, rig["main"], np.random.default_rng(0)).astype(int)
    assert (out[:, W // 4] > img[:, W // 4]).all()
    assert out.max() <= 255 and (np.diff(out[0, :, 0]) >= 0).all()


def test_motion_blur_follows_ego_motion(rig):
    cam = rig["left_pillar"]
    rng_img = np.full((H, W), 8.0, np.float32)
    stripes = np.zeros((H, W, 3), np.uint8)
    stripes[:, ::4] = 255
    fx = SensorEffects(SensorEffectsConfig(motion_blur=True, exposure_time=0.02, vignetting=0.0,
                                           shot_noise=0.0, read_noise=0.0))
    still = fx.apply(stripes, cam, np.random.default_rng(0), rng_img, speed=0.0)
    moving = fx.apply(stripes, cam, np.random.default_rng(0), rng_img, speed=20.0)
    assert np.array_equal(still, stripes)
    # vertical stripes seen sideways are smeared horizontally by forward motion
    assert moving.astype(float).std() < 0.7 * stripes.astype(float).std()
    flow = fx.motion_flow(cam, rng_img, 20.0, 0.0, 0.02)
    # a left-looking camera sees the world move backwards = to the left in its image
    assert np.median(flow[..., 0]) < -1.0

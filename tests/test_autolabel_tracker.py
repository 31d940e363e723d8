"""The offline tracker and the road fusion of the auto-labeler on synthetic detections
(no network, no bag): a parked car front-left of a row of parked cars, a car driving
left-to-right with an occlusion gap, noisy detections; trip alignment by road features."""
import math

import numpy as np
import pytest

from autonomy_autolabel.road import RoadGrid, fuse_trips
from autonomy_autolabel.tracker import TrackerConfig, labels_per_frame, rts_smooth, track_clip
from autonomy_stack.bev_grid import BEVGrid
from autonomy_stack.vector_space import ObjectClass, ObjectState

DT = 0.1
N = 100


def _det(x, y, yaw=0.0, speed=0.0, score=0.5):
    return ObjectState(0, ObjectClass.CAR, x, y, yaw, 4.5, 1.9, 1.6, speed=speed, score=score)


def _scene(seed=0, gap=(40, 55)):
    """Frames of detections: parked cars at x = 10, 12.7, 15.4 (y = +4, left), a car
    driving +x at 5 m/s, accelerating 1 m/s^2, along y = -2, not detected during `gap`
    (1.5 s: occluded); position noise 0.3 m, one false positive."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(N):
        t = k * DT
        dets = [_det(px + rng.normal(0, 0.3), 4.0 + rng.normal(0, 0.3), 0.0, rng.normal(0, 1.0))
                for px in (10.0, 12.7, 15.4) if rng.random() > 0.1]
        if not gap[0] <= k < gap[1]:
            x = 0.0 + 5.0 * t + 0.5 * t * t
            dets.append(_det(x + rng.normal(0, 0.3), -2.0 + rng.normal(0, 0.3), 0.0, 5.0 + t))
        if k == 30:
            dets.append(_det(-15.0, 10.0, score=0.25))
        frames.append(dets)
    return frames, np.arange(N) * DT


def test_parked_cars_get_zero_velocity_and_one_track_each():
    frames, stamps = _scene()
    tracks = track_clip(frames, stamps)
    parked = [tr for tr in tracks if tr.static]
    assert len(parked) == 3
    xs = sorted(np.mean([s.x for s in tr.states]) for tr in parked)
    assert np.allclose(xs, [10.0, 12.7, 15.4], atol=0.3)
    for tr in parked:
        assert all(s.speed == 0.0 and s.accel == 0.0 and s.yaw_rate == 0.0 and s.is_static for s in tr.states)
        assert len({(s.length, s.width, s.height) for s in tr.states}) == 1      # one size
    assert not any(abs(np.mean([s.x for s in tr.states]) + 15.0) < 1 for tr in tracks)  # false positive dropped


def test_moving_car_is_bridged_through_the_occlusion_with_smoothed_kinematics():
    frames, stamps = _scene()
    tracks = track_clip(frames, stamps)
    moving = [tr for tr in tracks if not tr.static]
    assert len(moving) == 1, [(tr.id, len(tr.detections)) for tr in moving]
    tr = moving[0]
    assert tr.frames[0] == 0 and tr.frames[-1] == N - 1          # one track, gap included
    per_frame = labels_per_frame(tracks, N)
    for k in (45, 50):                                            # inside the occlusion gap
        t = k * DT
        car = [o for o in per_frame[k] if not o.is_static]
        assert len(car) == 1 and car[0].occluded
        assert abs(car[0].x - (5.0 * t + 0.5 * t * t)) < 1.0
    mid = tr.states[20:80]
    v_err = [abs(s.speed - (5.0 + (k + 20) * DT)) for k, s in enumerate(mid)]
    a_err = [abs(s.accel - 1.0) for s in mid]
    assert np.mean(v_err) < 0.4 and np.mean(a_err) < 0.6
    assert all(abs(s.yaw) < 0.15 for s in mid)                   # heading +x from the velocity


def test_rts_smoother_beats_the_raw_measurements():
    rng = np.random.default_rng(1)
    t = np.arange(60) * 0.1
    truth = 2.0 * t + 0.4 * t ** 2
    z = truth + rng.normal(0, 0.5, len(t))
    obs = np.ones(len(t), bool)
    obs[20:35] = False
    s = rts_smooth(t, z, obs, accel_noise=1.0, meas_noise=0.5)
    assert np.abs(s[:, 0] - truth).mean() < 0.5 * np.abs(z - truth).mean()
    assert np.abs(s[5:-5, 1] - (2.0 + 0.8 * t[5:-5])).mean() < 0.5


def test_without_stitching_gap_the_track_splits():
    """A gap longer than max_gap_s is not bridged (two tracks): the bridging is the
    tracker's doing, not an accident of the gate."""
    frames, stamps = _scene(gap=(30, 70))
    cfg = TrackerConfig(max_gap_s=2.0)
    moving = [tr for tr in track_clip(frames, stamps, cfg) if not tr.static]
    assert len(moving) == 2


def _road_frame(grid: BEVGrid, pose, lane_y=(-1.75, 1.75), shift=0.0):
    """Segmentation of a straight road along odom x (drivable |y| < 3.5, lanes at
    lane_y), seen from `pose`, in the network raster."""
    c = grid.cell_centres()
    cy, sy = math.cos(pose[2]), math.sin(pose[2])
    oy = pose[1] + sy * c[..., 0] + cy * c[..., 1] + shift
    seg = np.zeros((3,) + c.shape[:2], np.float32)
    seg[0] = np.abs(oy) < 3.5
    seg[1] = np.min([np.abs(oy - ly) for ly in lane_y], 0) < 0.5
    seg[2] = np.abs(np.abs(oy) - 3.5) < 0.5
    return seg


def test_road_grid_fuses_frames_and_trips_align_by_road_features():
    grid = BEVGrid((-24, 24), (-24, 24), 1.0)
    a, b = RoadGrid(["drivable", "lane", "edge"]), RoadGrid(["drivable", "lane", "edge"])
    for x in np.arange(0, 60, 2.0):
        a.add_frame(_road_frame(grid, (x, 0.0, 0.0)), grid, (x, 0.0, 0.0))
        # the second trip's odom is 2 m off to the right: the same road appears at +2 m
        b.add_frame(_road_frame(grid, (x, 1.0, 0.0), shift=-2.0), grid, (x, 1.0, 0.0))
    v = a.sample(np.array([[30.0, 0.0], [30.0, 1.75], [30.0, 6.0], [500.0, 0.0]]))
    assert v[0, 0] > 0.9 and v[1, 1] > 0.5 and v[2, 0] < 0.1 and np.isnan(v[3]).all()
    fused, shifts = fuse_trips([a, b])
    assert shifts[1][0] == pytest.approx(0.0, abs=0.5) and shifts[1][1] == pytest.approx(-2.0, abs=0.5)
    f = fused.sample(np.array([[30.0, 0.0], [30.0, 2.0]]))
    assert f[0, 0] > 0.9 and f[1, 0] > 0.9
    assert fused.sample(np.array([[30.0, 5.0]]))[0, 0] < 0.1    # misaligned fusion would blur this

"""Path -> timed trajectory: signed speeds, stops at cusps, limits, and a closed-loop
tracking check on the shared kinematic bicycle model."""
import math

import numpy as np

from autonomy_stack.geometry import wrap_angle
from autonomy_vehicle.vehicle_model import VehicleParams, step
from autonomy_planning.parking.primitives import SearchSpace, path_samples
from autonomy_planning.parking.trajectory import count_cusps, path_to_trajectory
from autonomy_stack.vector_space import EgoState
from parking_helpers import small_lot

VP = VehicleParams()


def _path_with_cusp():
    lot = small_lot("open")
    space = SearchSpace(lot, (4.0, 6.0, 0.0), (12.0, 6.0, 0.0))
    # forward left, forward, reverse right, reverse straight (prims: d, k)
    seq = [(1, 1), (1, 0), (1, -1), (-1, 2), (-1, 0)]
    nodes, x, y, h, d = [], 4.0, 6.0, space.h0, 0
    for dd, k in seq:
        p = [i for i, pp in enumerate(space.prims) if pp[0] == dd and pp[1] == k][0]
        valid, gk, ex, ey, eh, cost = space.expand(x, y, h, d)
        assert valid[p]
        nodes.append((x, y, h, d, p, -1))
        x, y, h, d = float(ex[p]), float(ey[p]), int(eh[p]), dd
    nodes.append((x, y, h, d, -1, -1))
    return space, path_samples(space, nodes)


def test_trajectory_signed_speed_stops_and_limits():
    space, s = _path_with_cusp()
    tr = path_to_trajectory(*s, v_forward=1.5, v_reverse=1.0, accel=0.8)
    assert count_cusps(s[4]) == 1
    assert np.all(np.diff(tr.t) >= 0) and tr.t[-1] > 0
    assert tr.speed[0] == 0.0 and tr.speed[-1] == 0.0
    assert np.max(tr.speed) <= 1.5 + 1e-9 and np.min(tr.speed) >= -1.0 - 1e-9
    assert np.any(tr.speed > 0.5) and np.any(tr.speed < -0.3)
    # exactly one standstill between the forward and reverse parts (the cusp dwell)
    moving = tr.speed[np.abs(tr.speed) > 1e-9]
    assert np.sum(np.diff(np.sign(moving)) != 0) == 1
    assert np.all(np.abs(tr.accel) <= 0.8 + 1e-6)
    assert np.all(np.abs(tr.curvature) <= math.tan(VP.max_steer) / VP.wheelbase + 1e-9)
    # yaw rate = speed * curvature is consistent with the yaw samples
    dt = np.diff(tr.t)
    m = dt > 1e-6
    yaw_rate = np.array([wrap_angle(a) for a in np.diff(tr.yaw)])[m] / dt[m]
    pred = (0.5 * (tr.speed[:-1] + tr.speed[1:]) * tr.curvature[1:])[m]
    assert np.max(np.abs(yaw_rate - pred)) < 0.05


def test_bicycle_model_tracks_trajectory():
    """A simple feedforward + feedback tracker on the shared plant stays close."""
    space, s = _path_with_cusp()
    tr = path_to_trajectory(*s)
    st = EgoState(x=tr.x[0], y=tr.y[0], yaw=tr.yaw[0])
    dt, t, worst = 0.02, 0.0, 0.0
    while t < tr.t[-1]:
        i = int(np.searchsorted(tr.t, t))
        i = min(i, len(tr.t) - 1)
        v_ref, k_ref = tr.speed[i], tr.curvature[i]
        ex, ey = st.x - tr.x[i], st.y - tr.y[i]
        lat = -ex * math.sin(tr.yaw[i]) + ey * math.cos(tr.yaw[i])
        eyaw = wrap_angle(st.yaw - tr.yaw[i])
        sgn = 1.0 if v_ref >= 0 else -1.0
        # heading feedback flips sign in reverse; the lateral term does not
        steer = math.atan(k_ref * VP.wheelbase) - sgn * 1.5 * eyaw - 1.2 * lat
        acc = 2.0 * (v_ref - st.speed)
        st = step(st, steer, acc, dt, VP)
        t += dt
        j = int(np.argmin(np.hypot(tr.x - st.x, tr.y - st.y)))
        worst = max(worst, math.hypot(tr.x[j] - st.x, tr.y[j] - st.y))
    assert worst < 0.35
    assert math.hypot(st.x - tr.x[-1], st.y - tr.y[-1]) < 0.5

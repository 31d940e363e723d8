"""Shared checks and hand-made lots for the parking tests."""
from __future__ import annotations

import math

import numpy as np

from autonomy_stack.geometry import wrap_angle
from autonomy_vehicle.vehicle_model import VehicleParams
from autonomy_planning.parking.lot import Box, Lot, footprint_clearance
from autonomy_planning.parking.primitives import _arc

VP = VehicleParams()
R_MIN = VP.wheelbase / math.tan(VP.max_steer)


def small_lot(kind: str = "open") -> Lot:
    """20 m x 12 m walled area with a few boxes (hand-made)."""
    curbs = [np.array([[0.0, 0.0], [20.0, 0.0], [20.0, 12.0], [0.0, 12.0], [0.0, 0.0]])]
    if kind == "open":
        boxes = [Box(15.0, 2.0, 0.0, 4.5, 1.9), Box(7.0, 2.0, 0.0, 4.5, 1.9)]
    elif kind == "bay":
        # a bay between two parked cars on the south side, open to the north
        boxes = [Box(8.6, 2.5, math.pi / 2, 4.6, 1.9), Box(13.8, 2.5, math.pi / 2, 4.6, 1.9)]
    else:
        raise ValueError(kind)
    return Lot(bounds=(-0.5, -0.5, 20.5, 12.5), curbs=curbs, boxes=boxes)


def apply_primitives(start, seq, step=2.0, dtheta=math.radians(10.0)):
    """End pose after a sequence of (direction, heading-bin change of the steering)."""
    x, y, yaw = start
    for d, k in seq:
        kappa = k * dtheta / step
        dx, dy, dyaw = _arc(d, kappa, np.array([step]))
        c, s = math.cos(yaw), math.sin(yaw)
        x, y = x + c * dx[0] - s * dy[0], y + s * dx[0] + c * dy[0]
        yaw = float(wrap_angle(yaw + dyaw[0]))
    return (x, y, yaw)


def check_path(lot: Lot, samples, every: int = 2, clearance_min: float = 0.0):
    """Kinematic feasibility and exact footprint clearance of dense path samples."""
    x, y, yaw, curv, d = samples
    assert len(x) >= 2
    assert np.all(np.abs(curv) <= 1.0 / R_MIN + 1e-9), "curvature above 1/R_min"
    assert set(np.unique(d[1:]).tolist()) <= {-1, 1}
    ds = np.hypot(np.diff(x), np.diff(y))
    assert np.all(ds < 0.2), "gap in the path"
    # yaw changes by direction * curvature * ds; motion is along the heading (or reversed)
    dyaw = wrap_angle(np.diff(yaw))
    np.testing.assert_allclose(dyaw, d[1:] * curv[1:] * ds, atol=1e-6)
    mid = yaw[:-1] + 0.5 * dyaw
    mv = np.flatnonzero(ds > 1e-6)
    heading = np.arctan2(np.diff(y)[mv], np.diff(x)[mv])
    expect = mid[mv] + np.where(d[1:][mv] > 0, 0.0, math.pi)
    assert np.max(np.abs(wrap_angle(heading - expect))) < 1e-3, "motion not along the heading"
    # exact geometric footprint check
    for i in list(range(0, len(x), every)) + [len(x) - 1]:
        c = footprint_clearance(lot, (x[i], y[i], yaw[i]), VP)
        assert c > clearance_min, f"footprint collides at sample {i}: clearance {c:.3f}"

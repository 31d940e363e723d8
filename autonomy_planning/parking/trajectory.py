"""Conversion of a primitive path to a timed trajectory the controller can track.

The path (dense samples of arcs with steering curvature and driving direction) is split at
direction changes (cusps); each segment gets a trapezoidal speed profile from standstill to
standstill (limits: cruise speed per direction, acceleration; the speed is also reduced
where the curvature jumps so that the wheels reach the new angle at their rate limit within
`steer_lag_dist` metres), a dwell at every cusp for the gear change. Speed is signed (negative in reverse), curvature is the
steering curvature tan(delta) / wheelbase, so yaw rate = speed * curvature.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

from autonomy_vehicle.vehicle_model import VehicleParams
from autonomy_stack.vector_space import Trajectory


def path_to_trajectory(x: np.ndarray, y: np.ndarray, yaw: np.ndarray, curv: np.ndarray,
                       direction: np.ndarray, v_forward: float = 1.5, v_reverse: float = 1.0,
                       accel: float = 0.8, dwell: float = 0.5, stamp: float = 0.0,
                       frame_id: str = "odom", vp: VehicleParams = VehicleParams(),
                       maneuver: str = "parking", steer_lag_dist: float = 0.3,
                       min_speed: float = 0.2) -> Trajectory:
    x, y, yaw = np.asarray(x, float), np.asarray(y, float), np.asarray(yaw, float)
    curv, direction = np.asarray(curv, float), np.asarray(direction, int)
    n = len(x)
    if n < 2:
        z = np.zeros(n)
        return Trajectory(np.zeros(n), x.copy(), y.copy(), yaw.copy(), z, z.copy(), curv.copy(),
                          stamp=stamp, frame_id=frame_id, maneuver=maneuver)
    # segments between cusps: sample i belongs to the motion from i-1 to i (direction[i])
    d = direction.copy()
    d[0] = d[1]
    cuts = [0] + [i for i in range(1, n - 1) if d[i + 1] != d[i]] + [n - 1]
    T, X, Y, YAW, V, K = [], [], [], [], [], []
    t = 0.0
    for a, b in zip(cuts[:-1], cuts[1:]):
        sx, sy = x[a:b + 1], y[a:b + 1]
        ds = np.hypot(np.diff(sx), np.diff(sy))
        s = np.concatenate([[0.0], np.cumsum(ds)])
        L = s[-1]
        sign = int(d[min(a + 1, n - 1)])
        vmax = v_forward if sign > 0 else v_reverse
        # steering-rate limit: where the curvature jumps, the wheels need
        # |d delta| / max_steer_rate seconds; cap the speed so that the car travels at
        # most `steer_lag_dist` metres meanwhile (the accel passes below slow down for it)
        kseg = curv[a:b + 1].copy()
        kseg[0] = kseg[min(1, len(kseg) - 1)]
        ddelta = np.abs(np.diff(np.arctan(kseg * vp.wheelbase)))
        vcap = np.full(len(s), vmax)
        for i in np.flatnonzero(ddelta > 1e-6):
            cap = max(min_speed, vp.max_steer_rate * steer_lag_dist / ddelta[i])
            vcap[i:i + 2] = np.minimum(vcap[i:i + 2], cap)
        v = np.minimum(vcap, np.minimum(np.sqrt(2 * accel * s), np.sqrt(2 * accel * (L - s))))
        # enforce the acceleration limit forwards and backwards through the caps
        for i in range(1, len(s)):
            v[i] = min(v[i], math.sqrt(v[i - 1] ** 2 + 2 * accel * ds[i - 1]))
        for i in range(len(s) - 2, -1, -1):
            v[i] = min(v[i], math.sqrt(v[i + 1] ** 2 + 2 * accel * ds[i]))
        v[0] = v[-1] = 0.0
        tt = np.zeros(len(s))
        for i in range(1, len(s)):
            vm = 0.5 * (v[i] + v[i - 1])
            tt[i] = tt[i - 1] + (ds[i - 1] / vm if vm > 1e-6 else 0.0)
        first = 0 if not T else 1          # the cusp point is already there (previous segment)
        if T:
            t += dwell
            # the dwell: standing at the cusp with the new gear's steering
            T.append(t); X.append(x[a]); Y.append(y[a]); YAW.append(yaw[a]); V.append(0.0)
            K.append(curv[min(a + 1, n - 1)])
        T.extend((t + tt[first:]).tolist())
        X.extend(sx[first:].tolist())
        Y.extend(sy[first:].tolist())
        YAW.extend(yaw[a + first:b + 1].tolist())
        V.extend((sign * v[first:]).tolist())
        kk = curv[a:b + 1].copy()
        kk[0] = kk[min(1, len(kk) - 1)]
        K.extend(kk[first:].tolist())
        t = t + tt[-1]
    T, V = np.array(T), np.array(V)
    dt = np.diff(T)
    acc = np.zeros(len(T))
    with np.errstate(divide="ignore", invalid="ignore"):
        acc[:-1] = np.where(dt > 1e-9, np.diff(V) / np.where(dt > 1e-9, dt, 1.0), 0.0)
    return Trajectory(t=T, x=np.array(X), y=np.array(Y), yaw=np.array(YAW), speed=V,
                      accel=acc, curvature=np.array(K), stamp=stamp, frame_id=frame_id,
                      maneuver=maneuver)


def count_cusps(direction: np.ndarray) -> int:
    d = np.asarray(direction)[1:]
    return int(np.sum(d[1:] != d[:-1]))

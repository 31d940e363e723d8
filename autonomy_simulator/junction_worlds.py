"""Seeded worlds for junction and merge behaviour (no ROS): an on-ramp with an acceleration
lane that ends, and a multi-exit roundabout. Same `World` data as `worlds.py` (lanes with
neighbours / successors / stop lines, painted lines, road edges, one drivable polygon).

- `on_ramp(seed, ...)`   main road along +x (`lanes_forward` + `lanes_backward` lanes); a
  ramp joins from the lower left into an acceleration lane right of the main road that
  ends at `merge_end` (taper after it): a vehicle on it must change into the main road's
  right lane before then. Lanes: params `ramp_lane`, `accel_lane`, `main_lanes` (left to
  right); `accel_lane.left` is the main road's right lane.
- `roundabout(seed, ...)` one-lane ring (counter-clockwise: right-hand traffic) of
  `radius` around the origin with `arms` arms; each arm has an incoming lane ending at a
  stop line before the ring (entries give way: the simulator's agents wait for the ring
  to clear) and an outgoing lane. Entry and exit connectors are junction lanes; the ring
  segments are ordinary lanes (a ring car never yields to an entering one). params:
  `incoming` / `outgoing` (per arm, lists of one id), `ring` (segment ids);
  `roundabout_route(world, from_arm, to_arm)` gives the lane sequence.
"""
from __future__ import annotations

import math
from typing import List

import numpy as np

from autonomy_simulator import geometry as geo
from autonomy_simulator.worlds import Lane, World, _Builder
from autonomy_stack.geometry import offset_polyline
from autonomy_stack.vector_space import LineType


def _bezier(p0, h0, p1, h1, k=0.45, n=30) -> np.ndarray:
    return geo.bezier(np.asarray(p0, float), h0, np.asarray(p1, float), h1, n=n, k=k)


def on_ramp(seed: int = 0, length: float = 420.0, lanes_forward: int = 2,
            lanes_backward: int = 1, lane_width: float = 3.6, merge_start: float = 140.0,
            accel_length: float = 110.0, taper: float = 30.0, ramp_length: float = 110.0,
            speed_limit: float = 22.0, ramp_speed_limit: float = 16.0) -> World:
    """Main road with an on-ramp and an acceleration lane ending at merge_start +
    accel_length (see the module docstring)."""
    b = _Builder("on_ramp", seed)
    w, nf, nb = lane_width, lanes_forward, lanes_backward
    sh = 0.6
    ref = np.stack([np.linspace(0.0, length, int(length) + 1), np.zeros(int(length) + 1)], 1)
    main = [b.lane(offset_polyline(ref, -(i + 0.5) * w), w, speed_limit=speed_limit)
            for i in range(nf)]
    back = [b.lane(offset_polyline(ref, (j + 0.5) * w)[::-1], w, speed_limit=speed_limit)
            for j in range(nb)]
    for grp in (main, back):
        for i, ln in enumerate(grp):
            ln.left = grp[i - 1].id if i > 0 else None
            ln.right = grp[i + 1].id if i + 1 < len(grp) else None
    y_acc = -(nf + 0.5) * w
    merge_end = merge_start + accel_length
    xs = np.arange(merge_start, merge_end + 0.5, 1.0)
    acc = b.lane(np.stack([xs, np.full(len(xs), y_acc)], 1), w, speed_limit=speed_limit)
    acc.left = main[-1].id
    # the ramp: from the lower left, 12 deg up, tangent into the acceleration lane
    a0 = math.radians(12.0)
    p0 = (merge_start - ramp_length * math.cos(a0), y_acc - ramp_length * math.sin(a0))
    ramp = b.lane(_bezier(p0, a0, (merge_start, y_acc), 0.0, k=0.4), w,
                  speed_limit=ramp_speed_limit)
    b.link(ramp, acc)
    # paint: centre line, lane dividers, the dashed line along the acceleration lane
    if nb:
        b.lane_line(ref, dashed=False, yellow=True)
    for i in range(1, nf):
        b.lane_line(offset_polyline(ref, -i * w), dashed=True)
    for j in range(1, nb):
        b.lane_line(offset_polyline(ref, j * w), dashed=True)
    y_r = -nf * w
    b.lane_line(np.array([[0.0, y_r + 0.2], [merge_start, y_r + 0.2]]), dashed=False)
    b.lane_line(np.array([[merge_start, y_r], [merge_end, y_r]]), dashed=True)
    b.lane_line(np.array([[merge_end + taper, y_r + 0.2], [length, y_r + 0.2]]), dashed=False)
    b.lane_line(offset_polyline(ref, nb * w - 0.2), dashed=False)
    # edges: main left, main right before the ramp, ramp sides, acceleration lane, taper
    left_edge = offset_polyline(ref, nb * w + sh)
    ramp_left = offset_polyline(ramp.centerline, 0.5 * w)
    ramp_right = offset_polyline(ramp.centerline, -0.5 * w)
    y_edge = y_r - sh
    cut = int(np.argmax(ramp_left[:, 1] > y_edge))          # the ramp meets the main road
    x_cut = float(ramp_left[cut, 0])
    y_acc_edge = y_acc - 0.5 * w
    right_main = np.array([[0.0, y_edge], [x_cut, y_edge]])
    ramp_in = ramp_left[:cut]
    outer = np.concatenate([ramp_right, [[merge_end, y_acc_edge], [merge_end + taper, y_edge],
                                         [length, y_edge]]])
    for e in (left_edge, right_main, ramp_in, outer):
        b.edge(e)
    poly = np.concatenate([[[0.0, nb * w + sh], [0.0, y_edge]], [[x_cut, y_edge]],
                           ramp_in[::-1], outer, [[length, nb * w + sh]]])
    return b.world(poly, params=dict(kind="on_ramp", length=length, lane_width=w,
                                     lanes_forward=nf, lanes_backward=nb,
                                     main_lanes=[l.id for l in main],
                                     back_lanes=[l.id for l in back], ramp_lane=ramp.id,
                                     accel_lane=acc.id, merge_start=merge_start,
                                     merge_end=merge_end, reference=ref))


ROUNDABOUT_ARMS = ("east", "north", "west", "south")


def roundabout(seed: int = 0, radius: float = 16.0, ring_width: float = 5.0,
               lane_width: float = 3.5, arm_length: float = 80.0, entry_angle: float = 0.42,
               speed_limit: float = 11.1, ring_speed_limit: float = 7.0) -> World:
    """Four-arm roundabout centred on the origin (see the module docstring)."""
    b = _Builder("roundabout", seed)
    R, w = radius, lane_width
    r_out = R + 0.5 * ring_width                   # outer edge of the ring
    r_arm = r_out + 7.0                             # where the arms' lanes end / start
    angles = {arm: k * math.pi / 2 for k, arm in enumerate(ROUNDABOUT_ARMS)}
    incoming, outgoing, entries, exits = {}, {}, {}, {}
    for arm, a in angles.items():
        u = np.array([math.cos(a), math.sin(a)])
        nrm = np.array([-u[1], u[0]])
        inc = b.lane(np.stack([u * arm_length + nrm * 0.5 * w, u * r_arm + nrm * 0.5 * w]), w,
                     speed_limit=speed_limit)
        inc.stop_line_s = inc.length
        out = b.lane(np.stack([u * r_arm - nrm * 0.5 * w, u * arm_length - nrm * 0.5 * w]), w,
                     speed_limit=speed_limit)
        incoming[arm], outgoing[arm] = inc, out
        b.paint(np.stack([u * r_arm + nrm * 0.1, u * r_arm + nrm * w]), LineType.STOP_LINE,
                width=0.4)
        b.lane_line(np.stack([u * arm_length, u * r_arm]), dashed=False, yellow=True)
    # ring points: exit X_k before entry E_k (counter-clockwise travel)
    pts = []
    for arm, a in angles.items():
        pts.append((a - entry_angle, "exit", arm))
        pts.append((a + entry_angle, "entry", arm))
    ring: List[Lane] = []
    for k, (th0, kind, arm) in enumerate(pts):
        th1 = pts[(k + 1) % len(pts)][0]
        if th1 <= th0:
            th1 += 2 * math.pi
        th = np.linspace(th0, th1, max(3, int((th1 - th0) * R) + 1))
        ring.append(b.lane(np.stack([R * np.cos(th), R * np.sin(th)], 1), ring_width,
                           speed_limit=ring_speed_limit))
    for k, seg in enumerate(ring):
        b.link(seg, ring[(k + 1) % len(ring)])
    for k, (th, kind, arm) in enumerate(pts):
        p_ring = np.array([R * math.cos(th), R * math.sin(th)])
        h_ring = th + math.pi / 2
        if kind == "entry":
            src = incoming[arm]
            h0 = math.atan2(*(src.centerline[-1] - src.centerline[-2])[::-1])
            c = b.lane(_bezier(src.centerline[-1], h0, p_ring, h_ring), w, turn="right",
                       in_junction=True, speed_limit=ring_speed_limit)
            b.link(src, c)
            b.link(c, ring[k])
            entries[arm] = c
        else:
            dst = outgoing[arm]
            h1 = math.atan2(*(dst.centerline[1] - dst.centerline[0])[::-1])
            c = b.lane(_bezier(p_ring, h_ring, dst.centerline[0], h1), w, turn="right",
                       in_junction=True, speed_limit=ring_speed_limit)
            b.link(ring[k - 1], c)
            b.link(c, dst)
            exits[arm] = c
    # island curb, outer boundary (arms joined by arcs)
    th = np.linspace(0.0, 2 * math.pi, 73)
    r_in = R - 0.5 * ring_width
    b.curb(np.stack([r_in * np.cos(th), r_in * np.sin(th)], 1))
    _roundabout_outline(b, angles, r_out, r_arm, w + 0.5, arm_length)
    box = r_out + 1.0
    return b.world(b.outline, junction=np.array([[box, box], [-box, box], [-box, -box], [box, -box]]),
                   params=dict(kind="roundabout", radius=R, ring_width=ring_width,
                               lane_width=w, arm_length=arm_length,
                               incoming={k: [v.id] for k, v in incoming.items()},
                               outgoing={k: [v.id] for k, v in outgoing.items()},
                               entries={k: v.id for k, v in entries.items()},
                               exits={k: v.id for k, v in exits.items()},
                               ring=[l.id for l in ring]))


def _roundabout_outline(b: _Builder, angles: dict, r_out: float, r_arm: float, half: float,
                        arm_length: float) -> None:
    """Outer boundary of `roundabout` (each arm's sides joined by arcs round the ring) as
    road edges; the polygon is left in `b.outline`."""
    outline = []
    for k, (arm, a) in enumerate(angles.items()):
        u = np.array([math.cos(a), math.sin(a)])
        nrm = np.array([-u[1], u[0]])
        # along this arm's right side (seen from outside) out and back on its left side
        side_out = [u * r_arm - nrm * half, u * arm_length - nrm * half]
        side_in = [u * arm_length + nrm * half, u * r_arm + nrm * half]
        outline += side_out + side_in
        a_next = angles[ROUNDABOUT_ARMS[(k + 1) % 4]] + (2 * math.pi if k == 3 else 0.0)
        t0 = a + math.asin(half / (r_out + 1.0))
        t1 = a_next - math.asin(half / (r_out + 1.0))
        arc = np.linspace(t0, t1, 10)
        outline += list(np.stack([(r_out + 1.0) * np.cos(arc), (r_out + 1.0) * np.sin(arc)], 1))
    b.outline = np.array(outline)
    for k in range(4):
        seg = b.outline[k * 14:(k + 1) * 14]
        b.edge(seg[:2])
        b.edge(seg[2:])


def roundabout_route(world: World, from_arm: str, to_arm: str) -> List[int]:
    """Lane ids from `from_arm`'s incoming lane around the ring to `to_arm`'s outgoing lane."""
    p = world.params
    route = [p["incoming"][from_arm][0], p["entries"][from_arm]]
    ring = p["ring"]
    exit_id = p["exits"][to_arm]
    seg = world.lanes[p["entries"][from_arm]].successors[0]
    for _ in range(len(ring) + 1):
        route.append(seg)
        nxt = world.lanes[seg].successors
        if exit_id in nxt:
            return route + [exit_id, p["outgoing"][to_arm][0]]
        seg = next(s for s in nxt if s in ring)
    raise ValueError(f"no way from {from_arm} to {to_arm}")


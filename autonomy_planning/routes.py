"""Lanes and routes of a planning scene (no ROS): lane reference paths and a k-d tree
over the lanes (cached by geometry), locating a pose on a lane, the route to a goal over
successor links, the explicit route's checks (a lane change vs a gap between consecutive
route lanes, bridged up to MAX_ROUTE_GAP m, else a ValueError naming it) and the lanes
that continue a route after its end. `scene.build_road_frame` builds its reference from
these."""
from __future__ import annotations

from collections import deque
from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy.spatial import cKDTree

from autonomy_stack.geometry import polyline_length, wrap_angle
from autonomy_planning.path import ReferencePath

# Lane / PlanningScene in the annotations are autonomy_planning.scene's (not imported:
# scene imports this module; the annotations are never evaluated)

def locate_lane(lanes: Sequence[Lane], x: float, y: float, yaw: float,
                max_dist: float = 4.0, paths: Optional[Dict] = None,
                heading_tol: float = 1.2):
    """Lane containing (x, y) driven in direction yaw -> (lane, s, d) or (None, 0, 0)."""
    best = (None, 0.0, 0.0)
    best_cost = np.inf
    for ln in lanes:
        p = lane_path(ln, paths)
        s, d = p.project([[x, y]])
        s, d = float(s[0]), float(d[0])
        if s < -2.0 or s > p.original_length + 2.0 or abs(d) > max_dist:
            continue
        dh = abs(float(wrap_angle(yaw - p.heading_at(s))))
        if dh > heading_tol:
            continue
        cost = abs(d) + 2.0 * dh
        if cost < best_cost:
            best_cost, best = cost, (ln, s, d)
    return best


class LaneIndex:
    """k-d tree over the samples of every lane centreline: locates points on lanes with
    one query instead of one projection per lane."""

    def __init__(self, lanes: Sequence[Lane], paths: Optional[Dict] = None):
        self.lanes = {l.id: l for l in lanes}
        pts, ids, hs = [], [], []
        for ln in lanes:
            p = lane_path(ln, paths)
            m = (p.s >= 0) & (p.s <= p.original_length)
            pts.append(p.xy[m]); ids.append(np.full(int(m.sum()), ln.id)); hs.append(p.heading[m])
        self.tree = cKDTree(np.vstack(pts)) if pts else None
        self.ids = np.concatenate(ids) if ids else np.zeros(0, int)
        self.heading = np.concatenate(hs) if hs else np.zeros(0)
        self.pts = np.vstack(pts) if pts else np.zeros((0, 2))

    def locate(self, x, y, yaw, max_dist=4.0, heading_tol=1.2):
        """(lane, signed lateral offset) of the best lane at (x, y) driven along yaw."""
        if self.tree is None:
            return None, 0.0
        idx = self.tree.query_ball_point([x, y], max_dist)
        best, best_cost, best_d = None, np.inf, 0.0
        for i in idx:
            dh = abs(float(wrap_angle(yaw - self.heading[i])))
            if dh > heading_tol:
                continue
            dx, dy = x - self.pts[i, 0], y - self.pts[i, 1]
            h = self.heading[i]
            d = -np.sin(h) * dx + np.cos(h) * dy
            cost = abs(d) + 0.3 * abs(np.cos(h) * dx + np.sin(h) * dy) + 2.0 * dh
            if cost < best_cost:
                best, best_cost, best_d = self.ids[i], cost, d
        return (self.lanes[int(best)], float(best_d)) if best is not None else (None, 0.0)

    def near(self, x, y, yaw, radius=12.0, min_cos=0.9):
        """Ids of lanes with a sample within `radius` heading along yaw."""
        if self.tree is None:
            return []
        idx = self.tree.query_ball_point([x, y], radius)
        out = {int(self.ids[i]) for i in idx if np.cos(yaw - self.heading[i]) > min_cos}
        return sorted(out)


def lane_index(lanes: Sequence[Lane], paths: Optional[Dict] = None) -> LaneIndex:
    key = ("lane_index", fingerprint([l.centerline for l in lanes]))
    if paths is not None and key in paths:
        return paths[key]
    li = LaneIndex(lanes, paths)
    if paths is not None:
        paths[key] = li
    return li


def lane_path(lane: Lane, cache: Optional[Dict] = None) -> ReferencePath:
    """The lane's reference path, cached by id and geometry (a lane whose centreline
    changes under the same id, as perception's do, gets a new path, never a stale one)."""
    key = ("lane", lane.id, geometry_key(lane.centerline))
    if cache is not None and key in cache:
        return cache[key]
    p = ReferencePath(lane.centerline, ds=0.5, extend_before=20.0, extend_after=20.0)
    if cache is not None:
        cache[key] = p
    return p


def geometry_key(points) -> tuple:
    """Cache key of a polyline: its length and a hash of its vertices (mm)."""
    a = np.ascontiguousarray(np.round(np.asarray(points, dtype=float), 3))
    return (len(a), hash(a.tobytes()))


def route_to_goal(scene: PlanningScene, start: Lane, goal_lane: Optional[Lane],
                  parallel: Sequence[int]) -> List[int]:
    """Breadth-first search over successor links from any lane in `parallel` (the ego's
    lane and its same-direction neighbours) to the goal lane. Returns the lane ids of the
    route (first element is one of `parallel`), or [] if none."""
    if goal_lane is None:
        return []
    by_id = {l.id: l for l in scene.lanes}
    prev: Dict[int, Optional[int]] = {}
    q = deque()
    # prefer starting from the ego lane
    for pid in [start.id] + [p for p in parallel if p != start.id]:
        prev[pid] = None
        q.append(pid)
    while q:
        cur = q.popleft()
        if cur == goal_lane.id:
            out = [cur]
            while prev[out[-1]] is not None:
                out.append(prev[out[-1]])
            return out[::-1]
        for nxt in by_id[cur].successors if cur in by_id else []:
            if nxt not in prev and nxt in by_id:
                prev[nxt] = cur
                q.append(nxt)
    return []


def fingerprint(arrays) -> tuple:  # noqa: E302
    return tuple(geometry_key(a) for a in arrays)



def route_lanes(scene: PlanningScene, lanes: List[Lane], paths, lookahead: float):
    """(lane ids of the route, the lane the route changes lanes from or None): the scene's
    explicit route from the ego's lane on (after its leading lane changes; the lane before
    such a change ends where the change must be done; up to a later change's lane), else the route to the goal (lane changes into parallel lanes
    allowed), else the straightest successors of the ego lane up to `lookahead` metres."""
    ego = scene.ego
    li = lane_index(lanes, paths)
    ego_lane, _ = li.locate(ego.x, ego.y, ego.yaw, max_dist=4.0)
    goal_lane = None
    if scene.goal is not None:
        if scene.goal.lane_id is not None:
            goal_lane = scene.lane(scene.goal.lane_id)
        else:
            goal_lane, _ = li.locate(scene.goal.x, scene.goal.y, scene.goal.yaw, max_dist=4.0,
                                     heading_tol=1.6)
    route: List[int] = list(scene.route_lane_ids)
    by = {l.id: l for l in lanes}
    leave = None
    if route:
        # a route may start with lane changes (consecutive lanes that are neighbours, not
        # successors): the reference starts at the lane after the last such change, and
        # the ego reaches it by changing lanes (route deadline). A gap between consecutive
        # lanes (no successor link, not a neighbour) is bridged, or is an error.
        route = [r for r in route if r in by]
        if ego_lane is not None and ego_lane.id in route:
            route = route[route.index(ego_lane.id):]        # the part still ahead
        k0 = 0
        for k in range(1, len(route)):
            a, b = by[route[k - 1]], by[route[k]]
            if b.id in a.successors or route_link(a, b, paths) != "lane_change":
                continue
            if k - 1 == k0:
                k0 = k          # a change from the lane the reference would start with
            else:
                # a change further on (an on-ramp: ramp -> acceleration lane -> main road):
                # the reference runs up to the lane it is made from; the change becomes
                # the leading one once the ego is on that lane. (Measured: with the main
                # road as the reference from the start of the ramp, the ego cut across
                # the verge towards it, 2 m off the road.)
                route = route[:k]
                break
        leave = route[k0 - 1] if k0 > 0 else None
        route = route[k0:]
    if ego_lane is not None and not route:
        # same-direction lanes next to the ego lane (parallel at the ego)
        parallel = [i for i in li.near(ego.x, ego.y, ego.yaw, 12.0, 0.9)
                    if i != ego_lane.id and not li.lanes[i].oncoming]
        route = route_to_goal(scene, ego_lane, goal_lane, parallel)
        if not route:
            return follow_successors(scene, ego_lane, paths, lookahead), None
    if route:
        # after the route's end the reference follows the lanes that continue it (not a
        # straight line off the map)
        route = route + [r for r in follow_successors(scene, by[route[-1]], paths, lookahead)[1:]
                         if r not in route]
    return route, leave


MAX_ROUTE_GAP = 20.0       # m: a longer gap between consecutive route lanes is an error


def route_link(a: Lane, b: Lane, paths=None) -> str:
    """How route lane `b` follows lane `a` when it is not one of a's successors:
    'lane_change' (b runs beside a: a neighbouring lane) or 'gap' (b starts after a's
    end, at most MAX_ROUTE_GAP m on and heading on: the reference bridges it with a
    straight segment). Anything else raises a ValueError naming the two lanes and the
    gap."""
    pa = lane_path(a, paths)
    s, d = pa.project(np.asarray(b.centerline, dtype=float)[:, :2])
    beside = (s >= 0.0) & (s <= pa.original_length)
    if np.count_nonzero(beside) >= 2 and 0.5 * a.width <= np.median(np.abs(d[beside])) \
            <= 2.5 * max(a.width, b.width):
        return "lane_change"
    end, start = np.asarray(a.centerline[-1], float), np.asarray(b.centerline[0], float)
    gap = float(np.hypot(*(start - end)))
    h_end = pa.heading_at(pa.original_length)
    h_start = lane_path(b, paths).heading_at(0.0)
    turn = abs(float(wrap_angle(h_start - h_end)))
    bridge = abs(float(wrap_angle(np.arctan2(*(start - end)[::-1]) - h_end))) if gap > 0.5 else 0.0
    if gap <= MAX_ROUTE_GAP and turn < 1.2 and bridge < 1.2:
        return "gap"
    raise ValueError(f"route_lane_ids: lane {b.id} does not follow lane {a.id}: not a "
                     f"successor, not a neighbouring lane, and its start is {gap:.1f} m from "
                     f"the end of lane {a.id} (heading change {np.degrees(turn):.0f} deg; "
                     f"bridged up to {MAX_ROUTE_GAP:.0f} m and 69 deg)")


def follow_successors(scene: PlanningScene, lane: Lane, paths, lookahead: float) -> List[int]:
    """From `lane`, the straightest successor after successor (up to `lookahead` m, 20
    lanes, no loop)."""
    route = [lane.id]
    cur = lane
    total = polyline_length(cur.centerline)
    while cur.successors and total < lookahead and len(route) < 20:
        cands = [scene.lane(i) for i in cur.successors if scene.lane(i) is not None]
        if not cands:
            break
        h_end = lane_path(cur, paths).heading_at(lane_path(cur, paths).original_length)
        cur = min(cands, key=lambda c: abs(float(wrap_angle(
            lane_path(c, paths).heading_at(0.0) - h_end))))
        if cur.id in route:
            break
        route.append(cur.id)
        total += polyline_length(cur.centerline)
    return route

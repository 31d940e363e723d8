"""Agents of the simulated world with behaviour models (no ROS, deterministic).

- `VehicleAgent` (cars, trucks) follows a lane route (a path through `World.lanes`):
  * longitudinal: IDM (intelligent driver model) against whatever is in its corridor
    (agents, the ego, static obstacles, pedestrians), capped by the lane speed limit and a
    curvature limit (lateral acceleration);
  * lane changes: MOBIL (incentive with politeness, safety limit for the new follower),
    plus a forced cut-in (`cut_in_time`) for scenarios;
  * stop lines: stop, wait `stop_time`, then go when the junction is clear (all-way stop:
    first come, first served; minor-road stop: gap in priority traffic);
  * static obstacles blocking its lane (parked cars, cones): goes around them on the left;
    `narrow_mode` 'yield' waits behind them while oncoming traffic would meet it in the
    narrow passage, 'proceed' goes around regardless (oncoming traffic has to give way).
- `PedestrianAgent` walks a crossing path, waiting at the kerb for a gap in traffic
  (or not: `wait_for_gap`).

Every agent exposes position, heading, speed, acceleration and yaw rate at every step
(`to_object()` -> vector_space.ObjectState). A vehicle's route is a `lane_path.Path`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from autonomy_simulator.lane_path import Path
from autonomy_stack.geometry import (arc_length, interpolate_polyline, project_to_polyline,
                                     resample_polyline, wrap_angle)
from autonomy_simulator.worlds import World
from autonomy_stack.vector_space import ObjectClass, ObjectState


@dataclass
class DriverParams:
    v0: float = 13.0            # desired speed (m/s), capped by the lane's limit
    T: float = 1.4              # time headway (s)
    s0: float = 2.0             # standstill gap (m)
    a: float = 1.5              # max acceleration (m/s^2)
    b: float = 2.0              # comfortable deceleration (m/s^2)
    delta: float = 4.0
    b_max: float = 8.0          # physical braking limit
    politeness: float = 0.3     # MOBIL
    lc_threshold: float = 0.3   # MOBIL incentive threshold (m/s^2)
    b_safe: float = 3.0         # MOBIL: max decel imposed on the new follower
    lane_change_time: float = 4.0
    lane_changes: bool = True
    a_lat_max: float = 2.0      # curvature speed limit
    stop_time: float = 1.0      # s standing at a stop line
    gap_time: float = 4.0       # s: priority traffic farther than this is a gap
    narrow_mode: str = "yield"  # 'yield' | 'proceed'
    nudge_margin: float = 0.5   # lateral clearance when passing static obstacles (m)
    max_lateral_speed: float = 1.0
    max_lateral_accel: float = 1.0


@dataclass
class Actor:
    """What an agent sees of another road user / obstacle."""
    id: int
    x: float
    y: float
    yaw: float
    speed: float
    length: float
    width: float
    is_static: bool
    is_vehicle: bool


def idm_accel(v: float, v0: float, gap: Optional[float], v_lead: float, p: DriverParams) -> float:
    """IDM acceleration; gap None = free road."""
    v0 = max(v0, 0.1)
    free = 1.0 - (max(v, 0.0) / v0) ** p.delta
    if gap is None:
        return p.a * free
    dv = v - v_lead
    s_star = p.s0 + max(0.0, v * p.T + v * dv / (2.0 * math.sqrt(p.a * p.b)))
    gap = max(gap, 0.05)
    return p.a * (free - (s_star / gap) ** 2)


class Agent:
    id: int
    object_class: ObjectClass
    length: float
    width: float
    height: float
    active: bool = True

    def __init__(self):
        self.x = self.y = self.yaw = 0.0
        self.speed = self.accel = self.yaw_rate = 0.0
        self.active = True

    def to_object(self) -> ObjectState:
        return ObjectState(id=self.id, object_class=self.object_class, x=self.x, y=self.y,
                           yaw=self.yaw, length=self.length, width=self.width,
                           height=self.height, z=self.height / 2.0, speed=self.speed,
                           accel=self.accel, yaw_rate=self.yaw_rate)

    def actor(self) -> Actor:
        return Actor(self.id, self.x, self.y, self.yaw, self.speed, self.length, self.width,
                     False, self.object_class in (ObjectClass.CAR, ObjectClass.TRUCK))


class VehicleAgent(Agent):
    def __init__(self, agent_id: int, world: World, route: Sequence[int], s: float = 0.0,
                 speed: float = 0.0, object_class: ObjectClass = ObjectClass.CAR,
                 length: float = 4.6, width: float = 1.85, height: float = 1.5,
                 params: Optional[DriverParams] = None, cut_in_time: Optional[float] = None,
                 cut_in_direction: str = "left", seed: int = 0):
        super().__init__()
        self.id, self.world = agent_id, world
        self.object_class = object_class
        self.length, self.width, self.height = length, width, height
        self.p = params or DriverParams()
        self.path = Path(world, route)
        self.s, self.d = float(s), 0.0
        self.speed = float(speed)
        self.d_target = 0.0
        self.d_dot = 0.0
        self.lc = None                  # (t0, d0) of a lane change in progress
        self.cut_in_time = cut_in_time
        self.cut_in_direction = cut_in_direction
        self.stop_state: Dict[float, Tuple[str, float]] = {}   # stop s -> (state, t)
        self.passed_stops: set = set()
        self.granted: set = set()              # junction connectors this agent committed to
        self.nudging = False
        self.yielding = False
        self.rng = np.random.default_rng(seed)
        self.next_mobil = float(self.rng.uniform(0.0, 1.0))
        self.leader_gap: Optional[float] = None
        self.leader_id: Optional[int] = None
        self.waiting_since: Optional[float] = None
        ln0 = world.lanes[self.path.lanes[0]]
        self.pull_for: Optional[int] = None
        self.pull_over_room = max(0.0, min(0.8, 0.5 * (ln0.width - width) - 0.2))
        self.x, self.y, self.yaw = self.path.pose(self.s, self.d)

    # ------------------------------------------------------------ perception of others
    def _perceive(self, actors: List[Actor], horizon: float = 80.0):
        """Project the actors ahead onto the path (once per step):
        [(gap, v_along, actor, s_o, d_o, w_eff, l_eff)] sorted by gap."""
        if not actors:
            return []
        q = np.array([[a.x, a.y] for a in actors])
        dx, dy = q[:, 0] - self.x, q[:, 1] - self.y
        ahead = dx * math.cos(self.yaw) + dy * math.sin(self.yaw) > -3.0
        near = ahead & (dx * dx + dy * dy < (horizon + 10) ** 2)
        if not near.any():
            return []
        idx = np.nonzero(near)[0]
        P = self.path
        i0 = P._index(self.s - 5.0)
        i1 = min(P._index(self.s + horizon + 10.0) + 2, len(P.s))
        if i1 - i0 < 2:
            i0, i1 = max(0, i1 - 2), max(i1, 2)
        s_o, d_o = project_to_polyline(P.points[i0:i1], P.s[i0:i1], q[idx])
        out = []
        for k, i in enumerate(idx):
            a = actors[i]
            ds = s_o[k] - self.s
            if ds <= 0.0 or ds > horizon or abs(d_o[k]) > 12.0:
                continue
            h = P.headings[P._index(float(s_o[k]))]
            rel = a.yaw - h
            c, sn = abs(math.cos(rel)), abs(math.sin(rel))
            w_eff = a.length * sn + a.width * c
            l_eff = a.length * c + a.width * sn
            gap = ds - 0.5 * self.length - 0.5 * l_eff
            out.append((gap, a.speed * math.cos(rel), a, float(s_o[k]), float(d_o[k]), w_eff, l_eff))
        out.sort(key=lambda t: t[0])
        return out

    def _in_corridor(self, seen, d_self: float, horizon: float = 80.0):
        return [e for e in seen if abs(e[4] - d_self) <= 0.5 * (self.width + e[5]) + 0.1
                and e[3] - self.s <= horizon]

    def _stop_line_gap(self, t: float, sim) -> Optional[float]:
        """Gap to a stop line that still holds this agent (None if none)."""
        for lid, s_stop in self.path.stops:
            if s_stop in self.passed_stops:
                continue
            dist = s_stop - self.s - 0.5 * self.length
            if dist < -2.0:
                self.passed_stops.add(s_stop)
                continue
            if dist > 60.0:
                return None
            state = self.stop_state.get(s_stop)
            if state is None and dist < 1.0 and self.speed < 0.3:
                self.stop_state[s_stop] = ("waiting", t)
                state = self.stop_state[s_stop]
            if state is not None and state[0] == "waiting":
                if t - state[1] >= self.p.stop_time and sim.junction_clear_for(self, lid, state[1]):
                    self.passed_stops.add(s_stop)
                    self.stop_state[s_stop] = ("passed", t)
                    continue
                return 0.5 * self.p.s0            # standing: hold still at the line
            return max(dist, 0.0) + self.p.s0
        return None

    def _nudge(self, statics: List[Tuple], movers: List[Tuple]) -> float:
        """Lateral offset needed to pass static obstacles blocking the lane (0: none)."""
        need, s_end = 0.0, None
        for (gap, vl, a, s_o, d_o, w_eff, l_eff) in statics:
            if s_o - 0.5 * l_eff - self.s > 25.0:
                continue
            if abs(d_o) > 0.5 * (self.width + w_eff) + 0.2:
                continue
            req = d_o + 0.5 * (w_eff + self.width) + self.p.nudge_margin
            need = max(need, req)
            s_end = max(s_end or -1e9, s_o + 0.5 * l_eff)
        self.yielding = False
        if need <= 0.0:
            self.nudging = False
            return 0.0
        if self.nudging or self.p.narrow_mode == "proceed":
            self.nudging = True
            return need
        # yield: is an oncoming vehicle going to meet us in the passage?
        t_clear = (s_end + 0.5 * self.length + 3.0 - self.s) / max(self.speed, 3.0)
        for e in movers:
            a, s_o, d_o = e[2], e[3], e[4]
            along = e[1]
            if not a.is_vehicle or (along > -0.2 and abs(a.speed) > 0.2) or abs(d_o) > 6.0:
                continue                       # not an oncoming vehicle
            t_arrive = (s_o - s_end - 0.5 * a.length) / max(-along, 0.5)
            if s_o - 0.5 * a.length < s_end + 3.0 or t_arrive < t_clear + 2.0:
                self.yielding = True
                return 0.0                     # wait behind the obstacle
        self.nudging = True
        return need

    def _mobil(self, t: float, sim, leaders_now) -> Optional[int]:
        ln = self.world.lanes[self.path.lane_at(self.s)]
        lane_s = self.s - self.path.lane_start(self.s)
        if ln.in_junction or ln.length - lane_s < 35.0 or lane_s < 5.0:
            return None
        a_cur = self._idm_from(leaders_now)
        best = None
        for nb in (ln.left, ln.right):
            if nb is None:
                continue
            tgt = self.world.lanes[nb]
            veh = [a for a in sim.actors(exclude=self.id) if a.is_vehicle]
            if not veh:
                lead = fol = None
            else:
                q = np.array([[a.x, a.y] for a in veh])
                s_o, d_o = project_to_polyline(tgt.centerline, tgt.s, q)
                s_me = float(project_to_polyline(tgt.centerline, tgt.s,
                                                 np.array([[self.x, self.y]]))[0][0])
                on = [(float(s_o[i]), veh[i]) for i in range(len(veh)) if abs(d_o[i]) < 0.6 * tgt.width]
                ahead = [(so - s_me, a) for so, a in on if so > s_me]
                behind = [(s_me - so, a) for so, a in on if so <= s_me]
                lead = min(ahead, key=lambda z: z[0]) if ahead else None
                fol = min(behind, key=lambda z: z[0]) if behind else None
            v0 = min(self.p.v0, tgt.speed_limit)
            g_lead = None if lead is None else lead[0] - 0.5 * (self.length + lead[1].length)
            a_new = idm_accel(self.speed, v0, g_lead, lead[1].speed if lead else 0.0, self.p)
            if fol is not None:
                g_f = fol[0] - 0.5 * (self.length + fol[1].length)
                if g_f < 1.0:
                    continue
                fp = self.p
                a_fol_new = idm_accel(fol[1].speed, v0, g_f, self.speed, fp)
                if a_fol_new < -self.p.b_safe:
                    continue
                g_old = None if lead is None else (lead[0] + fol[0]) - 0.5 * (lead[1].length + fol[1].length)
                a_fol_old = idm_accel(fol[1].speed, v0, g_old, lead[1].speed if lead else 0.0, fp)
                dfol = a_fol_new - a_fol_old
            else:
                dfol = 0.0
            if g_lead is not None and g_lead < 2.0:
                continue
            bias = 0.1 if nb == ln.right else 0.0       # keep right
            gain = a_new - a_cur + self.p.politeness * dfol + bias
            if gain > self.p.lc_threshold and (best is None or gain > best[0]):
                best = (gain, nb)
        return best[1] if best else None

    def _idm_from(self, leaders) -> float:
        v0 = min(self.p.v0, self.path.limit_at(self.s))
        k = self.path.max_kappa(self.s, self.s + max(10.0, 2.5 * self.speed))
        if k > 1e-4:
            v0 = min(v0, math.sqrt(self.p.a_lat_max / k))
        if leaders:
            gap, vl = leaders[0][0], leaders[0][1]
            return idm_accel(self.speed, v0, gap, vl, self.p)
        return idm_accel(self.speed, v0, None, 0.0, self.p)

    def start_lane_change(self, lane_id: int, t: float):
        """Switch the route to neighbour `lane_id` and blend the lateral offset to 0."""
        route = self.world.route_lanes(lane_id, rng=self.rng)
        new = Path(self.world, route)
        s, d = project_to_polyline(new.points, new.s, np.array([[self.x, self.y]]))
        self.path = new
        self.s, self.d = float(s[0]), float(d[0])
        self.lc = (t, self.d)
        self.passed_stops, self.stop_state, self.granted = set(), {}, set()

    def _may_pull_over(self) -> bool:
        """Only at the right edge of the road and away from junctions."""
        if self.world.lanes[self.path.lane_at(self.s)].right is not None:
            return False
        span = self.next_connector()
        return span is None or span[1] - self.s > 30.0

    def next_connector(self) -> Optional[Tuple[int, float, float]]:
        """(connector id, s_start, s_end) of the next junction connector not yet left."""
        for span in self.path.junction_spans:
            if span[2] > self.s - 0.5 * self.length:
                return span
        return None

    def _junction_gap(self, t: float, sim) -> Optional[float]:
        """Gap to the junction entry while entering would conflict (None: may go)."""
        span = self.next_connector()
        if span is None:
            return None
        cid, s0, s1 = span
        if cid in self.granted:
            return None
        dist = s0 - self.s - 0.5 * self.length
        if dist < -1.0:              # already inside: go on
            self.granted.add(cid)
            return None
        if dist > 40.0:
            return None
        if sim.may_enter(self, cid):
            if dist < 3.0 + self.speed ** 2 / (2.0 * self.p.b):
                self.granted.add(cid)          # committed: others now yield to us
            return None
        return max(dist, 0.0) + self.p.s0

    def decide(self, t: float, dt: float, sim) -> float:
        """Behaviour: update the lateral target / lane change; return the acceleration."""
        actors = sim.actors(exclude=self.id)
        seen = self._perceive(actors)
        corridor = self._in_corridor(seen, self.d)
        movers = [e for e in seen if not e[2].is_static]
        # lateral: lane change blend, static-obstacle nudge, or make room for oncoming traffic
        if self.lc is None:
            self.d_target = self._nudge(self._in_corridor([e for e in seen if e[2].is_static], 0.0, 40.0),
                                        movers)
            if self.d_target == 0.0 and self.pull_over_room > 0.0 and self._may_pull_over():
                ahead = {e[2].id: e for e in movers}
                if self.pull_for is not None and self.pull_for not in ahead:
                    self.pull_for = None          # it has passed: back to the lane centre
                if self.pull_for is None:
                    for e in self._in_corridor(movers, self.d, 35.0):
                        oncoming = math.cos(e[2].yaw - self.yaw) < -0.7
                        if e[2].is_vehicle and oncoming:
                            self.pull_for = e[2].id
                            break
                if self.pull_for is not None:
                    self.d_target = -self.pull_over_room
        leaders = corridor
        crawl = False
        if self.lc is None and abs(self.d - self.d_target) > 0.3:
            if self.nudging:
                # moving out around parked cars: the obstacles being passed are not leaders,
                # what is in the target corridor is; crawl until out
                target = self._in_corridor(seen, self.d_target)
                ids = {e[2].id for e in target}
                leaders = sorted(target + [e for e in corridor if not e[2].is_static
                                           and e[2].id not in ids], key=lambda c: c[0])
                crawl = True
            else:
                # while moving sideways, also respect what is in the target corridor
                leaders = sorted(leaders + [e for e in self._in_corridor(movers, self.d_target)
                                            if e not in leaders], key=lambda c: c[0])
        if self.yielding:       # wait well behind the obstacle: room to pull out later
            leaders = [(e[0] - 3.0,) + tuple(e[1:]) if e[2].is_static else e for e in leaders]
        acc = self._idm_from(leaders)
        if crawl:
            acc = min(acc, idm_accel(self.speed, 3.0, None, 0.0, self.p))
        gstop = self._stop_line_gap(t, sim)
        if gstop is None:
            gstop = self._junction_gap(t, sim)
        if gstop is not None:
            acc = min(acc, self._idm_from([(gstop, 0.0)]))
        self.leader_gap = leaders[0][0] if leaders else None
        self.leader_id = leaders[0][2].id if leaders else None
        # lane changes
        if self.lc is None and self.cut_in_time is not None and t >= self.cut_in_time:
            ln = self.world.lanes[self.path.lane_at(self.s)]
            nb = ln.left if self.cut_in_direction == "left" else ln.right
            self.cut_in_time = None
            if nb is not None:
                self.start_lane_change(nb, t)
        elif self.lc is None and self.p.lane_changes and t >= self.next_mobil and not self.nudging:
            self.next_mobil = t + 1.0
            nb = self._mobil(t, sim, leaders)
            if nb is not None:
                self.start_lane_change(nb, t)
        return max(-self.p.b_max, min(acc, self.p.a))

    def step(self, t: float, dt: float, sim):
        if not self.active:
            return
        acc = self.decide(t, dt, sim)
        v_new = max(0.0, self.speed + acc * dt)
        acc = (v_new - self.speed) / dt
        s_new = self.s + 0.5 * (self.speed + v_new) * dt
        if self.lc is not None:
            t0, d0 = self.lc
            tau = min(1.0, (t + dt - t0) / self.p.lane_change_time)
            d_new = d0 * 0.5 * (1.0 + math.cos(math.pi * tau))
            self.d_dot = (d_new - self.d) / dt
            if tau >= 1.0:
                self.lc, d_new, self.d_dot = None, 0.0, 0.0
        else:
            # lateral offset: speed-limited and acceleration-limited (smooth yaw rate)
            # (non-holonomic: no sideways motion without forward motion, <= ~30 deg)
            vmax = min(self.p.max_lateral_speed, 0.6 * max(self.speed, 0.0))
            want = max(-vmax, min(vmax, 1.2 * (self.d_target - self.d)))
            dv = self.p.max_lateral_accel * dt
            self.d_dot += max(-dv, min(dv, want - self.d_dot))
            d_new = self.d + self.d_dot * dt
        x, y, h = self.path.pose(s_new, d_new)
        ds = s_new - self.s
        yaw = h + math.atan2(d_new - self.d, ds) if ds > 1e-3 else self.yaw
        self.yaw_rate = wrap_angle(yaw - self.yaw) / dt
        self.x, self.y, self.yaw = x, y, wrap_angle(yaw)
        self.s, self.d, self.speed, self.accel = s_new, d_new, v_new, acc
        if self.s >= self.path.length - 0.5:
            self.active = False


class PedestrianAgent(Agent):
    def __init__(self, agent_id: int, path: np.ndarray, speed: float = 1.4, start_time: float = 0.0,
                 wait_for_gap: bool = True, road_span: Tuple[float, float] = (0.0, 1e9),
                 height: float = 1.75, stop_at_end: bool = True):
        super().__init__()
        self.id = agent_id
        self.object_class = ObjectClass.PEDESTRIAN
        self.length, self.width, self.height = 0.5, 0.6, height
        self.points = resample_polyline(np.asarray(path, float), 0.5)
        self.s_cum = arc_length(self.points)
        self.s = 0.0
        self.v_walk = speed
        self.start_time = start_time
        self.wait_for_gap = wait_for_gap
        self.road_span = road_span          # arc-length span of the path that is roadway
        self.stop_at_end = stop_at_end
        self.x, self.y, self.yaw = interpolate_polyline(self.points, self.s_cum, 0.0)

    def _gap_ok(self, sim) -> bool:
        cx, cy, _ = interpolate_polyline(self.points, self.s_cum, 0.5 * sum(self.road_span))
        for a in sim.actors(exclude=self.id):
            if a.is_static or not a.is_vehicle or a.speed < 0.5:
                continue
            dx, dy = cx - a.x, cy - a.y
            dist = math.hypot(dx, dy)
            closing = a.speed * (math.cos(a.yaw) * dx + math.sin(a.yaw) * dy) / max(dist, 1e-6)
            if closing > 0.3 and dist / closing < 4.0 and dist < 40.0:
                return False
        return True

    def _blocked(self, sim) -> bool:
        """A vehicle / obstacle right in front of the walking direction: stand still."""
        _, _, h = interpolate_polyline(self.points, self.s_cum, self.s)
        c, sn = math.cos(h), math.sin(h)
        for a in sim.actors(exclude=self.id):
            if not (a.is_vehicle or a.is_static):
                continue
            dx, dy = a.x - self.x, a.y - self.y
            ahead = dx * c + dy * sn
            if ahead <= 0.0 or dx * dx + dy * dy > (0.5 * a.length + 3.0) ** 2:
                continue
            # distance from the walking line to the box (in the box frame)
            ca, sa = math.cos(a.yaw), math.sin(a.yaw)
            for k in (0.6, 1.2):
                px, py = self.x + k * c - a.x, self.y + k * sn - a.y
                lx, ly = px * ca + py * sa, -px * sa + py * ca
                if abs(lx) < 0.5 * a.length + 0.3 and abs(ly) < 0.5 * a.width + 0.3:
                    return True
        return False

    def step(self, t: float, dt: float, sim):
        if not self.active:
            return
        v = 0.0
        if t >= self.start_time and self.s < self.s_cum[-1]:
            at_kerb = self.s < self.road_span[0] and self.s + 0.8 >= self.road_span[0]
            v = self.v_walk
            if at_kerb and self.wait_for_gap and not self._gap_ok(sim):
                v = 0.0
            elif self._blocked(sim):
                v = 0.0
        s_new = min(self.s + v * dt, float(self.s_cum[-1]))
        v = (s_new - self.s) / dt
        self.accel = (v - self.speed) / dt
        self.speed = v
        self.s = s_new
        x, y, h = interpolate_polyline(self.points, self.s_cum, self.s)
        self.yaw_rate = wrap_angle(h - self.yaw) / dt if v > 0 else 0.0
        self.x, self.y = x, y
        if v > 0:
            self.yaw = h
        if self.s >= self.s_cum[-1] and not self.stop_at_end:
            self.active = False


def make_car(agent_id: int, world: World, route, s: float, speed: float, rng: np.random.Generator,
             truck: bool = False, **kw) -> VehicleAgent:
    """A car or (long) truck with randomised size and driver parameters."""
    if truck:
        dims = dict(object_class=ObjectClass.TRUCK, length=float(rng.uniform(9.0, 16.0)),
                    width=float(rng.uniform(2.4, 2.55)), height=float(rng.uniform(3.2, 4.0)))
        p = DriverParams(v0=float(rng.uniform(20, 24)), T=1.8, a=0.8, b=1.5, s0=3.0)
    else:
        dims = dict(object_class=ObjectClass.CAR, length=float(rng.uniform(4.2, 4.9)),
                    width=float(rng.uniform(1.75, 1.95)), height=float(rng.uniform(1.4, 1.7)))
        p = DriverParams(v0=float(rng.uniform(22, 33)), T=float(rng.uniform(1.1, 1.7)),
                         a=float(rng.uniform(1.2, 2.0)), politeness=float(rng.uniform(0.1, 0.5)))
    params = kw.pop("params", None) or p
    for k in list(kw):
        if hasattr(params, k):
            setattr(params, k, kw.pop(k))
    return VehicleAgent(agent_id, world, route, s=s, speed=speed, params=params,
                        seed=int(rng.integers(2 ** 31)), **dims, **kw)

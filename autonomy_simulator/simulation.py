"""The closed-loop simulation: a world, its agents and the ego, stepped at a fixed `dt`
(default 0.02 s = 50 Hz kinematics). No ROS.

    sim = Simulation(world, agents, ego_start=(x, y, yaw, speed), dt=0.02)
    sim.step(ControlCommand(...))        # or sim.step() with an EgoAutopilot attached
    sim.snapshot()                       # scene.SceneSnapshot for the renderer
    sim.ground_truth("odom")             # VectorSpace in the world frame
    sim.ground_truth("base_link")        # ... in the ego frame
    sim.kinematics()                     # EgoKinematics (odometry / IMU-like signals)

The ego is `autonomy_vehicle.vehicle_model` (kinematic bicycle with steering rate/lag and
acceleration limits) driven by `ControlCommand`s, or by an `EgoAutopilot` (route
follower: the agents' behaviour model for speed and lateral offset + pure pursuit) for
data generation. Commands with non-finite values raise `ValueError` (callers count them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from autonomy_vehicle import vehicle_model as vm
from autonomy_simulator import geometry as geo
from autonomy_stack.geometry import project_to_polyline, to_frame, wrap_angle
from autonomy_simulator.agents import (Actor, Agent, DriverParams, PedestrianAgent,
                                       VehicleAgent)
from autonomy_simulator.lane_path import Path
from autonomy_simulator.scene import SceneSnapshot
from autonomy_simulator.worlds import CAR_COLORS, World
from autonomy_stack.vector_space import (ControlCommand, EgoState, ObjectClass, ObjectState,
                                         RoadLine, VectorSpace)
from autonomy_simulator.agents import idm_accel

EGO_ID = 0
GRAVITY = 9.81
PED_COLORS = [(0.2, 0.3, 0.7), (0.7, 0.2, 0.2), (0.15, 0.15, 0.15), (0.8, 0.7, 0.2), (0.3, 0.6, 0.3)]


@dataclass
class EgoKinematics:
    """Odometry / IMU-like signals of the ego at one step (base_link = rear axle)."""
    stamp: float
    x: float
    y: float
    yaw: float
    speed: float              # m/s forward (signed)
    accel: float              # m/s^2 longitudinal
    lat_accel: float          # m/s^2 (speed * yaw_rate)
    yaw_rate: float           # rad/s
    steering_angle: float     # rad


def command_is_finite(c: ControlCommand) -> bool:
    return all(math.isfinite(float(v)) for v in (c.steering_angle, c.steering_rate,
                                                 c.acceleration, c.target_speed))


class EgoAutopilot:
    """Scripted route follower for data generation: longitudinal and lateral intent from the
    agents' behaviour model (IDM, stop lines, yield/proceed past obstacles) on the route,
    steering by pure pursuit from the rear axle; stops at the end of the route."""

    def __init__(self, world: World, route: Sequence[int], vehicle: vm.VehicleParams,
                 params: Optional[DriverParams] = None, change_at: Optional[Sequence[float]] = None,
                 stop_at_end: bool = True):
        p = params or DriverParams(v0=10.0, lane_changes=False)
        p.lane_changes = False
        self.vehicle = vehicle
        self.brain = VehicleAgent(EGO_ID, world, route, params=p, length=vehicle.length,
                                  width=vehicle.width, height=vehicle.height)
        self.brain.path = Path(world, route, change_at)
        self.path = self.brain.path
        self.stop_at_end = stop_at_end

    def command(self, t: float, dt: float, sim: "Simulation") -> ControlCommand:
        e, a, v = sim.ego, self.brain, self.vehicle
        co = v.center_offset
        cx, cy = e.x + co * math.cos(e.yaw), e.y + co * math.sin(e.yaw)
        s, _ = project_to_polyline(self.path.points, self.path.s, np.array([[cx, cy], [e.x, e.y]]))
        a.x, a.y, a.yaw, a.speed, a.s = cx, cy, e.yaw, max(e.speed, 0.0), float(s[0])
        acc = a.decide(t, dt, sim)
        if self.stop_at_end:
            gap = self.path.length - a.s - 0.5 * v.length + a.p.s0
            if gap < 40.0:
                acc = min(acc, idm_accel(a.speed, a.p.v0, max(gap, 0.0), 0.0, a.p))
        step = a.p.max_lateral_speed * dt * max(0.5, min(1.0, a.speed / 3.0))
        a.d += max(-step, min(step, a.d_target - a.d))
        s_rear = float(s[1])
        ld = max(4.0, 0.9 * abs(e.speed) + 3.0)
        px, py, _ = self.path.pose(s_rear + ld, a.d)
        alpha = math.atan2(py - e.y, px - e.x) - e.yaw
        dist = max(math.hypot(px - e.x, py - e.y), 1.0)
        steer = math.atan2(2.0 * v.wheelbase * math.sin(alpha), dist)
        if e.speed < 0.05 and acc < 0.0:
            acc = -1.0  # hold at standstill
        return ControlCommand(stamp=t, steering_angle=steer, steering_rate=0.0,
                              acceleration=acc, target_speed=a.p.v0)


class Simulation:
    def __init__(self, world: World, agents: Sequence[Agent] = (),
                 ego_start: Tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
                 vehicle: vm.VehicleParams = vm.VehicleParams(), dt: float = 0.02, seed: int = 0,
                 autopilot: Optional[EgoAutopilot] = None,
                 goal: Optional[Tuple[float, float, float]] = None,
                 route: Optional[Sequence[int]] = None, name: str = ""):
        self.world, self.vehicle, self.dt, self.seed = world, vehicle, float(dt), int(seed)
        self.agents: List[Agent] = list(agents)
        self.autopilot = autopilot
        self.goal, self.route, self.name = goal, list(route or []), name
        x, y, yaw, v = ego_start
        self.ego = EgoState(x=float(x), y=float(y), yaw=float(yaw), speed=float(v))
        self.t = 0.0
        self.steps = 0
        self.last_command: Optional[ControlCommand] = None
        self.commands_rejected = 0
        rng = np.random.default_rng(seed)
        self.colors: Dict[int, Tuple[float, float, float]] = dict(world.object_colors)
        for ag in self.agents:
            pal = PED_COLORS if ag.object_class == ObjectClass.PEDESTRIAN else CAR_COLORS
            self.colors[ag.id] = tuple(float(c) for c in pal[int(rng.integers(len(pal)))])
        self._statics = [Actor(o.id, o.x, o.y, o.yaw, 0.0, o.length, o.width, True,
                               o.object_class in (ObjectClass.CAR, ObjectClass.TRUCK))
                         for o in world.static_objects]
        self._actors_cache: Optional[List[Actor]] = None

    # ------------------------------------------------------------------ agents' view
    def ego_object(self) -> ObjectState:
        e, v = self.ego, self.vehicle
        co = v.center_offset
        return ObjectState(id=EGO_ID, object_class=ObjectClass.CAR, x=e.x + co * math.cos(e.yaw),
                           y=e.y + co * math.sin(e.yaw), yaw=e.yaw, length=v.length,
                           width=v.width, height=v.height, z=v.height / 2, speed=e.speed,
                           accel=e.accel, yaw_rate=e.yaw_rate)

    def actors(self, exclude: Optional[int] = None) -> List[Actor]:
        if self._actors_cache is None:
            eo = self.ego_object()
            dyn = [Actor(EGO_ID, eo.x, eo.y, eo.yaw, eo.speed, eo.length, eo.width, False, True)]
            dyn += [a.actor() for a in self.agents if a.active]
            self._actors_cache = dyn + self._statics
        return [a for a in self._actors_cache if a.id != exclude]

    def junction_clear_for(self, agent: VehicleAgent, lane_id: int, wait_start: float) -> bool:
        """May `agent`, standing at the stop line of `lane_id` since `wait_start`, enter?"""
        w = self.world
        if w.junction is None:
            return True
        box = w.junction * 1.0 + np.sign(w.junction) * 1.0
        others = [a for a in self.actors(exclude=agent.id) if not a.is_static and a.is_vehicle]
        if others:
            inside = geo.point_in_polygon(np.array([[a.x, a.y] for a in others]), box)
            if inside.any():
                return False
        for ag in self.agents:     # all-way stop: first come, first served
            if ag is agent or not isinstance(ag, VehicleAgent) or not ag.active:
                continue
            for _, (state, t0) in ag.stop_state.items():
                if state == "waiting" and (t0, ag.id) < (wait_start, agent.id):
                    return False
        # priority traffic (lanes without a stop line) arriving soon
        for ag in self.agents:
            if ag is agent or not isinstance(ag, VehicleAgent) or not ag.active:
                continue
            lid = ag.path.lane_at(ag.s)
            ln = w.lanes[lid]
            if ln.in_junction or ln.stop_line_s is not None or not ln.successors:
                continue
            if not any(w.lanes[s].in_junction for s in ln.successors):
                continue
            dist = ln.length - (ag.s - ag.path.lane_start(ag.s))
            if dist < 0.5 * ag.length + 2.0 or dist / max(ag.speed, 0.1) < agent.p.gap_time:
                return False
        return True

    def _connector_distances(self) -> Dict[Tuple[int, int], float]:
        """Minimum distance between every pair of junction connector centrelines."""
        if getattr(self, "_conn_dist", None) is None:
            conns = [l for l in self.world.lanes.values() if l.in_junction]
            out = {}
            for i, a in enumerate(conns):
                for b in conns[i + 1:]:
                    d = np.hypot(*(a.centerline[:, None, :] - b.centerline[None, :, :]).transpose(2, 0, 1))
                    out[(a.id, b.id)] = out[(b.id, a.id)] = float(d.min())
            self._conn_dist = out
        return self._conn_dist

    @staticmethod
    def _conflict_distance(len_a: float, len_b: float) -> float:
        """Connector paths closer than this conflict (long vehicles sweep wider in turns)."""
        return 3.0 + 0.3 * max(0.0, max(len_a, len_b) - 5.0)

    def _deciders(self) -> List[VehicleAgent]:
        out = [a for a in self.agents if isinstance(a, VehicleAgent) and a.active]
        if self.autopilot is not None:
            out.append(self.autopilot.brain)
        return out

    def may_enter(self, agent: VehicleAgent, connector: int) -> bool:
        """May `agent` enter junction connector `connector` now? Not while a vehicle is in
        (or committed to) a conflicting connector; a left turn / a stop-line approach
        also yields to priority traffic on a conflicting connector arriving soon."""
        w = self.world
        cdist = self._connector_distances()
        me_lane = w.lanes[w.lanes[connector].predecessors[0]] if w.lanes[connector].predecessors else None
        me_minor = me_lane is not None and me_lane.stop_line_s is not None
        me_left = w.lanes[connector].turn == "left"
        for other in self._deciders():
            if other is agent:
                continue
            span = other.next_connector()
            if span is None:
                continue
            cid, s0, _ = span
            if cid != connector and cdist.get((cid, connector), 1e9) >= \
                    self._conflict_distance(agent.length, other.length):
                continue
            if cid == connector:
                continue                          # same connector: plain car following
            dist = s0 - other.s - 0.5 * other.length
            if cid in other.granted or dist < -0.5:
                return False                      # inside or committed
            src = w.lanes[cid].predecessors[0] if w.lanes[cid].predecessors else None
            other_minor = src is not None and w.lanes[src].stop_line_s is not None
            yields = me_minor and not other_minor or \
                (me_minor == other_minor and me_left and w.lanes[cid].turn != "left")
            if yields and not other_minor and dist / max(other.speed, 0.1) < agent.p.gap_time:
                return False
            if yields and other_minor and dist < 2.0 and other.speed < 0.5:
                continue
        if self.autopilot is None and w.junction is not None:
            eo = self.ego_object()
            box = w.junction + np.sign(w.junction) * 1.0
            if geo.point_in_polygon(np.array([[eo.x, eo.y]]), box)[0] and agent.id != EGO_ID:
                return False
        return True

    # ------------------------------------------------------------------ stepping
    def apply_command(self, cmd: ControlCommand) -> None:
        if not command_is_finite(cmd):
            self.commands_rejected += 1
            raise ValueError("control command with non-finite values")
        self.last_command = cmd

    def _ego_step(self, cmd: Optional[ControlCommand]):
        p = self.vehicle
        if cmd is None:
            steer, acc, gear = self.ego.steering_angle, -2.0, 1
        else:
            steer, gear = cmd.steering_angle, int(cmd.gear)
            if cmd.emergency:
                # the watchdog's stop is a bounded deceleration carried in `acceleration`
                # (along the direction of travel): apply it, do not slam the brakes
                acc = cmd.acceleration if self.ego.speed >= 0 else -cmd.acceleration
            elif gear >= 1:
                acc = cmd.acceleration
            elif gear <= -1:
                acc = -cmd.acceleration
            else:
                acc = -0.3 * math.copysign(1.0, self.ego.speed) if abs(self.ego.speed) > 0.05 else 0.0
        new = vm.step(self.ego, steer, acc, self.dt, p)
        # the gear decides the direction of travel: never roll the other way
        if (gear >= 1 and new.speed < 0.0) or (gear <= -1 and new.speed > 0.0) or \
                (cmd is None and self.ego.speed >= 0 and new.speed < 0):
            new = replace(new, speed=0.0, accel=(0.0 - self.ego.speed) / self.dt)
        self.ego = new

    def step(self, command: Optional[ControlCommand] = None) -> None:
        """Advance one `dt`: agents, then the ego (command > autopilot > last command)."""
        if command is not None:
            self.apply_command(command)
            cmd = command
        elif self.autopilot is not None:
            self._actors_cache = None
            cmd = self.autopilot.command(self.t, self.dt, self)
        else:
            cmd = self.last_command
        self._actors_cache = None
        for ag in self.agents:
            ag.step(self.t, self.dt, self)
        self._ego_step(cmd)
        self.t = round((self.steps + 1) * self.dt, 9)
        self.steps += 1
        self.ego = replace(self.ego, stamp=self.t)
        self._actors_cache = None

    def run(self, duration: float) -> None:
        for _ in range(int(round(duration / self.dt))):
            self.step()

    # ------------------------------------------------------------------ outputs
    def objects(self) -> List[ObjectState]:
        """Agents (active) + static obstacles, world frame (the ego is not included)."""
        return [a.to_object() for a in self.agents if a.active] + list(self.world.static_objects)

    def snapshot(self) -> SceneSnapshot:
        w = self.world
        return SceneSnapshot(stamp=self.t, ego=replace(self.ego), drivable_polygons=w.drivable_polygons,
                             painted_lines=w.painted_lines, curbs=w.curbs, road_edges=w.road_edges,
                             objects=self.objects(), object_colors=self.colors,
                             ground_color=w.ground_color, seed=w.seed)

    def ground_truth(self, frame: str = "odom", objects: Optional[List[ObjectState]] = None) -> VectorSpace:
        """Vector space at the current step in "odom" (world) or "base_link" (ego) frame."""
        objs = self.objects() if objects is None else objects
        v = VectorSpace(stamp=self.t, frame_id="odom", objects=objs, lines=self.world.road_lines(),
                        drivable_area=self.world.drivable_polygons[0])
        if frame == "odom":
            return v
        if frame != "base_link":
            raise ValueError(f"unknown frame {frame!r}")
        return to_ego_frame(v, self.ego)

    def kinematics(self) -> EgoKinematics:
        e = self.ego
        return EgoKinematics(e.stamp, e.x, e.y, e.yaw, e.speed, e.accel, e.speed * e.yaw_rate,
                             e.yaw_rate, e.steering_angle)


def to_ego_frame(v: VectorSpace, ego: EgoState) -> VectorSpace:
    """Express a world-frame vector space in the ego's base_link frame."""
    def pts(p):
        return to_frame(p, ego.x, ego.y, ego.yaw)

    xy = pts(np.array([[o.x, o.y] for o in v.objects], float).reshape(-1, 2))
    objs = [replace(o, x=float(x), y=float(y), yaw=wrap_angle(o.yaw - ego.yaw))
            for o, (x, y) in zip(v.objects, xy)]
    lines = [RoadLine(l.id, l.line_type, pts(l.points), l.confidence, l.height) for l in v.lines]
    da = None if v.drivable_area is None else pts(v.drivable_area)
    return VectorSpace(stamp=v.stamp, frame_id="base_link", objects=objs, lines=lines, drivable_area=da)

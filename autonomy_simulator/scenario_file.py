"""Scenarios from files (no ROS): a recorded scene recreated for the simulator, e.g. the
auto-labeled scene around a failure (autonomy_autolabel.failure writes these).

    sc = load("out/failure/scenario.yaml")      # -> scenarios' Scenario record
    sc.sim.step() ...

File format "autonomy_scenario_file/1" (YAML):
  world: {scenario: NAME, seed: S, params: {...}}   the catalogue scenario whose world
                                                   (roads, world static objects), ego
                                                   route, autopilot and goal are reused;
                                                   its own agents are not
  ego: {start: [x, y, yaw, speed]}                 ego pose and speed at t = 0
  duration_s: D                                    how long the recreated scene lasts
  agents: - {id, class (ObjectClass name), length, width, height, static (bool),
             trajectory: [[t, x, y, yaw, speed], ...]}   scripted: replayed as recorded
                                                   (linear interpolation), present from
                                                   the first to the last sample; a static
                                                   agent closer to a world static object
                                                   than `DUPLICATE_M` or 0.7 x its length
                                                   is that object (skipped)
Errors (missing file, other format, unknown scenario or class, an agent without
trajectory samples) raise ScenarioFileError naming the problem.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import List

import numpy as np
import yaml

from autonomy_simulator import scenarios
from autonomy_simulator.agents import Agent
from autonomy_simulator.scenario_base import Scenario
from autonomy_simulator.simulation import Simulation
from autonomy_stack.geometry import wrap_angle
from autonomy_stack.vector_space import ObjectClass

FORMAT = "autonomy_scenario_file/1"
DUPLICATE_M = 2.5


class ScenarioFileError(ValueError):
    pass


class ScriptedAgent(Agent):
    """An agent that replays a recorded trajectory [[t, x, y, yaw, speed], ...]."""

    def __init__(self, agent_id: int, object_class: ObjectClass, length: float, width: float,
                 height: float, trajectory: np.ndarray):
        super().__init__()
        self.id, self.object_class = int(agent_id), ObjectClass(object_class)
        self.length, self.width, self.height = float(length), float(width), float(height)
        self.traj = np.asarray(trajectory, float)
        self.step(0.0, 0.0, None)

    def step(self, t: float, dt: float, sim) -> None:
        tr = self.traj
        self.active = bool(tr[0, 0] - 1e-9 <= t <= tr[-1, 0] + 1e-9)
        tc = float(np.clip(t, tr[0, 0], tr[-1, 0]))
        self.x, self.y = (float(np.interp(tc, tr[:, 0], tr[:, i])) for i in (1, 2))
        k = int(np.clip(np.searchsorted(tr[:, 0], tc), 1, max(1, len(tr) - 1))) if len(tr) > 1 else 0
        if len(tr) > 1:
            a, b = tr[k - 1], tr[k]
            f = 0.0 if b[0] <= a[0] else (tc - a[0]) / (b[0] - a[0])
            self.yaw = float(wrap_angle(a[3] + f * float(wrap_angle(b[3] - a[3]))))
            self.speed = float(a[4] + f * (b[4] - a[4]))
            self.accel = float((b[4] - a[4]) / (b[0] - a[0])) if b[0] > a[0] else 0.0
        else:
            self.yaw, self.speed = float(tr[0, 3]), float(tr[0, 4])


def _agents(doc: dict, world) -> List[ScriptedAgent]:
    out = []
    for i, a in enumerate(doc.get("agents") or []):
        try:
            cls = ObjectClass[str(a["class"]).upper()]
        except KeyError as exc:
            raise ScenarioFileError(f"agent {i}: unknown class {a.get('class')!r}") from exc
        traj = np.asarray(a.get("trajectory") or [], float)
        if traj.ndim != 2 or traj.shape[0] < 1 or traj.shape[1] != 5:
            raise ScenarioFileError(f"agent {i} (id {a.get('id')}): trajectory must be [[t, x, y, yaw, speed], ...]")
        near = max(DUPLICATE_M, 0.7 * float(a["length"]))
        if a.get("static") and any(math.hypot(o.x - traj[0, 1], o.y - traj[0, 2]) < near
                                   for o in world.static_objects):
            continue
        out.append(ScriptedAgent(int(a["id"]), cls, a["length"], a["width"], a["height"], traj))
    return out


def load(path) -> Scenario:
    """The Scenario of a scenario file (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise ScenarioFileError(f"{path}: no such scenario file")
    doc = yaml.safe_load(path.read_text()) or {}
    if doc.get("format") != FORMAT:
        raise ScenarioFileError(f"{path}: format {doc.get('format')!r}, expected {FORMAT!r}")
    w = doc.get("world") or {}
    try:
        base = scenarios.make(str(w.get("scenario")), seed=int(w.get("seed", 0)), **(w.get("params") or {}))
    except (ValueError, TypeError) as exc:
        raise ScenarioFileError(f"{path}: world: {exc}") from exc
    world = base.sim.world
    start = [float(v) for v in (doc.get("ego") or {}).get("start", [])]
    if len(start) != 4:
        raise ScenarioFileError(f"{path}: ego.start must be [x, y, yaw, speed]")
    sim = Simulation(world, _agents(doc, world), ego_start=tuple(start), vehicle=base.sim.vehicle,
                     dt=base.sim.dt, seed=base.seed, autopilot=base.sim.autopilot, goal=base.goal,
                     route=base.route, name=f"file:{path.name}")
    return Scenario(f"file:{path.name}", base.seed, {"file": str(path), "duration_s": doc.get("duration_s")},
                    sim, base.goal, base.route, base.route_path, str(doc.get("description", "")))

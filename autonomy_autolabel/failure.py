"""Failure -> scenario: find where the stack failed in a recorded run and write the
auto-labeled scene around it as a simulator scenario file
(autonomy_simulator.scenario_file, format autonomy_scenario_file/1).

    python -m autonomy_autolabel.failure BAG --world narrow_street_oncoming:3 --out DIR
        [--before 4] [--after 4] [--event-index 0]

Events (`find_events`): a /supervisor/status (DiagnosticStatus) at ERROR (its message
names the reason), and a collision: the ego footprint (/ground_truth/ego or /odom, the
vehicle's box) overlapping a /ground_truth/objects box. The scene is the auto-labels of
the clip (tracks with hindsight) from `before` s ahead of the event to `after` s past it:
every track present then becomes a scripted agent replaying its smoothed trajectory
(parked tracks: one static pose), the ego starts where /odom had it at the window start.

What it cannot do: build the road from the fused road labels. The world is the catalogue
scenario given by `--world NAME:SEED` (the run's own world for a simulator run); a clip
of a real vehicle would need a world built from the auto-labeled road.
Exit 0 written; 3 no failure event in the bag; 2 bad input.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import yaml

from autonomy_autolabel.labeler import ClipLabels, autolabel_clip
from autonomy_replay.bag import stamp_ns
from autonomy_replay.bag_data import BagData, quat_yaw
from autonomy_simulator.scenario_file import FORMAT
from autonomy_stack.geometry import box_corners, boxes_overlap
from autonomy_stack.ros.ros_conversions import msg_to_object
from autonomy_vehicle.vehicle_model import VehicleParams

ERROR_LEVEL = 2


@dataclass
class FailureEvent:
    kind: str            # supervisor | collision
    stamp_ns: int
    message: str


def _supervisor_events(data: BagData) -> List[FailureEvent]:
    out = []
    for t, m in data.get("/supervisor/status"):
        level = m.level if isinstance(m.level, int) else int.from_bytes(bytes(m.level), "little")
        if level >= ERROR_LEVEL:
            out.append(FailureEvent("supervisor", int(t), f"{m.name}: {m.message}"))
    return out


def _collision_events(data: BagData, vehicle: VehicleParams) -> List[FailureEvent]:
    ego = data.get("/ground_truth/ego") or data.get("/odom")
    if not ego or not data.get("/ground_truth/objects"):
        return []
    ego_at = {stamp_ns(m.header.stamp): m for _, m in ego}
    out, hit = [], set()
    for _, m in data.get("/ground_truth/objects"):
        s = stamp_ns(m.header.stamp)
        e = ego_at.get(s)
        if e is None:
            continue
        p = e.pose.pose
        yaw = quat_yaw(p.orientation)
        ego_box = box_corners(p.position.x, p.position.y, yaw, vehicle.length, vehicle.width,
                              vehicle.center_offset)
        for o in (msg_to_object(x) for x in m.objects):
            if o.id not in hit and boxes_overlap(ego_box, o.corners()):
                hit.add(o.id)
                out.append(FailureEvent("collision", s, f"ego footprint overlaps object {o.id}"))
    return out


def find_events(bag) -> List[FailureEvent]:
    """Failure events of a recorded run, in time order."""
    data = BagData(bag, lambda t, mt: t in ("/supervisor/status", "/ground_truth/ego", "/odom",
                                            "/ground_truth/objects"))
    return sorted(_supervisor_events(data) + _collision_events(data, VehicleParams()),
                  key=lambda e: e.stamp_ns)


def scene_document(labels: ClipLabels, event: FailureEvent, world: dict, before: float = 4.0,
                   after: float = 4.0) -> dict:
    """The scenario file's content for the window around `event` (times from its start)."""
    t_event = event.stamp_ns * 1e-9
    st = labels.stamps
    ks = [k for k in range(len(st)) if t_event - before <= st[k] <= t_event + after]
    if not ks:
        raise ValueError(f"no labeled frame within {before} s before / {after} s after the event "
                         f"at {t_event:.2f} s")
    t0 = st[ks[0]]
    f0 = labels.frames[ks[0]]
    agents = []
    window = set(ks)
    for tr in labels.tracks:
        samples = [(st[int(k)] - t0, s) for k, s in zip(tr.frames, tr.states) if int(k) in window]
        if not samples:
            continue
        if tr.static:
            samples = [samples[0]]
        agents.append({"id": int(tr.id), "class": tr.object_class.name, "length": float(tr.size[0]),
                       "width": float(tr.size[1]), "height": float(tr.size[2]), "static": bool(tr.static),
                       "trajectory": [[round(float(t), 3), round(s.x, 3), round(s.y, 3), round(s.yaw, 4),
                                       round(s.speed, 3)] for t, s in samples]})
    if any(a["static"] for a in agents):
        span = float(st[ks[-1]] - t0)
        for a in agents:             # a parked object stays for the whole scene
            if a["static"]:
                a["trajectory"].append([round(span, 3)] + a["trajectory"][0][1:])
    return {"format": FORMAT,
            "description": f"recreated from {labels.perception.bag}: {event.kind} at {t_event:.2f} s "
                           f"({event.message}); auto-labeled scene {before:g} s before to {after:g} s after",
            "source": {"bag": str(labels.perception.bag), "event": {"kind": event.kind, "time_s": t_event,
                                                                    "message": event.message}},
            "world": world, "duration_s": float(st[ks[-1]] - t0),
            "ego": {"start": [float(f0.pose[0]), float(f0.pose[1]), float(f0.pose[2]), float(f0.kinematics[0])]},
            "agents": agents}


def parse_world(text: str) -> dict:
    name, _, seed = text.partition(":")
    if not name or not seed.lstrip("-").isdigit():
        raise ValueError(f"--world must be NAME:SEED (a catalogue scenario), got {text!r}")
    return {"scenario": name, "seed": int(seed), "params": {}}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m autonomy_autolabel.failure", description=__doc__.split("\n")[0])
    ap.add_argument("bag")
    ap.add_argument("--world", required=True, help="NAME:SEED of the catalogue scenario whose world the run used")
    ap.add_argument("--out", required=True)
    ap.add_argument("--before", type=float, default=4.0)
    ap.add_argument("--after", type=float, default=4.0)
    ap.add_argument("--event-index", type=int, default=0)
    a = ap.parse_args(argv)
    try:
        world = parse_world(a.world)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not Path(a.bag).exists():
        print(f"error: no such bag {a.bag}", file=sys.stderr)
        return 2
    events = find_events(a.bag)
    if len(events) <= a.event_index:
        print(f"{a.bag}: no failure event (supervisor ERROR or collision) number {a.event_index}")
        return 3
    # lazy: heavy dependency (the network), only once an event is found
    import torch
    from autonomy_perception.inference_engine import InferenceEngine
    from autonomy_stack.paths import share_dir
    torch.set_num_threads(1)
    engine = InferenceEngine.from_checkpoint(share_dir() / "models" / "perception_tiny.pt", "cpu")
    labels = autolabel_clip(a.bag, engine)
    doc = scene_document(labels, events[a.event_index], world, a.before, a.after)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scenario.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    print(f"written: {out / 'scenario.yaml'} ({len(doc['agents'])} agents, {doc['duration_s']:.1f} s; "
          f"{doc['description']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

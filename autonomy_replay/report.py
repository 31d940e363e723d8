"""The replay report (pure: rosbags + numpy, no rclpy).

`build_report(input_bag, output_bag, stats, problems, ...)` -> dict (report.json):
  bag          input bag summary (storage, duration, topics with counts and types)
  replay       player statistics (played/undelivered/recorded per topic, wall time ...)
  problems     bag problems [{kind, topic, message}]
  exit_code    the replay's exit code
  rates        {"input": {topic: {count, hz}}, "output": {...}} (Hz in sim time)
  latency      per node and stage from LatencyReport topics (/perception/latency or any
               topic of that type): {node: {stages: {stage: {count, mean, p50, p95, max}},
               total_ms: {...}, frames_processed, frames_skipped}}; and output_age_ms per
               output topic (log time - header.stamp, sim time)
  perception   when the bag has /ground_truth/...: the figures of the one evaluation
               protocol (autonomy_perception.evaluation.protocol, as offline): vehicle AP
               (mean of 0.5/1/2/4 m), AP per group / threshold / range bin, velocity
               error, recall, occluded recall, BEV IoU per layer on the network's extent
               (perception_eval.py: frames, ego-frame conversion, extent source)
  planning     when the bag has ground-truth agents: collisions of the driven (/odom) and
               planned (/planning/trajectory) ego footprint, comfort, progress
  regression   the regression result when a reference was given
`write_report` writes report.json, report.md and the renderings (see render.py).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from autonomy_replay import metrics as M
from autonomy_replay.bag import BagReader, stamp_ns
from autonomy_replay.bag_data import (BagData, load_ego_shape, nearest_by_stamp, non_image,
                                      quat_yaw)
from autonomy_replay.perception_eval import perception_markdown, perception_metrics
from autonomy_replay.render import render_replay
from autonomy_stack.geometry import rotation

LATENCY_TYPE = "autonomy_interfaces/msg/LatencyReport"
OBJECTS_TYPE = "autonomy_interfaces/msg/ObjectArray"


def objects_to_boxes(msg, ego_msgs: Optional[list] = None) -> M.Boxes:
    """ObjectArray -> Boxes; with `ego_msgs` ([(t, Odometry)]) objects in the ego frame
    (header.frame_id == the odometry's child frame, e.g. base_link) are moved to odom."""
    objs = list(msg.objects)
    if not objs:
        return M.Boxes.empty()
    b = _boxes(objs)
    if ego_msgs and msg.header.frame_id == ego_msgs[0][1].child_frame_id:
        ego = nearest_by_stamp(ego_msgs, stamp_ns(msg.header.stamp))
        if ego is not None:
            p = ego.pose.pose
            yaw = quat_yaw(p.orientation)
            R = rotation(yaw)
            b.xy = b.xy @ R.T + np.array([p.position.x, p.position.y])
            b.vel = b.vel @ R.T
            b.yaw = b.yaw + yaw
    return b


def _boxes(objs) -> M.Boxes:
    return M.Boxes(
        xy=np.array([[o.pose.position.x, o.pose.position.y] for o in objs], float),
        cls=np.array([int(o.object_class.value) for o in objs], int),
        score=np.array([float(o.score) for o in objs], float),
        vel=np.array([[o.velocity.x, o.velocity.y] for o in objs], float),
        ids=np.array([int(o.id) for o in objs], int),
        occluded=np.array([bool(o.occluded) for o in objs], bool),
        yaw=np.array([quat_yaw(o.pose.orientation) for o in objs], float),
        size=np.array([[o.size.x, o.size.y] for o in objs], float))


def _rates(data: BagData, start_ns=None, end_ns=None) -> dict:
    out = {}
    for topic, times in sorted(data.times.items()):
        tt = np.asarray(times, dtype=np.int64)
        span = (tt.max() - tt.min()) * 1e-9 if len(tt) > 1 else 0.0
        out[topic] = {"count": int(len(tt)), "type": data.types.get(topic, ""),
                      "hz": round((len(tt) - 1) / span, 3) if span > 0 else None}
    return out


def _latency(datas: Sequence[BagData]) -> dict:
    nodes: Dict[str, dict] = {}
    for data in datas:
        for topic, mt in data.types.items():
            if mt != LATENCY_TYPE:
                continue
            for _t, m in data.get(topic):
                n = nodes.setdefault(m.node or topic, {"topic": topic, "stages": {}, "total": [],
                                                       "processed": 0, "skipped": 0})
                for st in m.stages:
                    n["stages"].setdefault(st.stage, []).append(float(st.duration_ms))
                n["total"].append(float(m.total_ms))
                n["processed"] = max(n["processed"], int(m.frames_processed))
                n["skipped"] = max(n["skipped"], int(m.frames_skipped))
    return {name: {"topic": n["topic"],
                   "stages": {s: M.summarize(v) for s, v in n["stages"].items()},
                   "total_ms": M.summarize(n["total"]), "frames_processed": n["processed"],
                   "frames_skipped": n["skipped"]} for name, n in nodes.items()}


def _output_age(out: BagData) -> dict:
    res = {}
    for topic, msgs in out.topics.items():
        ages = [(t - stamp_ns(m.header.stamp)) * 1e-6 for t, m in msgs
                if hasattr(m, "header") and stamp_ns(m.header.stamp) > 0]
        if ages:
            res[topic] = M.summarize(ages)
    return res


def _pick(topic: str, inp: BagData, out: BagData) -> list:
    return out.get(topic) or inp.get(topic)


def _agent_tracks(inp: BagData) -> M.AgentTracks:
    ego = inp.get("/odom") or inp.get("/ground_truth/ego")
    return M.AgentTracks([(stamp_ns(m.header.stamp) * 1e-9, objects_to_boxes(m, ego))
                          for _, m in inp.get("/ground_truth/objects")])


def planning_metrics(inp: BagData, out: BagData, ego: M.EgoShape = M.EgoShape()) -> dict:
    res: dict = {}
    agents = _agent_tracks(inp)
    odom = _pick("/odom", inp, out) or inp.get("/ground_truth/ego")
    if odom:
        t = np.array([stamp_ns(m.header.stamp) * 1e-9 for _, m in odom])
        xy = np.array([[m.pose.pose.position.x, m.pose.pose.position.y] for _, m in odom])
        yaw = np.array([quat_yaw(m.pose.pose.orientation) for _, m in odom])
        v = np.array([m.twist.twist.linear.x for _, m in odom])
        keep = np.concatenate([[True], np.diff(t) > 1e-6])
        t, xy, yaw, v = t[keep], xy[keep], yaw[keep], v[keep]
        driven = {"distance_m": M.path_length(xy),
                  "duration_s": float(t[-1] - t[0]) if len(t) > 1 else 0.0,
                  "mean_speed_mps": float(np.mean(v)), "comfort": M.comfort(t, v, yaw)}
        if len(agents.times):
            hits = M.collisions(list(zip(t, xy[:, 0], xy[:, 1], yaw)), agents, ego)
            driven["collisions"] = len({h["agent_id"] for h in hits})
            driven["collision_events"] = hits[:10]
        gt_ego = inp.get("/ground_truth/ego")
        if gt_ego and len(gt_ego) > 1:
            gt_t = np.array([stamp_ns(m.header.stamp) * 1e-9 for _, m in gt_ego])
            gxy = np.array([[m.pose.pose.position.x, m.pose.pose.position.y] for _, m in gt_ego])
            # same time span on both sides (the rates may differ)
            lo, hi = max(gt_t[0], t[0]), min(gt_t[-1], t[-1])
            gsel, dsel = (gt_t >= lo) & (gt_t <= hi), (t >= lo) & (t <= hi)
            expert, mine = M.path_length(gxy[gsel]), M.path_length(xy[dsel])
            driven["progress_ratio_vs_ground_truth"] = mine / expert if expert > 0 else None
        res["driven"] = driven
    plans = _pick("/planning/trajectory", inp, out)
    if plans:
        lengths, comforts, hits_all, n_coll = [], [], [], 0
        for _, m in plans:
            if len(m.points) < 2:
                continue
            t0 = stamp_ns(m.header.stamp) * 1e-9
            tt = np.array([p.time_from_start.sec + p.time_from_start.nanosec * 1e-9
                           for p in m.points])
            xy = np.array([[p.pose.position.x, p.pose.position.y] for p in m.points])
            yaw = np.array([quat_yaw(p.pose.orientation) for p in m.points])
            lengths.append(M.path_length(xy))
            comforts.append(M.comfort(tt, np.array([p.speed for p in m.points]), yaw,
                                      np.array([p.acceleration for p in m.points]),
                                      np.array([p.curvature for p in m.points])))
            if len(agents.times):
                hits = M.collisions(list(zip(t0 + tt, xy[:, 0], xy[:, 1], yaw)), agents, ego)
                if hits:
                    n_coll += 1
                    hits_all.extend(hits[:2])
        ok = [c["comfortable"] for c in comforts if c.get("comfortable") is not None]
        res["planned"] = {
            "trajectories": len(plans), "progress_m": M.summarize(lengths),
            "comfortable_ratio": float(np.mean(ok)) if ok else None,
            "max_abs_jerk": max((c.get("jerk_abs_max", 0.0) for c in comforts), default=None),
            "max_abs_lat_accel": max((c.get("lat_accel_abs_max", 0.0) for c in comforts),
                                     default=None),
            "plans_in_collision": n_coll if len(agents.times) else None,
            "collision_events": hits_all[:10]}
    if not res:
        return {"available": False, "reason": "no /odom, /ground_truth/ego or /planning/trajectory"}
    res["available"] = True
    res["ground_truth_agents"] = bool(len(agents.times))
    return res


def build_report(input_bag, output_bag, stats=None, problems=(), regression=None,
                 exit_code: Optional[int] = None, options: Optional[dict] = None) -> dict:
    inp = BagData(input_bag, non_image)
    out = BagData(output_bag, non_image)
    try:
        reader = BagReader(input_bag)
        bag = {"path": str(input_bag), "storage": reader.storage,
               "messages": reader.message_count,
               "duration_s": ((reader.end_ns - reader.start_ns) * 1e-9
                              if reader.start_ns is not None else 0.0),
               "topics": {n: {"type": t.msgtype, "count": t.count}
                          for n, t in sorted(reader.topics.items())}}
        reader.close()
    except Exception as exc:
        bag = {"path": str(input_bag), "error": str(exc)}
    rep = {
        "bag": bag,
        "output_bag": str(output_bag) if output_bag else None,
        "options": {k: v for k, v in (options or {}).items() if isinstance(v, (str, int, float,
                                                                           bool, list, type(None)))},
        "exit_code": exit_code,
        "replay": stats.to_dict() if stats is not None else None,
        "problems": [{"kind": p.kind, "topic": p.topic, "message": p.message} for p in problems],
        "rates": {"input": _rates(inp), "output": _rates(out)},
        "latency": _latency([out, inp]),
        "output_age_ms": _output_age(out),
        "perception": perception_metrics(inp, out, options),
        "planning": planning_metrics(inp, out, load_ego_shape()),
        "regression": regression.to_dict() if regression is not None else None,
    }
    return rep


def _fmt(v, nd=3):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _planning_markdown(q: dict) -> list:
    """Lines of the report's planning section (driven and planned metrics)."""
    lines = []
    if not q.get("available"):
        lines.append(f"not evaluated: {q.get('reason')}")
        return lines
    d = q.get("driven")
    if d:
        c = d["comfort"]
        lines.append(f"- driven: {_fmt(d['distance_m'], 1)} m in {_fmt(d['duration_s'], 1)} s, "
                     f"collisions {d.get('collisions', '–')}, comfortable "
                     f"{c.get('comfortable')}, progress vs ground truth "
                     f"{_fmt(d.get('progress_ratio_vs_ground_truth'))}")
    pl = q.get("planned")
    if pl:
        lines.append(f"- planned: {pl['trajectories']} trajectories, progress mean "
                     f"{_fmt(pl['progress_m'].get('mean'), 1)} m, in collision "
                     f"{pl['plans_in_collision']}, comfortable {_fmt(pl['comfortable_ratio'])}")
    else:
        lines.append("- planned: no /planning/trajectory")
    return lines


def markdown(rep: dict) -> str:
    b = rep.get("bag", {})
    lines = [f"# Replay report: `{b.get('path')}`", ""]
    r = rep.get("replay") or {}
    lines.append(f"- bag: {b.get('storage')}, {b.get('messages')} messages, "
                 f"{_fmt(b.get('duration_s'), 2)} s, {len(b.get('topics', {}))} topics")
    if r:
        lines.append(f"- played {r.get('messages_played')} messages "
                     f"({r.get('bytes_played', 0) / 1e6:.1f} MB) in {_fmt(r.get('wall_s'), 2)} s; "
                     f"recorded {sum((r.get('recorded') or {}).values())} messages on "
                     f"{len(r.get('recorded') or {})} topics")
        und = {t: n for t, n in (r.get("undelivered") or {}).items()
               if t in (r.get("had_subscribers") or [])}
        if und:
            lines.append(f"- undeliverable: {und}")
        lines += [f"- graph link not matched (nothing played): {k}: {v}"
                  for k, v in (r.get("missing_links") or {}).items()]
        lines += [f"- **lost**: `{t}` received {c['received']} of {c['expected']} expected"
                  for t, c in (r.get("lost") or {}).items()]
    lines.append(f"- exit code: {rep.get('exit_code')}")
    if rep.get("problems"):
        lines += ["", "## Bag problems", ""]
        lines += [f"- **{p['kind']}**{' `' + p['topic'] + '`' if p['topic'] else ''}: "
                  f"{p['message']}" for p in rep["problems"]]
    lines += ["", "## Topic rates (sim time)", "", "| topic | in (n / Hz) | out (n / Hz) |",
              "|---|---|---|"]
    ri, ro = rep["rates"]["input"], rep["rates"]["output"]
    for t in sorted(set(ri) | set(ro)):
        a, o = ri.get(t), ro.get(t)
        cell = lambda x: f"{x['count']} / {_fmt(x['hz'], 1)}" if x else ""  # noqa: E731
        lines.append(f"| `{t}` | {cell(a)} | {cell(o)} |")
    if rep.get("latency"):
        lines += ["", "## Stage latency (ms)", "", "| node | stage | n | mean | p50 | p95 | max |",
                  "|---|---|---|---|---|---|---|"]
        for node, d in rep["latency"].items():
            for st, s in list(d["stages"].items()) + [("total", d["total_ms"])]:
                if s.get("count"):
                    lines.append(f"| {node} | {st} | {s['count']} | {_fmt(s['mean'], 2)} | "
                                 f"{_fmt(s['p50'], 2)} | {_fmt(s['p95'], 2)} | {_fmt(s['max'], 2)} |")
    p = rep.get("perception") or {}
    lines += ["", "## Perception", ""]
    lines += perception_markdown(p)
    lines += ["", "## Planning", ""]
    lines += _planning_markdown(rep.get("planning") or {})
    if rep.get("regression"):
        g = rep["regression"]
        lines += ["", "## Regression", "", f"{'PASSED' if g['passed'] else 'FAILED'} against "
                  f"`{g['reference']}` ({len(g['differences'])} differences)"]
        lines += [f"- {d}" for d in g["differences"][:30]]
    if rep.get("renders"):
        lines += ["", "## Renderings", ""]
        for name in rep["renders"].get("files", [])[:3]:
            lines.append(f"![{name}]({name})")
    return "\n".join(lines) + "\n"


def write_report(rep: dict, out_dir, input_bag=None, output_bag=None, max_frames: int = 40):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    if max_frames > 0 and input_bag is not None:
        try:
            rep["renders"] = render_replay(input_bag, output_bag, out_dir, max_frames=max_frames)
        except Exception as exc:  # a rendering failure must not lose the metrics
            rep["renders"] = {"error": f"{type(exc).__name__}: {exc}"}
        for f in (rep.get("renders") or {}).get("files", []):
            paths.append(out_dir / f)
    (out_dir / "report.json").write_text(json.dumps(rep, indent=1, default=_json_default))
    (out_dir / "report.md").write_text(markdown(rep))
    return [out_dir / "report.json", out_dir / "report.md"] + paths


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)

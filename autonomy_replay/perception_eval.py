"""Perception figures of a replay, under the one evaluation protocol
(`autonomy_perception.evaluation.protocol`, the same as the offline evaluation and the
bench). Pure: rosbags + numpy (torch only to read a checkpoint's config).

From the bags: /ground_truth/objects (published in odom by the simulator) and
/perception/objects (odom, or the ego frame `base_link`: then moved to odom with the
odometry at their own stamp) are both converted into the ego frame at the ground-truth
stamp; the prediction of a ground-truth frame is the /perception/objects message nearest
in stamp (within 50 ms). Visibility comes from the Object messages' `visible_pixels` /
`occluded`. BEV rasters (/perception/bev/<layer> and /ground_truth/bev/<layer>, either
frame) are sampled at the network raster's cell centres (nearest cell) of the ground-truth
stamp's ego frame; ground-truth cells that are unknown (-1) or outside the ground-truth
grid are left out. The network's extent comes from the perception checkpoint's config
(`report_protocol`): `--eval-extent M` forces +-M m; otherwise the checkpoint of the
perception node (`-p perception.checkpoint:=...`, else config/perception.yaml, else
models/perception_tiny.pt); if it cannot be read, +-24 m. The report says which.

`bag_frames(inp, out, protocol)` -> [EvalFrame] (one per ground-truth frame, in stamp
order); `evaluate_frames(frames, protocol, layers, detections=None)` -> the protocol's
summary (`detections` {gt stamp ns: [ObjectState]} replaces the bag's predictions: the
agreement check feeds its offline re-run through here);
`perception_metrics(inp, out, options)` -> the report's "perception" section.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np
import yaml

from autonomy_perception.evaluation.protocol import (DEFAULT_HALF_EXTENT_M, EvaluationProtocol,
                                                     ProtocolEvaluator, nan_to_none)
from autonomy_perception.evaluation.protocol import markdown as protocol_markdown
from autonomy_replay.bag import stamp_ns
from autonomy_replay.bag_data import BagData, grid_from_msg, layer_key, nearest_by_stamp, quat_yaw
from autonomy_stack.geometry import from_frame, to_frame, wrap_angle
from autonomy_stack.graph import load_graph, parse_overrides
from autonomy_stack.paths import share_dir
from autonomy_stack.ros.ros_conversions import msg_to_object
from autonomy_stack.vector_space import ObjectState, VectorSpace, transform_vector_space

STAMP_TOLERANCE_NS = 50_000_000
Pose = Tuple[float, float, float]


# ---------------------------------------------------------------------- the protocol
def checkpoint_config(path) -> Dict:
    """The model config stored in a perception checkpoint."""
    import torch  # lazy: optional heavy dependency, only to read the checkpoint's config
    ck = torch.load(Path(path), map_location="cpu", weights_only=False)
    if not isinstance(ck, dict) or "config" not in ck:
        raise ValueError(f"{path} holds no model config")
    return ck["config"]


def node_params(key: str, options: Optional[Mapping] = None) -> Dict:
    """The parameters a node of the replayed graph ran with, as far as the replay options
    tell: its parameter files in config/graph.yaml, the mode's (`--nodes MODE`) inline
    parameters, then the `-p key.param:=value` overrides."""
    options = options or {}
    params: Dict = {}
    try:
        graph = load_graph()
        for fname in graph["nodes"].get(key, {}).get("parameters", []) or []:
            doc = yaml.safe_load((share_dir() / "config" / fname).read_text()) or {}
            params.update(doc.get("/**", {}).get("ros__parameters", {}) or {})
        mode = options.get("nodes")
        if mode in graph["modes"]:
            params.update((graph["modes"][mode].get("parameters") or {}).get(key, {}) or {})
    except Exception:  # noqa: BLE001 - a missing/odd config leaves the defaults
        pass
    try:
        params.update(parse_overrides(list(options.get("param") or [])).get(key, {}))
    except ValueError:
        pass
    return params


def perception_checkpoint(options: Optional[Mapping] = None) -> Path:
    """The checkpoint the replayed perception node ran with (`node_params`), by default
    the package's models/perception_tiny.pt."""
    path = node_params("perception", options).get("checkpoint") or ""
    return Path(path) if path else share_dir() / "models" / "perception_tiny.pt"


def report_protocol(options: Optional[Mapping] = None, **overrides) -> EvaluationProtocol:
    """The protocol of a replay report: the extent from `--eval-extent` (options
    "eval_extent") or the perception checkpoint's config, else +-24 m."""
    options = options or {}
    ext = options.get("eval_extent")
    if ext:
        return EvaluationProtocol.with_half_extent(float(ext), source=f"--eval-extent {float(ext):g} m",
                                                   **overrides)
    ck = perception_checkpoint(options)
    try:
        return EvaluationProtocol.from_model_config(
            checkpoint_config(ck), source=f"perception checkpoint {ck}", **overrides)
    except Exception as exc:  # noqa: BLE001 - no torch, no file, not a checkpoint
        return EvaluationProtocol.with_half_extent(
            DEFAULT_HALF_EXTENT_M, source=f"default +-{DEFAULT_HALF_EXTENT_M:g} m (perception "
            f"checkpoint {ck} not readable: {type(exc).__name__}: {exc})", **overrides)


# ---------------------------------------------------------------------- frames
def pose_at(msgs: list, t_ns: int) -> Optional[Pose]:
    m = nearest_by_stamp(msgs, t_ns)
    if m is None:
        return None
    p = m.pose.pose
    return float(p.position.x), float(p.position.y), quat_yaw(p.orientation)


def objects_in_ego(msg, pose_msgs: list, t_ns: int) -> Optional[List[ObjectState]]:
    """ObjectArray -> ObjectStates in the ego frame at stamp `t_ns`. A message in the ego
    frame (header.frame_id == the odometry's child frame) at that very stamp is taken as it
    is; at another stamp it goes to odom with the pose at its own stamp first. Everything
    in odom goes into the ego frame with the pose at `t_ns`. None without odometry."""
    child = pose_msgs[0][1].child_frame_id if pose_msgs else "base_link"
    return move_objects([msg_to_object(o) for o in msg.objects], msg.header.frame_id == child,
                        stamp_ns(msg.header.stamp), pose_msgs, t_ns)


def move_objects(objs: List[ObjectState], in_ego: bool, own_ns: int, pose_msgs: list,
                 t_ns: int) -> Optional[List[ObjectState]]:
    """Objects in the ego frame at `own_ns` (in_ego) or in odom -> the ego frame at `t_ns`."""
    if in_ego:
        if own_ns == t_ns:
            return list(objs)
        p = pose_at(pose_msgs, own_ns)
        if p is None:
            return None
        objs = transform_vector_space(VectorSpace(0.0, "ego", objs), *p, "odom").objects
    g = pose_at(pose_msgs, t_ns)
    if g is None:
        return None
    if not objs:
        return []
    xy = to_frame(np.array([[o.x, o.y] for o in objs]), *g)
    return [replace(o, x=float(p[0]), y=float(p[1]), yaw=float(wrap_angle(float(o.yaw) - g[2])))
            for o, p in zip(objs, xy)]


def _lookup(grid, pts: np.ndarray) -> np.ndarray:
    return grid.lookup(pts, fill=-1)


def raster_on_grid(msg, pose_msgs: list, centres_odom: Optional[np.ndarray],
                   centres_ego: np.ndarray, t_ns: int, res: float = 0.0,
                   mode: str = "nearest") -> Optional[np.ndarray]:
    """OccupancyGrid sampled on the protocol grid: [H, W] int values (-1 unknown /
    outside). `centres_ego` [H, W, 2] cell centres in the ego frame at `t_ns`,
    `centres_odom` the same points in odom (None: no odometry). A raster finer than the
    protocol cells (`res`) is resampled the way the training labels are
    (training.data.resample_layer): k x k points per cell, `mode` "max" (thin lines: any
    line in the cell) or "mean" (areas: at least half the cell); else the nearest cell."""
    child = pose_msgs[0][1].child_frame_id if pose_msgs else "base_link"
    own = stamp_ns(msg.header.stamp)
    in_ego = msg.header.frame_id == child and own == t_ns
    if not in_ego and (centres_odom is None or (msg.header.frame_id == child
                                                and pose_at(pose_msgs, own) is None)):
        return None
    grid = grid_from_msg(msg) if in_ego else grid_from_msg(msg, pose_msgs)
    pts = centres_ego if in_ego else centres_odom
    k = int(round(res / float(msg.info.resolution))) if res > 0 else 1
    if mode == "nearest" or k <= 1:
        return _lookup(grid, pts)
    # sub-cell offsets in the ego frame's axes, rotated into the frame of `pts`
    sub = ((np.arange(k) + 0.5) / k - 0.5) * res
    off = np.stack(np.meshgrid(sub, sub, indexing="ij"), -1).reshape(-1, 2)      # [k*k, 2]
    if not in_ego:
        c = centres_odom[0, 1] - centres_odom[0, 0]                               # +col step
        r = centres_odom[1, 0] - centres_odom[0, 0]                               # +row step
        ex, ey = -r / np.linalg.norm(r), -c / np.linalg.norm(c)                   # ego x, y axes
        off = off[:, :1] * ex + off[:, 1:] * ey
    vals = _lookup(grid, pts[:, :, None, :] + off[None, None])                    # [H, W, k*k]
    known = (vals >= 0).any(-1)
    v = np.maximum(vals, 0)
    out = v.max(-1) if mode == "max" else np.where(v.mean(-1) >= 50, 100, 0)
    return np.where(known, out, -1).astype(np.int16)


@dataclass
class EvalFrame:
    stamp_ns: int                                   # the ground-truth stamp
    ground_truth: List[ObjectState]                 # ego frame at stamp_ns
    detections: Optional[List[ObjectState]] = None  # ego frame at stamp_ns; None = no prediction
    prediction_stamp_ns: Optional[int] = None       # stamp of the paired /perception/objects
    rasters: Dict[str, tuple] = field(default_factory=dict)   # layer -> (pred, gt, valid)


def _pick(topic: str, inp: BagData, out: BagData) -> list:
    return out.get(topic) or inp.get(topic)


def pose_sources(inp: BagData, out: BagData) -> Tuple[list, list]:
    """([(t, Odometry)] for the ground truth, ... for the predictions): the ground truth
    is placed with the true ego pose (/ground_truth/ego), the predictions with the
    odometry the perception node used (/odom); each falls back to the other."""
    return (inp.get("/ground_truth/ego") or inp.get("/odom"),
            _pick("/odom", inp, out) or inp.get("/ground_truth/ego"))


def _nearest(msgs: list, stamps: np.ndarray, t_ns: int):
    if not len(stamps):
        return None
    k = int(np.argmin(np.abs(stamps - t_ns)))
    return msgs[k][1] if abs(int(stamps[k]) - t_ns) <= STAMP_TOLERANCE_NS else None


def _stamps(msgs: list) -> np.ndarray:
    return np.array([stamp_ns(m.header.stamp) for _, m in msgs], dtype=np.int64)


def bev_layer_topics(inp: BagData, out: BagData) -> Dict[str, Tuple[str, str]]:
    """{network layer: (prediction topic, ground-truth topic)} matched by `layer_key`."""
    preds = {layer_key(t.rsplit("/", 1)[1]): t for t in set(inp.types) | set(out.types)
             if t.startswith("/perception/bev/")}
    res = {}
    for gt in sorted(t for t in inp.types if t.startswith("/ground_truth/bev/")):
        p = preds.get(layer_key(gt.rsplit("/", 1)[1]))
        if p:
            res[p.rsplit("/", 1)[1]] = (p, gt)
    return res


def bag_frames(inp: BagData, out: BagData, protocol: EvaluationProtocol,
               with_predictions: bool = True) -> List[EvalFrame]:
    """One EvalFrame per /ground_truth/objects message, in stamp order, with the paired
    prediction (nearest /perception/objects within 50 ms; each used once, by the nearest
    ground-truth frame) and the BEV layers found at that stamp."""
    gt_pose, pred_pose = pose_sources(inp, out)
    gts = sorted(inp.get("/ground_truth/objects"), key=lambda tm: stamp_ns(tm[1].header.stamp))
    preds = _pick("/perception/objects", inp, out) if with_predictions else []
    gstamps, pstamps = _stamps(gts), _stamps(preds)
    best: Dict[int, Tuple[int, int]] = {}     # gt index -> (|stamp difference|, pred index)
    for i, s in enumerate(pstamps):
        if len(gstamps):
            k = int(np.argmin(np.abs(gstamps - s)))
            d = abs(int(gstamps[k]) - int(s))
            if d <= STAMP_TOLERANCE_NS and (k not in best or d < best[k][0]):
                best[k] = (d, i)
    pred_of = {k: i for k, (_, i) in best.items()}
    layers = bev_layer_topics(inp, out) if with_predictions else {}
    lay_msgs = {name: (_pick(pt, inp, out), inp.get(gt)) for name, (pt, gt) in layers.items()}
    lay_stamps = {name: (_stamps(pm), _stamps(gm)) for name, (pm, gm) in lay_msgs.items()}
    centres_ego = protocol.grid.cell_centres()                     # [H, W, 2]
    frames = []
    for k, (_, gmsg) in enumerate(gts):
        t = int(gstamps[k])
        gt_objs = objects_in_ego(gmsg, gt_pose, t)
        if gt_objs is None:
            continue
        f = EvalFrame(t, gt_objs)
        if k in pred_of:
            pmsg = preds[pred_of[k]][1]
            f.detections = objects_in_ego(pmsg, pred_pose, t)
            f.prediction_stamp_ns = stamp_ns(pmsg.header.stamp)
        if lay_msgs:
            g = pose_at(gt_pose, t)
            flat = centres_ego.reshape(-1, 2)
            c_odom_gt = from_frame(flat, *g).reshape(centres_ego.shape) if g else None
            gp = pose_at(pred_pose, t)
            c_odom_pr = from_frame(flat, *gp).reshape(centres_ego.shape) if gp else None
            for name, (pm, gm) in lay_msgs.items():
                ps, gs = lay_stamps[name]
                pmsg, gmsg_l = _nearest(pm, ps, t), _nearest(gm, gs, t)
                if pmsg is None or gmsg_l is None:
                    continue
                pv = raster_on_grid(pmsg, pred_pose, c_odom_pr, centres_ego, t)
                # labels at the protocol's cells as training resamples them: lines "max"
                gv = raster_on_grid(gmsg_l, gt_pose, c_odom_gt, centres_ego, t, protocol.grid.res,
                                    "mean" if name == "drivable" else "max")
                if pv is None or gv is None:
                    continue
                f.rasters[name] = (np.maximum(pv, 0) / 100.0, np.maximum(gv, 0) / 100.0, gv >= 0)
        frames.append(f)
    return frames


def evaluate_frames(frames: List[EvalFrame], protocol: EvaluationProtocol,
                    layers=(), detections: Optional[Mapping[int, List[ObjectState]]] = None,
                    rasters: Optional[Mapping[int, Mapping[str, np.ndarray]]] = None) -> Dict:
    """The protocol's summary over the frames. Detection: the frames with a prediction
    (every frame updates the visibility memory); IoU: every frame with both rasters.
    `detections` / `rasters` ({gt stamp ns: ...}; rasters {layer: prediction}) replace the
    bag's predictions: only those frames are evaluated then."""
    ev = ProtocolEvaluator(protocol, layers)
    for f in frames:
        t = f.stamp_ns * 1e-9
        if detections is None:
            dets, ras = f.detections, f.rasters
        else:
            dets = detections.get(f.stamp_ns)
            over = (rasters or {}).get(f.stamp_ns) or {}
            ras = {name: (pred,) + tuple(f.rasters[name][1:]) for name, pred in over.items()
                   if name in f.rasters}
        if dets is not None:
            ev.add_frame(t, dets, f.ground_truth, ras)
        else:
            ev.observe(t, f.ground_truth)
            if ras:
                ev.add_rasters(ras)
    return ev.summary()


# ---------------------------------------------------------------------- the report section
def perception_metrics(inp: BagData, out: BagData, options: Optional[Mapping] = None,
                       protocol: Optional[EvaluationProtocol] = None) -> dict:
    gt_topics = [t for t in inp.types if t.startswith("/ground_truth/")]
    if not gt_topics:
        return {"available": False, "reason": "the bag has no /ground_truth/... topics"}
    if not inp.get("/ground_truth/objects") and not any(
            t.startswith("/ground_truth/bev/") for t in gt_topics):
        return {"available": False, "reason": "no /ground_truth/objects or /ground_truth/bev/..."}
    protocol = protocol or report_protocol(options)
    layers = bev_layer_topics(inp, out)
    frames = bag_frames(inp, out, protocol)
    notes = []
    preds = _pick("/perception/objects", inp, out)
    if not inp.get("/ground_truth/objects"):
        notes.append("no /ground_truth/objects")
    elif not preds:
        notes.append("no /perception/objects")
    elif not any(f.detections is not None for f in frames):
        notes.append("no /perception/objects stamp matches a ground-truth stamp")
    scores = [float(o.score) for _, m in preds for o in m.objects]
    if scores:
        notes.append(f"detections as published (lowest score {min(scores):.2f}: the node's "
                     "score_threshold cuts the precision-recall curve there; the offline "
                     "evaluation decodes down to 0.05)")
    for gt in sorted(t for t in gt_topics if t.startswith("/ground_truth/bev/")):
        if gt not in {g for _, g in layers.values()}:
            notes.append(f"{gt}: no /perception/bev/ layer matching it")
    summary = evaluate_frames(frames, protocol, list(layers))
    return {"available": True, "extent_source": protocol.extent_source,
            "ground_truth_frames": len(frames),
            "bev_layers": {name: {"prediction": p, "ground_truth": g} for name, (p, g) in layers.items()},
            "notes": notes, "evaluation": nan_to_none(summary)}


def perception_markdown(p: dict) -> List[str]:
    if not p.get("available"):
        return [f"not evaluated: {p.get('reason')}"]
    lines = [f"Network extent from: {p.get('extent_source')}. Same protocol as the offline "
             "evaluation (`autonomy_perception.evaluation.protocol`).", ""]
    lines += [f"- {n}" for n in p.get("notes", [])]
    lines += ["", protocol_markdown(p["evaluation"])]
    return lines

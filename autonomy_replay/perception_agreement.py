"""Does the replay report agree with the offline evaluation on the same frames?

    python -m autonomy_replay.perception_agreement OUT_DIR
        [--input BAG] [--output BAG] [--checkpoint CK] [--out DIR] [--max-frames N]

OUT_DIR: a demo output folder (with report/report.json) or a replay report folder; the
input bag (camera images, /tf_static, /odom, ground truth) and the output bag (the
stack's /perception/...) are read from its report.json unless given.

The perception model is run again offline (`InferenceEngine`, the node's inference
wrapper) over exactly the camera frames the node processed -- the stamps of its
/perception/objects messages -- rectified the way the demo graph does it (the
rectification node's `Rectifier` with its virtual cameras at its output size, from the
bag's CameraInfo and /tf_static mountings; then the perception node's conversion to RGB
at the network input size), with the node's kinematics (/odom speed, finite-difference
acceleration, yaw rate) and its video state carried over those frames. Detections are
decoded at the node's `score_threshold` (what it publishes) and, for the full
precision-recall curve the offline evaluation uses, at 0.05.

All three are evaluated with the same protocol and the same ground-truth frames
(autonomy_perception.evaluation.protocol via perception_eval): the node's published
objects / BEV (= the replay report), the offline re-run at the node's threshold, and the
offline re-run at 0.05. Prints the figures side by side and the vehicle-AP difference of
the first two (issue 14 asks for <= 0.02), writes agreement.json / agreement.md to --out
(default: next to report.json). Exit code 0 when they agree, 1 when they do not, 2 on
bad input.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from autonomy_perception.evaluation.protocol import EvaluationProtocol, nan_to_none
from autonomy_perception.inference_engine import InferenceEngine
from autonomy_perception.postprocess import PostProcessor, decode_objects
from autonomy_perception.rectification import (CameraGeometry, Rectifier, StaticTransformCache,
                                                network_input_image)
from autonomy_perception.virtual_camera import load_virtual_cameras
from autonomy_replay.bag import BagReader, stamp_ns
from autonomy_replay.bag_data import BagData, non_image
from autonomy_replay.perception_eval import (EvalFrame, bag_frames, evaluate_frames,
                                             move_objects, node_params, perception_checkpoint,
                                             pose_at, pose_sources)
from autonomy_stack.vector_space import EgoState
from autonomy_stack.ros.ros_conversions import image_to_numpy

AGREEMENT_AP = 0.02
DECODE_SCORE_OFFLINE = 0.05
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"


# ---------------------------------------------------------------------- which frames
@dataclass
class ProcessedFrame:
    camera_ns: int          # stamp of the node's output = of the camera frame it processed
    gt_ns: int              # the ground-truth frame it is evaluated against


def processed_frames(frames: Sequence[EvalFrame]) -> List[ProcessedFrame]:
    """The camera frames the node processed and evaluated (one per ground-truth frame with
    a paired /perception/objects message), in stamp order."""
    out = [ProcessedFrame(f.prediction_stamp_ns, f.stamp_ns) for f in frames
           if f.detections is not None and f.prediction_stamp_ns is not None]
    return sorted(out, key=lambda p: p.camera_ns)


def kinematics_at(odom: list, t_ns: int):
    """(speed, accel, yaw_rate) as the perception node derives them: the latest /odom at
    or before `t_ns`; acceleration from it and the odometry before it."""
    st = [stamp_ns(m.header.stamp) for _, m in odom]
    k = int(np.searchsorted(np.asarray(st, dtype=np.int64), t_ns, side="right")) - 1
    if k < 0:
        return (0.0, 0.0, 0.0)
    m = odom[k][1]
    v = float(m.twist.twist.linear.x)
    acc = 0.0
    if k > 0 and st[k] > st[k - 1]:
        acc = (v - float(odom[k - 1][1].twist.twist.linear.x)) / ((st[k] - st[k - 1]) * 1e-9)
    return (v, float(np.clip(acc, -15.0, 15.0)), float(m.twist.twist.angular.z))


# ---------------------------------------------------------------------- camera frames
class CameraFrames:
    """The bag's raw camera images at given stamps, rectified as the demo graph does."""

    def __init__(self, bag, cameras: Sequence[str], input_hw, rect_params: Dict):
        self.bag, self.cameras = bag, list(cameras)
        self.H, self.W = input_hw
        self.rect_params = rect_params
        meta = BagData(bag, lambda t, mt: mt == CAMERA_INFO or t == "/tf_static")
        self.infos = {c: (meta.get(f"/cameras/{c}/camera_info") or [(0, None)])[0][1]
                      for c in self.cameras}
        self.tf = StaticTransformCache()
        for _, m in meta.get("/tf_static"):
            for t in m.transforms:
                tr, q = t.transform.translation, t.transform.rotation
                self.tf.add(t.header.frame_id, t.child_frame_id, (tr.x, tr.y, tr.z),
                            (q.x, q.y, q.z, q.w))
        self.rectifiers = {}
        self.problems: List[str] = []

    def _rectifier(self, cam: str):
        if cam in self.rectifiers:
            return self.rectifiers[cam]
        rect = None
        info = self.infos.get(cam)
        p = self.rect_params
        T = self.tf.lookup(p.get("base_frame", "base_link"), p.get("camera_frame_prefix", "camera_") + cam)
        if info is None or T is None:
            self.problems.append(f"camera {cam}: no CameraInfo or no mounting on /tf_static")
        else:
            w = int(p.get("output_width") or 0) or None
            h = int(p.get("output_height") or 0) or None
            virtual = load_virtual_cameras(p.get("virtual_cameras_file") or None, width=w,
                                           height=h)[cam]
            rect = Rectifier(virtual, device="cpu", interpolation=p.get("interpolation", "linear"))
            rect.set_calibration(CameraGeometry(
                cam, int(info.width), int(info.height), np.asarray(info.k, float).reshape(3, 3),
                np.asarray(info.d, float), str(info.distortion_model), T[:3, :3]))
        self.rectifiers[cam] = rect
        return rect

    def load(self, stamps_ns: Sequence[int]) -> Dict[int, Dict[str, np.ndarray]]:
        """{stamp: {camera: RGB [H, W, 3] uint8 at the network input}} for the wanted
        stamps (a camera without an image at a stamp is missing there)."""
        want = set(int(s) for s in stamps_ns)
        topics = {f"/cameras/{c}/image_raw": c for c in self.cameras}
        out: Dict[int, Dict[str, np.ndarray]] = {}
        reader = BagReader(self.bag)
        ts = reader.typestore()
        types = {n: t.msgtype for n, t in reader.topics.items()}
        for topic, _t, data in reader.messages():
            cam = topics.get(topic)
            if cam is None:
                continue
            msg = ts.deserialize_cdr(data, types[topic])
            s = stamp_ns(msg.header.stamp)
            if s not in want:
                continue
            rect = self._rectifier(cam)
            if rect is None:
                continue
            img = image_to_numpy(msg)
            # the perception node's conversion
            out.setdefault(s, {})[cam] = network_input_image(rect.rectify(img), msg.encoding,
                                                             (self.H, self.W))
        reader.close()
        return out


# ---------------------------------------------------------------------- the offline re-run
def rerun_offline(engine, frames: Sequence[EvalFrame], images: Dict[int, Dict[str, np.ndarray]],
                  odom: list, pose_msgs: list, thresholds: Sequence[float],
                  post: Optional[PostProcessor] = None):
    """Run the network over the processed frames (in stamp order, video state carried as
    in the node) -> ({threshold: {gt stamp: detections in the ego frame at the gt
    stamp}}, {gt stamp: {layer: probability raster}}): a plain decode at each of
    `thresholds`, and under the key "node" the output of `post`, the node's own
    post-processing (tracking with hysteresis and coasting, in odom with the pose at the
    frame's stamp)."""
    keys = list(thresholds) + (["node"] if post is not None else [])
    cfg = engine.config
    det_classes = cfg["heads"]["detection"]["classes"]
    seg_classes = cfg["heads"]["segmentation"]["classes"] if "segmentation" in cfg["heads"] else []
    engine.reset()
    dets: Dict[object, Dict[int, list]] = {k: {} for k in keys}
    rasters: Dict[int, Dict[str, np.ndarray]] = {}
    for pf in processed_frames(frames):
        imgs = images.get(pf.camera_ns, {})
        mask = []
        for i, cam in enumerate(engine.camera_names):
            engine.fill_camera(i, imgs.get(cam))
            mask.append(cam in imgs)
        res = engine.run(mask, kinematics_at(odom, pf.camera_ns), pf.camera_ns * 1e-9)
        for key in keys:
            if key == "node":
                p = pose_at(pose_msgs, pf.camera_ns)
                ego = None if p is None else EgoState(x=p[0], y=p[1], yaw=p[2])
                d = post.process(res.outputs, pf.camera_ns * 1e-9, ego=ego).objects
            else:
                d = decode_objects(res.outputs, engine.grid, det_classes, score_threshold=key)
            moved = move_objects(d, True, pf.camera_ns, pose_msgs, pf.gt_ns)
            if moved is not None:
                dets[key][pf.gt_ns] = moved
        if "seg" in res.outputs and pf.camera_ns == pf.gt_ns:
            rasters[pf.gt_ns] = {c: res.outputs["seg"][i] for i, c in enumerate(seg_classes)}
    return dets, rasters


def agreement(input_bag, output_bag, checkpoint=None, options: Optional[Dict] = None,
              engine=None, max_frames: int = 0) -> Dict:
    """The three evaluations and their difference (see the module docstring)."""
    options = dict(options or {})
    pp = node_params("perception", options)
    rp = node_params("rectification", options)
    if engine is None:
        ck = Path(checkpoint) if checkpoint else perception_checkpoint(options)
        engine = InferenceEngine.from_checkpoint(ck, "cpu", video=bool(pp.get("video", True)))
        source = f"perception checkpoint {ck}"
    else:
        source = "the given inference engine's config"
    protocol = EvaluationProtocol.from_model_config(engine.config, source=source)
    node_thr = float(pp.get("score_threshold", 0.3))
    inp = BagData(input_bag, non_image)
    out = BagData(output_bag, non_image)
    frames = bag_frames(inp, out, protocol)
    if max_frames > 0:
        keep = {p.gt_ns for p in processed_frames(frames)[:max_frames]}
        frames = [f for f in frames if f.stamp_ns <= max(keep, default=0)]
        for f in frames:
            if f.stamp_ns not in keep:
                f.detections = None
    proc = processed_frames(frames)
    cams = CameraFrames(input_bag, engine.camera_names, engine.input_hw, rp)
    images = cams.load([p.camera_ns for p in proc])
    gt_pose, pred_pose = pose_sources(inp, out)
    odom = inp.get("/odom") or inp.get("/ground_truth/ego")
    dets, rasters = rerun_offline(engine, frames, images, odom, pred_pose,
                                  [DECODE_SCORE_OFFLINE],
                                  PostProcessor.from_node_params(engine.config, pp))
    layers = list(frames[0].rasters) if frames and frames[0].rasters else []
    layers = sorted({name for f in frames for name in f.rasters}) or layers
    node = evaluate_frames(frames, protocol, layers)
    same = evaluate_frames(frames, protocol, layers, detections=dets["node"], rasters=rasters)
    full = evaluate_frames(frames, protocol, layers, detections=dets[DECODE_SCORE_OFFLINE],
                           rasters=rasters)
    diff = node["vehicle_ap"] - same["vehicle_ap"]
    missing = sum(1 for p in proc if len(images.get(p.camera_ns, {})) < len(engine.camera_names))
    return nan_to_none({
        "input_bag": str(input_bag), "output_bag": str(output_bag),
        "extent_source": protocol.extent_source, "node_score_threshold": node_thr,
        "processed_frames": len(proc), "frames_with_missing_cameras": missing,
        "camera_problems": cams.problems,
        "node": node, "offline_node_threshold": same, "offline_full_curve": full,
        "vehicle_ap_difference": diff,
        "agree": (not math.isnan(diff)) and abs(diff) <= AGREEMENT_AP,
        "tolerance": AGREEMENT_AP})


# ---------------------------------------------------------------------- output
def _f(x) -> str:
    return "–" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))


def markdown(res: Dict) -> str:
    cols = [("node (replay report)", res["node"]),
            (f"offline, score >= {res['node_score_threshold']:g}", res["offline_node_threshold"]),
            (f"offline, score >= {DECODE_SCORE_OFFLINE:g}", res["offline_full_curve"])]
    rows = [("frames", lambda s: s["frames"]), ("vehicle AP", lambda s: s["vehicle_ap"])]
    thr = list(res["node"]["vehicle_ap_per_threshold"])
    rows += [(f"vehicle AP@{t} m", lambda s, t=t: s["vehicle_ap_per_threshold"].get(t)) for t in thr]
    rows += [(f"vehicle AP {b} m", lambda s, b=b: s["vehicle_ap_by_range"].get(b))
             for b in res["node"]["vehicle_ap_by_range"]]
    groups = sorted(set(res["node"]["mean_ap"]) | set(res["offline_full_curve"]["mean_ap"]))
    rows += [(f"{g} AP", lambda s, g=g: s["mean_ap"].get(g)) for g in groups if g != "vehicle"]
    rows += [("velocity error (m/s)", lambda s: s["velocity_error"]),
             ("vehicle recall", lambda s: (s["recall"] or {}).get("vehicle")),
             ("occluded recall", lambda s: s["occluded_recall"])]
    rows += [(f"{k} IoU", lambda s, k=k: s["iou"].get(k)) for k in res["node"]["iou"]]
    lines = ["# Perception agreement: replay report vs offline evaluation, same frames", "",
             f"- input bag `{res['input_bag']}`, output bag `{res['output_bag']}`",
             f"- network extent from {res['extent_source']}; {res['processed_frames']} frames the "
             f"node processed ({res['frames_with_missing_cameras']} with missing cameras)"]
    lines += [f"- {p}" for p in res.get("camera_problems", [])]
    lines += ["", "| figure | " + " | ".join(c for c, _ in cols) + " |", "|---" * (1 + len(cols)) + "|"]
    for name, get in rows:
        lines.append(f"| {name} | " + " | ".join(_f(get(s)) for _, s in cols) + " |")
    d = res["vehicle_ap_difference"]
    lines += ["", f"Vehicle AP difference, node - offline at the node's threshold: {_f(d)} "
              f"(tolerance {res['tolerance']}): **{'AGREE' if res['agree'] else 'DISAGREE'}**.",
              f"The full-curve offline figure (score >= {DECODE_SCORE_OFFLINE:g}) is what "
              "`evaluation/evaluate.py` reports; the node publishes only detections above its "
              "score_threshold, which cuts the precision-recall curve."]
    return "\n".join(lines) + "\n"


def _locate(path: Path):
    for cand in (path / "report" / "report.json", path / "report.json"):
        if cand.exists():
            rep = json.loads(cand.read_text())
            return cand.parent, rep
    return None, None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m autonomy_replay.perception_agreement",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("dir", nargs="?", default=None, help="demo output or report folder")
    ap.add_argument("--input", default=None, help="input bag (camera images, ground truth)")
    ap.add_argument("--output", default=None, help="output bag (the node's /perception/...)")
    ap.add_argument("--checkpoint", default=None, help="default: the replayed node's")
    ap.add_argument("--out", default=None, help="where agreement.json/.md go")
    ap.add_argument("--max-frames", type=int, default=0, help="only the first N processed frames")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    report_dir, rep = _locate(Path(a.dir)) if a.dir else (None, None)
    options = (rep or {}).get("options") or {}
    inp = a.input or (rep or {}).get("bag", {}).get("path")
    outb = a.output or (rep or {}).get("output_bag")
    if not inp or not outb or not Path(inp).exists() or not Path(outb).exists():
        print(f"error: need the input and the output bag (got {inp!r}, {outb!r}); give a demo/"
              "report folder with report.json or --input/--output", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    res = agreement(inp, outb, a.checkpoint, options, max_frames=a.max_frames)
    md = markdown(res)
    print(md)
    dest = Path(a.out) if a.out else (report_dir or Path(outb).parent)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "agreement.json").write_text(json.dumps(res, indent=1))
    (dest / "agreement.md").write_text(md)
    print(f"written: {dest / 'agreement.json'}, {dest / 'agreement.md'}")
    return 0 if res["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())

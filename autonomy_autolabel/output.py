"""Auto-labels on disk (no rclpy): an MCAP bag with `/autolabel/*` topics for RViz and the
replay report, and the simulator's training data set format so the training command
takes auto-labeled clips exactly like simulator-labeled ones.

MCAP (`write_mcap`, through autonomy_stack.bag_writer: chunk CRCs + zstd; messages built
with the simulator recorder's `Msgs`):
  /autolabel/objects (ObjectArray, odom)      every labeled frame: tracks with smoothed
                                              kinematics; `occluded` = bridged (no detection)
  /autolabel/road (RoadStructure, odom)       1 Hz: lane lines / edges / drivable outline
                                              extracted from the fused road grid around the ego
  /autolabel/bev/<layer> (OccupancyGrid, odom) 1 Hz: the fused grid, `BEV_HALF_EXTENT_M`
                                              around the ego, 0..100 (-1 never seen)
  /autolabel/markers (MarkerArray, odom)      every labeled frame: a box per track
  /odom, /tf, /tf_static copied from the clip (RViz needs the frames)

Data set (`write_dataset`, format `autonomy_sim_dataset/1`, see autonomy_simulator.dataset):
one sequence per `frames` labeled frames, raw camera images and calibration (K, D, actual
mounting from /tf_static) from the clip, ego from /odom, BEV layers from the fused road
grid (drivable, lane_lines, road_edges) and the labeled boxes (objects), object rows from
the tracks. The manifest says `"labels": "autolabel"`. Auto-labels have no pixel counts:
`visible_pixels` is `DETECTED_PIXELS` (a sentinel: detected in that frame) or 0 (the track
is bridged through an occlusion there, `occluded` = 1).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List

import numpy as np

from autonomy_autolabel.labeler import ClipLabels, objects_to_ego
from autonomy_perception.postprocess import drivable_polygon, extract_polylines, LINE_TYPE_OF
from autonomy_replay.bag import BagReader, stamp_ns
from autonomy_replay.bag_data import BagData
from autonomy_simulator import labels as lab
from autonomy_simulator.dataset import EGO_FIELDS, FORMAT
from autonomy_simulator.record import Msgs, typestore
from autonomy_stack.bag_writer import open_mcap_writer
from autonomy_stack.bev_grid import BEVGrid
from autonomy_stack.geometry import from_frame
from autonomy_stack.ros.ros_conversions import image_to_numpy
from autonomy_stack.vector_space import VectorSpace, transform_vector_space

BEV_HALF_EXTENT_M = 48.0
DETECTED_PIXELS = 1000
COPIED = ("/odom", "/tf", "/tf_static")


def road_vector_space(labels: ClipLabels, k: int, half_extent: float = 32.0) -> VectorSpace:
    """Lines and drivable outline of the fused road around frame k's ego pose, in odom
    (extracted with the perception post-processing on an ego-centred raster)."""
    g = BEVGrid((-half_extent, half_extent), (-half_extent, half_extent), 1.0)
    r = labels.road_raster(k, g)
    lines, drivable = [], None
    for i, name in enumerate(labels.road.layers):
        m = r[i] >= 0.5
        if name == "drivable":
            drivable = drivable_polygon(m, g)
        elif name in LINE_TYPE_OF:
            lines += extract_polylines(m, g, LINE_TYPE_OF[name], start_id=len(lines))
    v = VectorSpace(labels.stamps[k], "base_link", [], lines, drivable)
    return transform_vector_space(v, *labels.frames[k].pose, "odom")


def _markers(M: Msgs, t: float, objs):
    ms = [M.make("visualization_msgs/msg/Marker", header=M.header(t, "odom"), ns="autolabel", action=3)]
    for o in objs:
        color = M.make("std_msgs/msg/ColorRGBA", r=0.1 if o.is_static else 1.0, g=0.8, b=0.2,
                       a=0.4 if o.occluded else 0.8)
        ms.append(M.make("visualization_msgs/msg/Marker", header=M.header(t, "odom"), ns="autolabel",
                         id=int(o.id), type=1, action=0, pose=M.pose(o.x, o.y, o.yaw, o.height / 2),
                         scale=M.vec(o.length, o.width, o.height), color=color))
    return M.make("visualization_msgs/msg/MarkerArray", markers=ms)


def _bev_grid_msg(M: Msgs, labels: ClipLabels, k: int, layer: int):
    pose = labels.frames[k].pose
    cell = labels.road.cell
    n = int(round(2 * BEV_HALF_EXTENT_M / cell))
    ox = math.floor((pose[0] - BEV_HALF_EXTENT_M) / cell) * cell
    oy = math.floor((pose[1] - BEV_HALF_EXTENT_M) / cell) * cell
    xs, ys = ox + (np.arange(n) + 0.5) * cell, oy + (np.arange(n) + 0.5) * cell
    X, Y = np.meshgrid(xs, ys)                                   # rows along +y
    v = labels.road.sample(np.stack([X, Y], -1))[..., layer]
    data = np.where(np.isnan(v), -1, np.rint(np.nan_to_num(v) * 100)).astype(np.int8).ravel()
    t = float(labels.stamps[k])
    info = M.make("nav_msgs/msg/MapMetaData", map_load_time=M.time(t), resolution=float(cell),
                  width=n, height=n, origin=M.pose(ox, oy, 0.0))
    return M.make("nav_msgs/msg/OccupancyGrid", header=M.header(t, "odom"), info=info, data=data)


def write_mcap(labels: ClipLabels, out: Path) -> Path:
    """The `/autolabel/*` bag of one labeled clip (see the module docstring)."""
    ts = typestore()
    M = Msgs(ts)
    writer = open_mcap_writer(Path(out))
    conns: Dict[str, object] = {}

    def put(topic, typename, msg, t_ns):
        if topic not in conns:
            conns[topic] = writer.add_connection(topic, typename, typestore=ts)
        writer.write(conns[topic], int(t_ns), M.serialize(msg, typename) if not isinstance(msg, bytes) else msg)

    try:
        with BagReader(labels.perception.bag) as reader:
            types = {n: t.msgtype for n, t in reader.topics.items()}
            for topic, t_ns, data in reader.messages(topics=[c for c in COPIED if c in types]):
                put(topic, types[topic], bytes(data), t_ns)
        last_slow = -math.inf
        for k, f in enumerate(labels.frames):
            t = f.stamp_ns * 1e-9
            objs = labels.objects[k]
            put("/autolabel/objects", "autonomy_interfaces/msg/ObjectArray", M.object_array(t, "odom", objs), f.stamp_ns)
            put("/autolabel/markers", "visualization_msgs/msg/MarkerArray", _markers(M, t, objs), f.stamp_ns)
            if t - last_slow >= 1.0 - 1e-6:
                last_slow = t
                put("/autolabel/road", "autonomy_interfaces/msg/RoadStructure",
                    M.road(road_vector_space(labels, k)), f.stamp_ns)
                for i, name in enumerate(labels.road.layers):
                    put(f"/autolabel/bev/{name}", "nav_msgs/msg/OccupancyGrid",
                        _bev_grid_msg(M, labels, k, i), f.stamp_ns)
    finally:
        writer.close()
    return Path(out)


# ---------------------------------------------------------------------- data set
LAYER_OF = {"drivable": "drivable", "lane": "lane_lines", "edge": "road_edges"}


def _calibration(bag) -> Dict:
    """Per camera: (K, D, distortion model, T_base_camera) from CameraInfo and /tf_static."""
    # lazy: optional dependency (quaternions), as in the simulator's recorder
    import transforms3d
    meta = BagData(bag, lambda t, mt: mt == "sensor_msgs/msg/CameraInfo" or t == "/tf_static")
    mount = {}
    for _, m in meta.get("/tf_static"):
        for tr in m.transforms:
            q, p = tr.transform.rotation, tr.transform.translation
            T = np.eye(4)
            T[:3, :3] = transforms3d.quaternions.quat2mat([q.w, q.x, q.y, q.z])
            T[:3, 3] = [p.x, p.y, p.z]
            mount[tr.child_frame_id] = T
    cal = {}
    for topic, msgs in meta.topics.items():
        if topic.endswith("/camera_info") and msgs:
            cam = topic.split("/")[2]
            info = msgs[0][1]
            if f"camera_{cam}" in mount:
                cal[cam] = (np.asarray(info.k, float).reshape(3, 3), np.asarray(info.d, float),
                            str(info.distortion_model), mount[f"camera_{cam}"])
    return cal


def _frame_images(bag, cameras: List[str], stamps: set):
    """Yield (stamp_ns, {camera: RGB}) for the wanted stamps, in log order (one pass)."""
    topics = {f"/cameras/{c}/image_raw": c for c in cameras}
    with BagReader(bag) as reader:
        ts = reader.typestore()
        types = {n: t.msgtype for n, t in reader.topics.items()}
        cur, imgs = None, {}
        for topic, _t, data in reader.messages(topics=[t for t in topics if t in types]):
            msg = ts.deserialize_cdr(data, types[topic])
            s = stamp_ns(msg.header.stamp)
            if s != cur and cur is not None:
                if cur in stamps:
                    yield cur, imgs
                imgs = {}
            cur = s
            imgs[topics[topic]] = image_to_numpy(msg)
        if cur is not None and cur in stamps:
            yield cur, imgs


def _sequence(labels: ClipLabels, ks: List[int], images: List[Dict], cams: List[str], cal: Dict,
              spec: lab.BevSpec) -> Dict:
    centres = spec.cell_centers()                                    # base_link, OccupancyGrid layout
    bev, objs, ego = [], [], []
    for k in ks:
        f = labels.frames[k]
        v = labels.road.sample(from_frame(centres.reshape(-1, 2), *f.pose).reshape(centres.shape))
        layers = {LAYER_OF[n]: (np.nan_to_num(v[..., i]) >= 0.5) for i, n in enumerate(labels.road.layers)
                  if n in LAYER_OF}
        e = objects_to_ego(labels.objects[k], f.pose)
        for o in e:
            o.visible_pixels, o.occluded = (0, True) if o.occluded else (DETECTED_PIXELS, False)
        layers["objects"] = lab.bev_rasters(VectorSpace(0.0, "base_link", e), spec)["objects"]
        bev.append(np.stack([layers.get(n, np.zeros((spec.ny, spec.nx), bool)) for n in lab.LAYERS]))
        objs.append(lab.objects_to_array([o for o in e if lab.in_grid(o, spec)]))
        speed, accel, yaw_rate = f.kinematics
        ego.append([f.pose[0], f.pose[1], f.pose[2], speed, accel, 0.0, yaw_rate, 0.0])
    nmax = max(1, max(len(o) for o in objs))
    arr = np.zeros((len(ks), nmax, len(lab.OBJECT_FIELDS)), np.float32)
    for i, o in enumerate(objs):
        arr[i, :len(o)] = o
    D = np.zeros((len(cams), 8))
    for i, c in enumerate(cams):
        D[i, :len(cal[c][1])] = cal[c][1][:8]
    return dict(scenario=np.array("autolabel"), seed=np.array(-1), stamps=labels.stamps[ks],
                ego=np.asarray(ego, np.float32), bev=np.stack(bev).astype(np.uint8), objects=arr,
                num_objects=np.array([len(o) for o in objs], np.int32), goal=np.zeros(3),
                route_path=np.zeros((0, 2)), camera_names=np.array(cams),
                images=np.stack([np.stack([im[c] for c in cams]) for im in images]),
                K=np.stack([cal[c][0] for c in cams]), D=D,
                D_len=np.array([min(8, len(cal[c][1])) for c in cams], np.int32),
                distortion_model=np.array([cal[c][2] for c in cams]),
                T_base_camera=np.stack([cal[c][3] for c in cams]),
                T_base_camera_nominal=np.stack([cal[c][3] for c in cams]))


def write_dataset(labels: ClipLabels, out: Path, frames: int = 64,
                  spec: lab.BevSpec = lab.BevSpec(48.0, 48.0, 1.0, -24.0, -24.0),
                  start_index: int = 0) -> List[Path]:
    """Sequences of `frames` labeled frames (the last partial one dropped) with every
    camera present; returns the written files. A clip without calibration raises ValueError."""
    out = Path(out)
    cal = _calibration(labels.perception.bag)
    cams = [c for c in labels.perception.camera_names if c in cal]
    if not cams:
        raise ValueError(f"{labels.perception.bag}: no camera with CameraInfo and a /tf_static mounting")
    index = {f.stamp_ns: k for k, f in enumerate(labels.frames)}
    written, ks, ims, size = [], [], [], None
    for s, imgs in _frame_images(labels.perception.bag, cams, set(index)):
        if any(c not in imgs for c in cams):
            continue
        size = imgs[cams[0]].shape[1], imgs[cams[0]].shape[0]
        ks.append(index[s])
        ims.append(imgs)
        if len(ks) == frames:
            n = start_index + len(written)
            path = out / f"shard_{n // 100:04d}" / f"seq_{n:06d}.npz"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, **_sequence(labels, ks, ims, cams, cal, spec))
            written.append(path)
            ks, ims = [], []
    _manifest(out, start_index + len(written), frames, cams, size, spec, labels)
    return written


def _manifest(out: Path, n: int, frames: int, cams, size, spec: lab.BevSpec, labels: ClipLabels) -> None:
    st = labels.stamps
    m = {"format": FORMAT, "labels": "autolabel", "sequences": n, "seed": -1, "frames": frames,
         "stride_s": float(np.median(np.diff(st))) if len(st) > 1 else 0.0, "warmup_s": 0.0,
         "scenarios": ["autolabel"], "camera_names": list(cams), "image_size": list(size or (0, 0)),
         "images": True, "depth": False, "semantic": False,
         "bev": {"extent_x": spec.extent_x, "extent_y": spec.extent_y, "cell": spec.cell,
                 "origin_x": spec.origin_x, "origin_y": spec.origin_y, "layers": list(lab.LAYERS)},
         "object_fields": list(lab.OBJECT_FIELDS), "ego_fields": list(EGO_FIELDS), "shard_size": 100,
         "visible_pixels": f"{DETECTED_PIXELS}: detected in the frame, 0: bridged (occluded)"}
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").write_text(json.dumps(m, indent=1))

"""Renders the vector space of a replay to images (RViz2 is not installable here).

Per frame: a top-down plot (ground truth vs prediction: BEV raster, objects with velocity
arrows, road lines; ego footprint and driven path; plan, corridor and the agents' futures)
and a camera mosaic of the 8 cameras (rectified images from the output bag when present,
else the raw images of the input bag). Written as frames/topdown_NNNN.png,
frames/mosaic_NNNN.png, and the combined frames as replay.gif and replay.mp4.
Pure: rosbags, numpy, matplotlib (Agg), cv2, imageio.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from autonomy_replay import metrics as M
from autonomy_stack.geometry import box_corners
from autonomy_replay.bag import BagReader, stamp_ns
from autonomy_replay.bag_data import (BagData, ego_to_odom, grid_from_msg, layer_key,
                                      load_ego_shape, non_image, quat_yaw, road_lines_in_odom)
from autonomy_replay.synthetic import CAMERAS

TILE = (200, 150)          # camera tile (w, h)
VIEW_M = 40.0              # half width of the top-down view
LOOK_AHEAD_M = 15.0        # view centre ahead of the ego
CLASS_NAMES = {0: "unknown", 1: "car", 2: "truck", 3: "ped", 4: "cyclist", 5: "cone",
               6: "pole", 7: "barrier"}


def _stamp(entry) -> int:
    t, m = entry
    h = getattr(m, "header", None)
    return stamp_ns(h.stamp) if h is not None and stamp_ns(h.stamp) > 0 else t


def _nearest(msgs: list, t_ns: int, tol_ns: int = 200_000_000):
    if not msgs:
        return None
    st = np.array([_stamp(e) for e in msgs], dtype=np.int64)
    k = int(np.argmin(np.abs(st - t_ns)))
    return msgs[k][1] if abs(int(st[k]) - t_ns) <= tol_ns else None


def _latest_before(msgs: list, t_ns: int):
    best = None
    for e in msgs:
        if _stamp(e) <= t_ns:
            best = e[1]
    return best


def _frame_times(inp: BagData, out: BagData, max_frames: int) -> List[int]:
    for topic, data in (("/ground_truth/objects", inp), ("/perception/objects", out),
                        ("/perception/objects", inp), ("/odom", inp),
                        ("/ground_truth/ego", inp)):
        msgs = data.get(topic)
        if msgs:
            stamps = sorted({_stamp(e) for e in msgs})
            break
    else:
        stamps = sorted({t for times in inp.times.values() for t in times})
    if not stamps:
        return []
    idx = np.unique(np.linspace(0, len(stamps) - 1, min(max_frames, len(stamps))).round().astype(int))
    return [stamps[i] for i in idx]


def _draw_grid(ax, msg, cmap, alpha, ego_msgs=None):
    g = grid_from_msg(msg, ego_msgs)
    h, w = g.data.shape
    step = max(1, int(max(h, w) // 200))             # keep big rasters cheap to draw
    data = g.data[::step, ::step]
    res = g.resolution * step
    hh, ww = data.shape
    jj, ii = np.meshgrid(np.arange(ww + 1) * res, np.arange(hh + 1) * res)
    c, s = math.cos(g.origin_yaw), math.sin(g.origin_yaw)
    X = g.origin_x + c * jj - s * ii
    Y = g.origin_y + s * jj + c * ii
    occ = np.ma.masked_less_equal(data.astype(float), 0) / 100.0   # free/unknown: clear
    ax.pcolormesh(X, Y, occ, cmap=cmap, vmin=0, vmax=1, alpha=alpha, zorder=0,
                  shading="flat")


def _draw_objects(ax, msg, color, label, ego_msgs=None):
    """Boxes and velocity arrows in odom (objects published in the ego frame are moved)."""
    from matplotlib.patches import Polygon  # lazy: matplotlib only when rendering (start-up time)
    if msg is None:
        return 0
    T = ego_to_odom(msg.header, ego_msgs)
    R, t = T if T is not None else (np.eye(2), np.zeros(2))
    dyaw = math.atan2(R[1, 0], R[0, 0])
    for o in msg.objects:
        xy = R @ [o.pose.position.x, o.pose.position.y] + t
        v = R @ [o.velocity.x, o.velocity.y]
        yaw = quat_yaw(o.pose.orientation) + dyaw
        c = box_corners(xy[0], xy[1], yaw, o.size.x, o.size.y)
        ls = ":" if getattr(o, "occluded", False) else "-"
        ax.add_patch(Polygon(c, closed=True, fill=False, ec=color, lw=1.5, ls=ls, zorder=3))
        if abs(v[0]) + abs(v[1]) > 0.05:
            ax.arrow(xy[0], xy[1], v[0] * 0.5, v[1] * 0.5, color=color, width=0.08,
                     head_width=0.5, zorder=4)
    ax.plot([], [], color=color, label=f"{label} ({len(msg.objects)})")
    return len(msg.objects)


def _draw_road(ax, msg, color, ls, label, ego_msgs=None):
    if msg is None:
        return
    for i, (_, pts) in enumerate(road_lines_in_odom(msg, ego_msgs)):
        if len(pts) > 1:
            ax.plot(pts[:, 0], pts[:, 1], color=color, ls=ls, lw=1.0, zorder=2,
                    label=label if i == 0 else None)


def _draw_bev_layers(ax, t_ns: int, inp: BagData, out: BagData, pick, ego_msgs):
    """The ground-truth drivable layer (or the first BEV layer) in grey, the predicted one
    in red."""
    gt_layers = {layer_key(t.rsplit("/", 1)[1]): t for t in inp.topics
                 if t.startswith("/ground_truth/bev/")}
    pr_layers = {layer_key(t.rsplit("/", 1)[1]): t for t in set(out.topics) | set(inp.topics)
                 if t.startswith("/perception/bev/")}
    for key in ("drivable",) + tuple(sorted(gt_layers)):
        if key in gt_layers:                      # drivable area (or the first layer)
            m = _nearest(inp.get(gt_layers[key]), t_ns)
            if m is not None:
                _draw_grid(ax, m, "Greys", 0.35, ego_msgs)
            break
    for key in ("drivable",) + tuple(sorted(pr_layers)):
        if key in pr_layers:
            m = _nearest(pick(pr_layers[key]), t_ns)
            if m is not None:
                _draw_grid(ax, m, "Reds", 0.25, ego_msgs)
            break


def _draw_planning(ax, t_ns: int, pick):
    """Agent futures, the corridor and the planned trajectory (or path) latest before t."""
    fut = _latest_before(pick("/planning/agent_futures"), t_ns)
    if fut is not None:
        first = True
        for a in fut.agents:
            for h in a.hypotheses:
                pts = np.array([[p.pose.position.x, p.pose.position.y] for p in h.points])
                if len(pts) > 1:
                    ax.plot(pts[:, 0], pts[:, 1], color="darkorange",
                            alpha=0.25 + 0.75 * float(h.probability), lw=1.2, zorder=3,
                            label="futures" if first else None)
                    first = False
    cor = _latest_before(pick("/planning/corridor"), t_ns)
    if cor is not None and cor.slices:
        for side, lab in (("left_bound", "corridor"), ("right_bound", None)):
            pts = np.array([[s.reference.x - math.sin(s.heading) * getattr(s, side),
                             s.reference.y + math.cos(s.heading) * getattr(s, side)]
                            for s in cor.slices])
            ax.plot(pts[:, 0], pts[:, 1], color="c", lw=1, zorder=3, label=lab)
    plan = _latest_before(pick("/planning/trajectory"), t_ns)
    if plan is not None and plan.points:
        pts = np.array([[p.pose.position.x, p.pose.position.y] for p in plan.points])
        ax.plot(pts[:, 0], pts[:, 1], "b.-", ms=3, lw=1.5, zorder=5,
                label=f"plan {plan.maneuver}".strip())
    elif pick("/planning/path"):
        path = _latest_before(pick("/planning/path"), t_ns)
        if path is not None and path.poses:
            pts = np.array([[p.pose.position.x, p.pose.position.y] for p in path.poses])
            ax.plot(pts[:, 0], pts[:, 1], "b.-", ms=3, lw=1.5, zorder=5, label="path")


def topdown(t_ns: int, inp: BagData, out: BagData, ego_shape: M.EgoShape, size=(8, 5), dpi=100):
    import matplotlib  # lazy: matplotlib only when rendering (start-up time)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib only when rendering (start-up time)
    from matplotlib.patches import Polygon  # lazy: matplotlib only when rendering (start-up time)

    pick = lambda topic: out.get(topic) or inp.get(topic)  # noqa: E731
    fig, ax = plt.subplots(figsize=size, dpi=dpi)
    odom = pick("/odom") or inp.get("/ground_truth/ego")
    ego = _nearest(odom, t_ns)
    cx, cy = (ego.pose.pose.position.x, ego.pose.pose.position.y) if ego else (0.0, 0.0)
    ex, ey = cx, cy
    if ego is not None:                    # look ahead: the view centre is in front of the ego
        yaw0 = quat_yaw(ego.pose.pose.orientation)
        cx, cy = cx + LOOK_AHEAD_M * math.cos(yaw0), cy + LOOK_AHEAD_M * math.sin(yaw0)
    ego_msgs = inp.get("/odom") or inp.get("/ground_truth/ego")
    _draw_bev_layers(ax, t_ns, inp, out, pick, ego_msgs)
    # the simulator publishes the road at 1 Hz: accept the newest within 2 s
    _draw_road(ax, _nearest(inp.get("/ground_truth/road"), t_ns, 2_000_000_000), "green", "-",
               "GT road", ego_msgs)
    _draw_road(ax, _nearest(pick("/perception/road"), t_ns), "red", "--", "pred road", ego_msgs)
    n_gt = _draw_objects(ax, _nearest(inp.get("/ground_truth/objects"), t_ns), "green", "GT",
                         ego_msgs)
    n_pr = _draw_objects(ax, _nearest(pick("/perception/objects"), t_ns), "red", "pred",
                         ego_msgs)
    _draw_planning(ax, t_ns, pick)
    if odom:
        hist = np.array([[m.pose.pose.position.x, m.pose.pose.position.y]
                         for _, m in odom if _stamp((0, m)) <= t_ns])
        if len(hist) > 1:
            ax.plot(hist[:, 0], hist[:, 1], color="0.4", lw=1, zorder=2, label="driven")
    if ego is not None:
        fp = ego_shape.footprint(ex, ey, quat_yaw(ego.pose.pose.orientation))
        ax.add_patch(Polygon(fp, closed=True, fc="black", ec="black", alpha=0.6, zorder=6))
    ax.set_xlim(cx - VIEW_M, cx + VIEW_M)
    ax.set_ylim(cy - VIEW_M * size[1] / size[0], cy + VIEW_M * size[1] / size[0])
    ax.set_aspect("equal")
    ax.set_xlabel("x [m] (odom)")
    ax.set_ylabel("y [m]")
    ax.set_title(f"t = {t_ns * 1e-9:.2f} s   GT objects {n_gt}   predicted {n_pr}", fontsize=9)
    ax.grid(True, lw=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper left", fontsize=7, framealpha=0.7)
    fig.tight_layout()
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return img


def _image_to_rgb(msg) -> Optional[np.ndarray]:
    import cv2  # lazy: OpenCV only on this path (start-up time)
    enc = msg.encoding
    data = np.asarray(msg.data, dtype=np.uint8)
    h, w = int(msg.height), int(msg.width)
    try:
        if enc in ("bgr8", "rgb8"):
            img = data[: h * msg.step].reshape(h, msg.step)[:, : 3 * w].reshape(h, w, 3)
            return img[..., ::-1] if enc == "bgr8" else img
        if enc in ("bgra8", "rgba8"):
            img = data[: h * msg.step].reshape(h, msg.step)[:, : 4 * w].reshape(h, w, 4)[..., :3]
            return img[..., ::-1] if enc == "bgra8" else img
        if enc == "mono8":
            img = data[: h * msg.step].reshape(h, msg.step)[:, :w]
            return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    except ValueError:
        return None
    return None


def _camera_topics(inp: BagData, out: BagData) -> Dict[str, tuple]:
    """cam -> (which bag, topic): rectified output first, else raw input."""
    res = {}
    for cam in CAMERAS:
        for data, topic in ((out, f"/cameras/{cam}/image_rect"), (inp, f"/cameras/{cam}/image_rect"),
                            (inp, f"/cameras/{cam}/image_raw")):
            if data.times.get(topic):
                res[cam] = (data, topic)
                break
    return res


def _load_images(cams: Dict[str, tuple], times: List[int]) -> Dict[tuple, np.ndarray]:
    """(cam, frame index) -> RGB image, decoding only the messages nearest to each frame."""
    want: Dict[str, Dict[int, List[int]]] = {}   # bag path -> topic -> message indices
    need = {}
    for cam, (data, topic) in cams.items():
        tt = np.asarray(data.times[topic], dtype=np.int64)
        for fi, t in enumerate(times):
            k = int(np.argmin(np.abs(tt - t)))
            need.setdefault((str(data.path), topic, k), []).append((cam, fi))
            want.setdefault(str(data.path), {}).setdefault(topic, []).append(k)
    out = {}
    for path, topics in want.items():
        reader = BagReader(path)
        ts = reader.typestore()
        counters = {t: -1 for t in topics}
        wanted = {t: set(v) for t, v in topics.items()}
        for topic, _t, data in reader.messages(list(topics)):
            counters[topic] += 1
            k = counters[topic]
            if k in wanted[topic]:
                try:
                    img = _image_to_rgb(ts.deserialize_cdr(data, reader.topics[topic].msgtype))
                except Exception:
                    img = None
                for key in need.get((path, topic, k), []):
                    out[key] = img
        reader.close()
    return out


def mosaic(images: Dict[str, Optional[np.ndarray]]) -> np.ndarray:
    import cv2  # lazy: OpenCV only on this path (start-up time)
    w, h = TILE
    tiles = []
    for cam in CAMERAS:
        img = images.get(cam)
        tile = np.full((h, w, 3), 40, np.uint8)
        if img is not None:
            tile = cv2.resize(np.ascontiguousarray(img), (w, h), interpolation=cv2.INTER_AREA)
        else:
            cv2.putText(tile, "no image", (50, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (200, 200, 200), 1, cv2.LINE_AA)
        cv2.rectangle(tile, (0, 0), (w, 16), (0, 0, 0), -1)
        cv2.putText(tile, cam, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                    cv2.LINE_AA)
        tiles.append(tile)
    rows = [np.hstack(tiles[i:i + 4]) for i in range(0, 8, 4)]
    return np.vstack(rows)


def render_replay(input_bag, output_bag, out_dir, max_frames: int = 40, fps: float = 5.0,
                  ego_shape: Optional[M.EgoShape] = None) -> dict:
    import cv2  # lazy: OpenCV only on this path (start-up time)
    import imageio.v2 as imageio  # lazy: imageio only when writing videos (start-up time)

    out_dir = Path(out_dir)
    frames_dir = out_dir / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    inp = BagData(input_bag, non_image)
    out = BagData(output_bag, non_image)
    ego_shape = ego_shape or load_ego_shape()
    times = _frame_times(inp, out, max_frames)
    cams = _camera_topics(inp, out)
    images = _load_images(cams, times) if cams else {}
    files, combined = [], []
    for fi, t in enumerate(times):
        td = topdown(t, inp, out, ego_shape)
        name = f"frames/topdown_{fi:04d}.png"
        imageio.imwrite(out_dir / name, td)
        files.append(name)
        frame = td
        if cams:
            mo = mosaic({cam: images.get((cam, fi)) for cam in cams})
            name = f"frames/mosaic_{fi:04d}.png"
            imageio.imwrite(out_dir / name, mo)
            files.append(name)
            mo = cv2.resize(mo, (td.shape[1], int(mo.shape[0] * td.shape[1] / mo.shape[1])))
            frame = np.vstack([mo, td])
        combined.append(frame)
    res = {"frames": len(times), "cameras": sorted(cams), "files": files,
           "frame_times_s": [t * 1e-9 for t in times]}
    if combined:
        imageio.mimsave(out_dir / "replay.gif", [c[::2, ::2] for c in combined],
                        duration=1000.0 / fps, loop=0)
        files.append("replay.gif")
        h, w = combined[0].shape[:2]
        vw = cv2.VideoWriter(str(out_dir / "replay.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                             (w, h))
        if vw.isOpened():
            for c in combined:
                vw.write(np.ascontiguousarray(c[..., ::-1]))
            vw.release()
            files.append("replay.mp4")
    return res

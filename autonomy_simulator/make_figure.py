"""Render the 8 cameras of one scenario frame next to its BEV ground truth (README figure).

    python -m autonomy_simulator.make_figure --scenario intersection_occlusion --seed 0 \
        --time 8.5 --out docs/images/sim_cameras_bev.png

Layout (as the cameras sit on the car): forward cameras on top (fisheye, main, narrow),
pillars left and right of the BEV, repeaters and the rear camera at the bottom. The BEV
(ego frame, x up/forward, 100 m x 100 m at 0.5 m) shows the drivable area, lane lines in
their paint colour, road edges and curbs, and every object box: filled when some camera
sees it, hatched when the renderer found it fully occluded (0 visible pixels), with the
camera mounting positions and viewing directions.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from autonomy_simulator import scenarios
from autonomy_simulator.rendering import RigRenderer
from autonomy_simulator.simulation import to_ego_frame
from autonomy_stack.vector_space import LineType, VectorSpace
from autonomy_vehicle.camera_models import load_rig, sample_mounting_error
from autonomy_vehicle.vehicle_model import VehicleParams

LAYOUT = [["fisheye", "main", "narrow"],
          ["left_pillar", None, "right_pillar"],
          ["left_repeater", "rear", "right_repeater"]]


def render_frame(scenario: str, seed: int, t: float, width: int, height: int,
                 effects: bool = True):
    # lazy: autonomy_simulator.sensor_effects pulls in cv2 (start-up time)
    from autonomy_simulator.sensor_effects import SensorEffects, SensorEffectsConfig

    sc = scenarios.make(scenario, seed=seed)
    sim = sc.sim
    while sim.t < t - 1e-9:
        sim.step()
    snap = sim.snapshot()
    rig = sample_mounting_error(load_rig(width=width, height=height), seed)
    r = RigRenderer(rig)
    frame = r.render(snap)
    r.release()
    if effects:
        fx = SensorEffects(SensorEffectsConfig(read_noise=0.8, shot_noise=0.05))
        rng = np.random.default_rng(seed)
        for name, cf in frame.cameras.items():
            cf.rgb = fx.apply(cf.rgb, rig[name], rng, cf.range, snap.ego.speed,
                              snap.ego.yaw_rate)
    return sc, sim, snap, rig, frame


def draw_bev(ax, sim, snap, rig, frame, extent: float = 50.0):
    # lazy: matplotlib only when rendering (start-up time)
    from matplotlib.patches import Polygon as MplPolygon
    # lazy: autonomy_simulator.labels pulls in cv2 (start-up time)
    from autonomy_simulator.labels import BevSpec, bev_rasters

    gt = sim.ground_truth("base_link")
    spec = BevSpec(extent_x=2 * extent, extent_y=2 * extent, origin_x=-extent, origin_y=-extent)
    ras = bev_rasters(gt, spec)
    # image with x forward = up, y left = left: rows = -x, cols = -y
    img = np.full((spec.ny, spec.nx, 3), 0.16)
    img[ras["drivable"] > 0] = (0.42, 0.42, 0.44)
    img = np.transpose(img, (1, 0, 2))[::-1, ::-1]
    ax.imshow(img, extent=(extent, -extent, -extent, extent), origin="upper",
              interpolation="nearest")
    ego = snap.ego
    for pl in snap.painted_lines:
        v = to_ego_frame(VectorSpace(0, "odom", lines=[pl.line]), ego).lines[0]
        p = np.asarray(v.points)[:, :2]
        dashed = pl.dash_length > 0
        ax.plot(p[:, 1], p[:, 0], color=pl.color, lw=0.9, ls=(0, (3, 3)) if dashed else "-")
    for rl, col in [(l, "#ff5a36") for l in snap.road_edges] + [(l, "#38d0ff") for l in snap.curbs]:
        v = to_ego_frame(VectorSpace(0, "odom", lines=[rl]), ego).lines[0]
        p = np.asarray(v.points)[:, :2]
        ax.plot(p[:, 1], p[:, 0], color=col, lw=1.3)
    for o in gt.objects:
        if abs(o.x) > extent + 5 or abs(o.y) > extent + 5:
            continue
        c = o.corners()
        vis = frame.visible_pixels.get(int(o.id), 0)
        col = snap.object_colors.get(o.id, (0.8, 0.8, 0.8))
        if vis > 0:
            ax.add_patch(MplPolygon(c[:, ::-1], closed=True, fc=col, ec="white", lw=0.8))
        else:
            ax.add_patch(MplPolygon(c[:, ::-1], closed=True, fc="none", ec="white", lw=0.8,
                                    hatch="////", ls="--"))
    # ego and cameras
    vp = VehicleParams()
    ex = np.array([-vp.rear_overhang, vp.length - vp.rear_overhang])
    ey = np.array([-vp.width / 2, vp.width / 2])
    ego_poly = np.array([[ex[0], ey[0]], [ex[1], ey[0]], [ex[1], ey[1]], [ex[0], ey[1]]])
    ax.add_patch(MplPolygon(ego_poly[:, ::-1], closed=True, fc="#00e676", ec="black", lw=0.8))
    for name, cam in rig.items():
        p = cam.position
        d = cam.optical_axis_base
        ax.arrow(p[1], p[0], 6 * d[1], 6 * d[0], color="#ffeb3b", width=0.12, head_width=1.2,
                 length_includes_head=True)
    ax.set_xlim(extent, -extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    n_hidden = sum(1 for o in gt.objects if frame.visible_pixels.get(int(o.id), 0) == 0
                   and abs(o.x) < extent and abs(o.y) < extent)
    ax.text(0.5, 0.985, f"BEV ground truth {2 * extent:.0f} m x {2 * extent:.0f} m "
            f"(hatched: fully occluded, {n_hidden})", transform=ax.transAxes, fontsize=9,
            color="white", va="top", ha="center", bbox=dict(fc="black", alpha=0.55, lw=0, pad=1.5))


def make_figure(scenario: str, seed: int, t: float, out: Path, cam_w: int = 480,
                render_w: int = 1280, render_h: int = 960, effects: bool = True) -> Path:
    # lazy: OpenCV only on this path (start-up time)
    import cv2
    # lazy: matplotlib only when rendering (start-up time)
    import matplotlib
    matplotlib.use("Agg")
    # lazy: matplotlib only when rendering (start-up time)
    import matplotlib.pyplot as plt

    sc, sim, snap, rig, frame = render_frame(scenario, seed, t, render_w, render_h, effects)
    cam_h = int(round(cam_w * render_h / render_w))
    dpi = 100
    fig = plt.figure(figsize=(3 * cam_w / dpi, 3 * cam_h / dpi), dpi=dpi,
                     facecolor="black")
    gs = fig.add_gridspec(3, 3, left=0, right=1, bottom=0, top=1, wspace=0.0, hspace=0.0)
    for r, row in enumerate(LAYOUT):
        for c, name in enumerate(row):
            ax = fig.add_subplot(gs[r, c])
            ax.set_facecolor("black")
            if name is None:
                draw_bev(ax, sim, snap, rig, frame)
                continue
            img = cv2.resize(frame.cameras[name].rgb, (cam_w, cam_h), interpolation=cv2.INTER_AREA)
            ax.imshow(img, interpolation="nearest")
            ax.set_axis_off()
            cam = rig[name]
            hf, _ = cam.fov_deg()
            ax.text(0.01, 0.985, f"{name}  ({cam.distortion_model}, {hf:.0f} deg)",
                    transform=ax.transAxes, fontsize=9, color="white", va="top", ha="left",
                    bbox=dict(fc="black", alpha=0.55, lw=0, pad=1.5))
    fig.suptitle("")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, facecolor="black")
    plt.close(fig)
    # quantise to a palette if the file is large (README images stay small)
    if out.stat().st_size > 1_400_000:
        # lazy: Pillow only on this path (start-up time)
        from PIL import Image
        Image.open(out).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT,
                                                dither=Image.Dither.FLOYDSTEINBERG).save(
            out, optimize=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="intersection_occlusion")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time", type=float, default=8.5, help="simulated seconds before the frame")
    ap.add_argument("--out", default="docs/images/sim_cameras_bev.png")
    ap.add_argument("--cam-width", type=int, default=480)
    ap.add_argument("--no-effects", action="store_true")
    a = ap.parse_args(argv)
    out = make_figure(a.scenario, a.seed, a.time, Path(a.out), a.cam_width,
                      effects=not a.no_effects)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Render benchmark of the simulator's 8-camera rig (RigRenderer, Mesa llvmpipe via EGL on
the CPU, or the GPU driver where EGL finds one).

    bench/run simulator [--scenario NAME] [--seed N] [--frames N] [--train-res 320x240]

Renders consecutive frames of a catalogue scenario (the simulation steps 0.1 s between
frames) for all 8 cameras with every output (RGB, depth, semantic, instance, visible
pixel counts) at full 1280x960 and at the training resolution, and at full resolution once
more with RGB + visible pixel counts only (what the bag recorder and sim node ask for). Reports the median time per
frame (GL draw + read back + lens remap + label decoding; the simulation step is timed
separately) and the frames per hour that follow at the training resolution.
`cpu_s` in the breakdowns is the process CPU time per frame (all threads, llvmpipe's
included): on a shared machine the wall time also contains waiting for a core.
`load_avg_1min` is the machine's load when the benchmark started.
Last line: one JSON object.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autonomy_vehicle.camera_models import load_rig, scale_rig  # noqa: E402
from autonomy_simulator import scenarios  # noqa: E402
from autonomy_simulator.rendering import RigRenderer  # noqa: E402


def bench(rig, snaps, density, warmup=1, outputs=("rgb", "depth", "semantic", "instance")):
    t0 = time.perf_counter()
    r = RigRenderer(rig, density=density)
    init_s = time.perf_counter() - t0
    for s in snaps[:warmup]:
        r.render(s)
    tot, gl, remap, cpu = [], [], [], []
    for s in snaps[warmup:]:
        t = time.perf_counter()
        c = time.process_time()
        f = r.render(s, outputs=outputs)
        tot.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        gl.append(f.render_s)
        remap.append(f.remap_s)
    info = {"init_s": round(init_s, 2), "atlas": list(r.atlas_size),
            "atlas_megapixels": round(r.atlas_pixels / 1e6, 2),
            "gl_s": round(statistics.median(gl), 3), "remap_s": round(statistics.median(remap), 3),
            "cpu_s": round(statistics.median(cpu), 3),
            "renderer": r.ctx.info.get("GL_RENDERER", "?")}
    r.release()
    return statistics.median(tot), info


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="intersection_occlusion")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames", type=int, default=4, help="timed frames at full resolution")
    ap.add_argument("--train-frames", type=int, default=20)
    ap.add_argument("--train-res", default="320x240")
    ap.add_argument("--density", type=float, default=None,
                    help="ideal-view sampling density (default: the renderer's)")
    a = ap.parse_args(argv)
    tw, th = (int(v) for v in a.train_res.split("x"))
    load0 = os.getloadavg()[0]
    sc = scenarios.make(a.scenario, seed=a.seed)
    snaps = []
    step_t = []
    for _ in range(1 + max(a.frames, a.train_frames) + 1):
        snaps.append(sc.sim.snapshot())
        t = time.perf_counter()
        for _ in range(5):
            sc.sim.step()
        step_t.append((time.perf_counter() - t) / 5)
    kw = {} if a.density is None else {"density": a.density}
    import inspect
    dens = kw.get("density", inspect.signature(RigRenderer).parameters["density"].default)
    rig = load_rig()
    full_s, full_info = bench(rig, snaps[: 1 + a.frames], dens)
    print(f"full res 1280x960, 8 cameras: {full_s:.3f} s/frame  {full_info}", flush=True)
    rgb_s, _ = bench(rig, snaps[: 1 + a.frames], dens, outputs=("rgb",))
    print(f"full res, rgb + visibility only: {rgb_s:.3f} s/frame", flush=True)
    train_s, train_info = bench(scale_rig(rig, tw, th), snaps[: 1 + a.train_frames], dens)
    print(f"training res {tw}x{th}, 8 cameras: {train_s:.4f} s/frame  {train_info}", flush=True)
    res = {
        "render_s_per_frame_8cam_full_res": round(full_s, 3),
        "frames_per_hour_training_res": int(3600.0 / train_s),
        "training_res": f"{tw}x{th}",
        "render_s_per_frame_8cam_full_res_rgb_only": round(rgb_s, 3),
        "render_s_per_frame_8cam_training_res": round(train_s, 4),
        "full_res_breakdown": full_info,
        "training_res_breakdown": train_info,
        "sim_step_s": round(statistics.median(step_t), 5),
        "scenario": a.scenario, "seed": a.seed, "density": dens,
        "outputs": "rgb+depth+semantic+instance+visible_pixels",
        "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "load_avg_1min": round(load0, 2),
    }
    print(json.dumps(res))


if __name__ == "__main__":
    main()

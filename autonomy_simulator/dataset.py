"""Training-data writer: sequences of simulated frames with perfect labels on disk (no ROS).

    python -m autonomy_simulator.dataset --out data/sim --sequences 200 --frames 16 \
        --stride 0.1 --width 160 --height 120 [--scenarios random,highway_cut_in] \
        [--cameras main,rear] [--depth] [--semantic] [--seed 0] [--shard-size 100] [--workers 16]

Resumable: a sequence whose file exists is skipped (files are written to a temporary name
and renamed, so a killed run never leaves a half-written sequence); the same command
continues where it stopped and produces the same bytes (everything is seeded).
Parallel: `--workers N` writes the missing sequences with N processes (each its own
renderer / EGL context, sequences handed out one at a time); a sequence depends only on
its index and the options, so the files are the same for any N (`write_parallel` also
writes several data sets with one pool).

On-disk format (version "autonomy_sim_dataset/1"):
  OUT/manifest.json     format, options, cameras, image size, BEV spec + layer names,
                        object/ego field names, number of sequences, base seed
  OUT/shard_XXXX/seq_YYYYYY.npz   (sequence YYYYYY; shard = YYYYYY // shard_size)

Each seq_*.npz holds T frames (T = --frames, `stride` s apart after `warmup` s) of one
scenario run, C cameras (order = `camera_names`), BEV grid ny x nx with L layers:
  scenario (str), seed (int): scenario name and seed; the vehicle's mounting seed = seed
  stamps            (T,)            float64  sim time (s)
  camera_names      (C,)            str
  images            (T, C, H, W, 3) uint8    RGB at the training resolution
  depth             (T, C, H, W)    float16  metres along the optical axis (--depth; inf sky)
  semantic          (T, C, H, W)    uint8    rendering.SEMANTIC_CLASSES (--semantic)
  K                 (C, 3, 3)       float64  intrinsics at the training resolution
  D                 (C, 8)          float64  distortion, first D_len[c] entries valid
  D_len             (C,)            int32
  distortion_model  (C,)            str      plumb_bob | rational_polynomial | equidistant
  T_base_camera     (C, 4, 4)       float64  actual mounting (with this vehicle's error)
  T_base_camera_nominal (C, 4, 4)   float64  nominal mounting (config/camera_rig.yaml)
  ego               (T, E)          float32  EGO_FIELDS: x, y, yaw (world), speed, accel,
                                             lat_accel, yaw_rate, steering_angle
  bev               (T, L, ny, nx)  uint8    0/1 layers (labels.LAYERS), ego-centred in
                                             base_link, OccupancyGrid layout (row = +y)
  objects           (T, N, F)       float32  labels.OBJECT_FIELDS, ego frame (base_link),
                                             objects inside the BEV grid, rows >= num_objects
                                             are zero padding; vx, vy = over-ground velocity
                                             in the ego frame; visible_pixels summed over the
                                             cameras, occluded = 1 when no pixel is visible
  num_objects       (T,)            int32
  goal              (3,)            float64  goal pose (world) of the scenario
  route_path        (P, 2)          float64  route polyline (world)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from autonomy_simulator import labels as lab
from autonomy_simulator import scenarios
from autonomy_simulator.record import VehicleCameras
from autonomy_vehicle.camera_models import load_rig, sample_mounting_error

FORMAT = "autonomy_sim_dataset/1"
EGO_FIELDS = ("x", "y", "yaw", "speed", "accel", "lat_accel", "yaw_rate", "steering_angle")


def sequence_seed(base_seed: int, index: int) -> int:
    return int((base_seed * 1_000_003 + index * 7919 + 17) % (2 ** 31 - 1))


def sequence_path(out: Path, index: int, shard_size: int) -> Path:
    return Path(out) / f"shard_{index // shard_size:04d}" / f"seq_{index:06d}.npz"


class DatasetWriter:
    def __init__(self, out: Path, width: int = 160, height: int = 120,
                 cameras: Optional[Sequence[str]] = None, frames: int = 16, stride: float = 0.1,
                 warmup: float = 1.0, scenario_names: Sequence[str] = ("random",), seed: int = 0,
                 bev: lab.BevSpec = lab.BevSpec(), depth: bool = False, semantic: bool = False,
                 shard_size: int = 100, images: bool = True):
        for s in scenario_names:
            if s not in scenarios.CATALOGUE:
                raise ValueError(f"unknown scenario {s!r}; one of {sorted(scenarios.CATALOGUE)}")
        self.out = Path(out)
        self.width, self.height = int(width), int(height)
        self.frames, self.stride, self.warmup = int(frames), float(stride), float(warmup)
        self.scenario_names = list(scenario_names)
        self.seed, self.bev, self.shard_size = int(seed), bev, int(shard_size)
        self.depth, self.semantic, self.images = depth, semantic, images
        self.cameras = list(cameras) if cameras else None
        self._vc = None
        # the constructor's arguments: a worker process of write_parallel builds its own writer
        self.options = dict(out=str(self.out), width=self.width, height=self.height,
                            cameras=self.cameras, frames=self.frames, stride=self.stride,
                            warmup=self.warmup, scenario_names=self.scenario_names, seed=self.seed,
                            bev=bev, depth=depth, semantic=semantic, shard_size=self.shard_size,
                            images=images)

    def _cams(self, mounting_seed: int):
        if self._vc is None:
            self._vc = VehicleCameras(self.width, self.height, self.cameras, mounting_seed)
        else:
            self._vc.actual = sample_mounting_error(self._vc.nominal, mounting_seed)
            if self._vc._renderer is not None:
                self._vc._renderer.set_rig(self._vc.actual)
        return self._vc

    def manifest(self, n: int) -> dict:
        names = self.cameras or list(load_rig())
        b = self.bev
        return {"format": FORMAT, "sequences": n, "seed": self.seed, "frames": self.frames,
                "stride_s": self.stride, "warmup_s": self.warmup, "scenarios": self.scenario_names,
                "camera_names": names, "image_size": [self.width, self.height],
                "images": self.images, "depth": self.depth, "semantic": self.semantic,
                "bev": {"extent_x": b.extent_x, "extent_y": b.extent_y, "cell": b.cell,
                        "origin_x": b.origin_x, "origin_y": b.origin_y, "layers": list(lab.LAYERS)},
                "object_fields": list(lab.OBJECT_FIELDS), "ego_fields": list(EGO_FIELDS),
                "shard_size": self.shard_size}

    def write_sequence(self, index: int) -> Path:
        path = sequence_path(self.out, index, self.shard_size)
        if path.exists():
            return path
        seed = sequence_seed(self.seed, index)
        name = self.scenario_names[index % len(self.scenario_names)]
        sc = scenarios.make(name, seed=seed)
        sim = sc.sim
        for _ in range(int(round(self.warmup / sim.dt))):
            sim.step()
        every = max(1, int(round(self.stride / sim.dt)))
        vc = self._cams(seed) if self.images else None
        outputs = ("rgb",) + (("depth",) if self.depth else ()) + (("semantic",) if self.semantic else ())
        stamps, ego, bevs, objs, imgs, depths, sems = [], [], [], [], [], [], []
        for f in range(self.frames):
            if f > 0:
                for _ in range(every):
                    sim.step()
            stamps.append(sim.t)
            k = sim.kinematics()
            ego.append([k.x, k.y, k.yaw, k.speed, k.accel, k.lat_accel, k.yaw_rate, k.steering_angle])
            vis = None
            if vc is not None:
                fr = vc.render(sim.snapshot(), outputs=outputs)
                names = list(vc.actual)
                imgs.append(np.stack([fr.cameras[n].rgb for n in names]))
                if self.depth:
                    depths.append(np.stack([fr.cameras[n].depth for n in names]).astype(np.float16))
                if self.semantic:
                    sems.append(np.stack([fr.cameras[n].semantic for n in names]))
                vis = fr.visible_pixels
            v = sim.ground_truth("base_link")
            r = lab.bev_rasters(v, self.bev)
            bevs.append(np.stack([r[k] for k in lab.LAYERS]))
            objs.append(lab.objects_to_array(lab.object_labels(v.objects, vis, self.bev)))
        nmax = max(1, max(len(o) for o in objs))
        obj_arr = np.zeros((self.frames, nmax, len(lab.OBJECT_FIELDS)), np.float32)
        for i, o in enumerate(objs):
            obj_arr[i, :len(o)] = o
        data = dict(scenario=np.array(name), seed=np.array(seed), stamps=np.array(stamps),
                    ego=np.asarray(ego, np.float32), bev=np.stack(bevs).astype(np.uint8),
                    objects=obj_arr, num_objects=np.array([len(o) for o in objs], np.int32),
                    goal=np.asarray(sc.goal, float), route_path=np.asarray(sc.route_path, float))
        if vc is not None:
            names = list(vc.actual)
            cals = [vc.actual[n] for n in names]
            D = np.zeros((len(cals), 8))
            for i, c in enumerate(cals):
                D[i, :len(c.D)] = c.D
            data.update(camera_names=np.array(names), images=np.stack(imgs),
                        K=np.stack([c.K for c in cals]), D=D,
                        D_len=np.array([len(c.D) for c in cals], np.int32),
                        distortion_model=np.array([c.distortion_model for c in cals]),
                        T_base_camera=np.stack([c.T_base_camera for c in cals]),
                        T_base_camera_nominal=np.stack([vc.nominal[n].T_base_camera for n in names]))
            if self.depth:
                data["depth"] = np.stack(depths)
            if self.semantic:
                data["semantic"] = np.stack(sems)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez_compressed(tmp, **data)
        os.replace(tmp, path)
        return path

    def prepare(self, n: int):
        """Create OUT and write (or check) its manifest for `n` sequences."""
        self.out.mkdir(parents=True, exist_ok=True)
        man = self.out / "manifest.json"
        m = self.manifest(n)
        if man.exists():
            old = json.loads(man.read_text())
            old_cmp = {k: v for k, v in old.items() if k != "sequences"}
            new_cmp = {k: v for k, v in m.items() if k != "sequences"}
            if old_cmp != new_cmp:
                raise ValueError(f"{man} was written with other options; use another --out")
        man.write_text(json.dumps(m, indent=1))

    def run(self, n: int, progress: bool = True, workers: int = 1) -> List[Path]:
        """Write sequences 0..n-1 (existing ones are skipped); `workers` > 1: that many
        processes (write_parallel)."""
        if workers > 1:
            write_parallel([(self, n)], workers, progress)
            return [sequence_path(self.out, i, self.shard_size) for i in range(n)]
        self.prepare(n)
        # lazy: optional dependency (progress bars)
        from tqdm import tqdm
        paths = []
        bar = tqdm(range(n), desc="sequences", unit="seq", disable=not progress)
        done = 0
        for i in bar:
            existed = sequence_path(self.out, i, self.shard_size).exists()
            paths.append(self.write_sequence(i))
            done += 0 if existed else 1
            bar.set_postfix(written=done, skipped=i + 1 - done)
        return paths

    def close(self):
        if self._vc is not None:
            self._vc.release()


_POOL_WRITERS: Dict[int, "DatasetWriter"] = {}


def _pool_init():
    # lazy: cv2 is the renderer's dependency; one thread each, the processes fill the cores
    import cv2
    cv2.setNumThreads(1)


def _pool_write(task):
    """Worker process: write one sequence of job `job` (one writer per job and process)."""
    job, options, index = task
    w = _POOL_WRITERS.get(job)
    if w is None:
        w = _POOL_WRITERS[job] = DatasetWriter(**options)
    t = time.perf_counter()
    w.write_sequence(index)
    return job, index, time.perf_counter() - t


def write_parallel(jobs: Sequence[Tuple["DatasetWriter", int]], workers: int, progress: bool = True,
                   on_done: Optional[Callable[[int, int, int, int], None]] = None) -> List[Dict]:
    """Write the missing sequences of several data sets with one pool of `workers` processes
    (spawned: each builds its own writer and EGL context). jobs: (writer, n) each; their
    manifests are written (checked) first; the jobs' tasks are interleaved so that they
    finish together. on_done(job, index, done, total) is called as sequences complete.
    Returns per job {"written", "skipped", "s" (seconds until its last sequence was done)}."""
    # lazy: multiprocessing and tqdm only for parallel writing (start-up time)
    import multiprocessing as mp
    from tqdm import tqdm
    t0 = time.perf_counter()
    stats, order = [], []
    for j, (w, n) in enumerate(jobs):
        w.prepare(n)
        todo = [i for i in range(n) if not sequence_path(w.out, i, w.shard_size).exists()]
        stats.append({"written": len(todo), "skipped": n - len(todo), "s": 0.0})
        order += [((k + 0.5) / len(todo), j, i) for k, i in enumerate(todo)]
    tasks = [(j, jobs[j][0].options, i) for _, j, i in sorted(order)]
    left = [s["written"] for s in stats]
    if tasks:
        bar = tqdm(total=len(tasks), desc="sequences", unit="seq", disable=not progress)
        with mp.get_context("spawn").Pool(max(1, min(workers, len(tasks))), initializer=_pool_init) as pool:
            for k, (j, i, _) in enumerate(pool.imap_unordered(_pool_write, tasks, chunksize=1)):
                left[j] -= 1
                if left[j] == 0:
                    stats[j]["s"] = round(time.perf_counter() - t0, 2)
                bar.update(1)
                if on_done is not None:
                    on_done(j, i, k + 1, len(tasks))
            pool.close()
            pool.join()
        bar.close()
    return stats


def load_sequence(path) -> dict:
    """Read one sequence file back as a dict of arrays."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m autonomy_simulator.dataset",
                                 description="write simulated training sequences with labels")
    ap.add_argument("--out", required=True)
    ap.add_argument("--sequences", type=int, default=10)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--stride", type=float, default=0.1, help="s between frames")
    ap.add_argument("--warmup", type=float, default=1.0, help="s simulated before the first frame")
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--height", type=int, default=120)
    ap.add_argument("--cameras", default="", help="comma-separated subset (default: all 8)")
    ap.add_argument("--scenarios", default="random", help="comma-separated, cycled over sequences")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--depth", action="store_true")
    ap.add_argument("--semantic", action="store_true")
    ap.add_argument("--no-images", action="store_true")
    ap.add_argument("--bev-extent", type=float, default=100.0)
    ap.add_argument("--bev-cell", type=float, default=0.5)
    ap.add_argument("--shard-size", type=int, default=100)
    ap.add_argument("--workers", type=int, default=1, help="writer processes (each its own renderer)")
    a = ap.parse_args(argv)
    e = a.bev_extent
    try:
        w = DatasetWriter(a.out, a.width, a.height, [c for c in a.cameras.split(",") if c] or None,
                          a.frames, a.stride, a.warmup, [s for s in a.scenarios.split(",") if s],
                          a.seed, lab.BevSpec(e, e, a.bev_cell, -e / 2, -e / 2), a.depth, a.semantic,
                          a.shard_size, not a.no_images)
        t = time.perf_counter()
        paths = w.run(a.sequences, progress=True, workers=a.workers)
        w.close()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dt = time.perf_counter() - t
    print(f"{len(paths)} sequences in {a.out} ({dt:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The GPU path in one short command (issue 19): CUDA tests, the perception node's path at
8 x 1280x960 raw bgr8 input including rectification (CPU vs CUDA, fp32 vs fp16/bf16, with
and without torch.compile of the image encoder), p50/p95 per variant, and a profiler
summary (top kernels) of the CUDA fp16 variant.

The timed path per frame is what the perception node does with raw input: per camera
rectification to the network's virtual camera (CPU: OpenCV remap, then BGR->RGB into the
engine's host buffer; CUDA: Rectifier.rectify_to_device -> InferenceEngine.fill_camera_device,
the image never leaves the GPU), then InferenceEngine.run (upload, network, download).

    bench/gpu_check.sh              # on a CUDA machine, < 9 min
    bench/gpu_check.sh --dry-run    # anywhere: the CPU variant on 3 frames, the CUDA
                                    # variants listed with null figures (the schema)
Last line: JSON {device, cuda_tests, variants: [{name, device, precision, compile,
frames, total_ms_p50, total_ms_p95, rectify_ms_p50, network_ms_p50, skipped}], profile,
load_average}.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
CUDA_TESTS = ["tests/test_gpu_risks.py", "tests/test_rectification.py",
              "tests/test_perception_node.py", "tests/test_gpu_train_script.py"]


def variants():
    out = [dict(name="cpu_fp32", device="cpu", precision="fp32", compile=False)]
    for precision in ("fp32", "fp16", "bf16"):
        for comp in (False, True):
            out.append(dict(name=f"cuda_{precision}{'_compile' if comp else ''}", device="cuda",
                            precision=precision, compile=comp))
    return out


def run_cuda_tests(limit_s: float) -> dict:
    """pytest on the files with CUDA-dependent tests; counts from its summary line."""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *CUDA_TESTS],
                          cwd=ROOT, capture_output=True, text=True, timeout=limit_s)
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)", tail)}
    skips = [ln for ln in proc.stdout.splitlines() if ln.startswith("SKIPPED")]
    return {"files": CUDA_TESTS, "exit_code": proc.returncode, "summary": tail, **counts,
            "skipped_reasons": skips[:10], "seconds": round(time.monotonic() - t0, 1)}


class PerceptionPath:
    """Rectifiers (native rig -> the network's virtual cameras) + the inference engine."""

    def __init__(self, variant: dict, checkpoint: Path):
        from autonomy_perception.inference_engine import InferenceEngine
        from autonomy_perception.rectification import Rectifier
        from autonomy_perception.virtual_camera import load_virtual_cameras
        from autonomy_vehicle.camera_models import load_rig
        self.device = variant["device"]
        self.engine = InferenceEngine.from_checkpoint(checkpoint, device=self.device,
                                                      precision=variant["precision"],
                                                      compile_encoder=variant["compile"])
        h, w = self.engine.input_hw
        virtuals = load_virtual_cameras(width=w, height=h)
        rig = load_rig()
        self.rectifiers = [Rectifier(virtuals[c], rig[c], device=self.device) for c in self.engine.camera_names]
        self.raw_hw = (rig[self.engine.camera_names[0]].height, rig[self.engine.camera_names[0]].width)

    def sync(self):
        if self.device == "cuda":
            torch.cuda.synchronize()

    def frame(self, images, stamp: float):
        """(rectify ms, engine stage ms dict) of one frame of raw BGR images."""
        t0 = time.perf_counter()
        for i, (rect, img) in enumerate(zip(self.rectifiers, images)):
            if self.device == "cuda":
                self.engine.fill_camera_device(i, rect.rectify_to_device(img, flip_channels=True))
            else:
                self.engine.fill_camera(i, rect.rectify(img)[:, :, ::-1])
        self.sync()
        rect_ms = (time.perf_counter() - t0) * 1e3
        res = self.engine.run([True] * len(images), (5.0, 0.0, 0.0), stamp)
        return rect_ms, res.stages_ms


def bench_variant(variant: dict, args, images_for) -> dict:
    row = dict(variant, frames=0, total_ms_p50=None, total_ms_p95=None, rectify_ms_p50=None,
               network_ms_p50=None, skipped=None)
    if variant["device"] == "cuda" and not torch.cuda.is_available():
        row["skipped"] = "no CUDA device" + (" (dry run)" if args.dry_run else "")
        return row
    try:
        path = PerceptionPath(variant, Path(args.checkpoint))
        images = images_for(path.raw_hw)
        totals, rects, nets = [], [], []
        for k in range(args.warmup + args.frames):
            t0 = time.perf_counter()
            rect_ms, stages = path.frame(images, 0.1 * k)
            if k >= args.warmup:
                totals.append((time.perf_counter() - t0) * 1e3)
                rects.append(rect_ms)
                nets.append(stages.get("network", float("nan")))
    except Exception as exc:          # a variant that fails says why; the others still run
        row["skipped"] = f"failed: {type(exc).__name__}: {str(exc)[:300]}"
        return row
    row.update(frames=len(totals), total_ms_p50=round(float(np.percentile(totals, 50)), 2),
               total_ms_p95=round(float(np.percentile(totals, 95)), 2),
               rectify_ms_p50=round(float(np.percentile(rects, 50)), 2),
               network_ms_p50=round(float(np.percentile(nets, 50)), 2))
    return row


def profile_variant(variant: dict, args, images_for, out_dir: Path) -> dict:
    """torch.profiler over a few frames: top kernels by device (else CPU) time, a summary
    table and a Chrome trace under out_dir."""
    from torch.profiler import ProfilerActivity, profile
    path = PerceptionPath(variant, Path(args.checkpoint))
    images = images_for(path.raw_hw)
    for k in range(2):
        path.frame(images, 0.1 * k)
    cuda = variant["device"] == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        for k in range(3 if args.dry_run else 10):
            path.frame(images, 0.1 * (k + 2))
        path.sync()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    averages = prof.key_averages()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "profile_top_kernels.txt").write_text(averages.table(sort_by=key, row_limit=25))
    prof.export_chrome_trace(str(out_dir / "profile_trace.json"))
    top = sorted(averages, key=lambda e: getattr(e, key, 0.0), reverse=True)[:15]
    return {"variant": variant["name"], "sorted_by": key, "summary_file": str(out_dir / "profile_top_kernels.txt"),
            "top": [{"name": e.key[:120], "ms_total": round(getattr(e, key, 0.0) / 1e3, 3), "calls": e.count}
                    for e in top]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU variant on a few frames, CUDA variants as schema")
    ap.add_argument("--frames", type=int, default=None, help="timed frames per variant (default 40; dry run 3)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed frames first (default 5; compile needs them)")
    ap.add_argument("--checkpoint", default=str(ROOT / "models" / "perception_tiny.pt"))
    ap.add_argument("--out", default=str(ROOT / "out" / "gpu_check"))
    ap.add_argument("--skip-tests", action="store_true")
    args = ap.parse_args(argv)
    args.frames = args.frames or (3 if args.dry_run else 40)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.dry_run else 5)
    cuda = torch.cuda.is_available()
    print(f"gpu_check: device {torch.cuda.get_device_name(0) if cuda else 'cpu only'}, torch {torch.__version__}"
          f"{', dry run' if args.dry_run else ''}", flush=True)
    rng = np.random.default_rng(0)
    cache = {}

    def images_for(hw):
        if hw not in cache:
            cache[hw] = [rng.integers(0, 255, (*hw, 3), dtype=np.uint8) for _ in range(8)]
        return cache[hw]
    tests = None
    if cuda and not args.skip_tests and not args.dry_run:
        tests = run_cuda_tests(240)
        print(f"cuda tests: {tests['summary']}", flush=True)
    rows = []
    for v in variants():
        rows.append(bench_variant(v, args, images_for))
        print(f"{v['name']}: {rows[-1]}", flush=True)
    prof_variant = next(v for v in variants() if v["name"] == ("cuda_fp16" if cuda else "cpu_fp32"))
    try:
        prof = profile_variant(prof_variant, args, images_for, Path(args.out))
    except Exception as exc:
        prof = {"variant": prof_variant["name"], "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    load = [round(x, 2) for x in os.getloadavg()]
    print(f"load average {load}")
    print(json.dumps({"device": torch.cuda.get_device_name(0) if cuda else "cpu", "dry_run": args.dry_run,
                      "raw_input": "8 x 1280x960 bgr8", "cuda_tests": tests, "variants": rows,
                      "profile": prof, "load_average": load}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

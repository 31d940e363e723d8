"""GPU training in one command (issue 14): data in parallel, training, held-out evaluation.

    tools/gpu_train.sh OUT_DIR [--minutes 9] [--workers 16] [--device cuda] [...]
    python -m autonomy_tools.gpu_train OUT_DIR [...]   # the same, without the carried-package setup

On a machine with a CUDA GPU and 16 cores, within `--minutes` (wall clock, all included):
1. checks: torch + CUDA (GPU name), EGL (a moderngl standalone context; its GL renderer:
   the NVIDIA driver on a GPU machine, Mesa llvmpipe on a CPU one);
2. writes the training set (128 sequences x 64 frames, seed 0) and the held-out set
   (14 x 64, seed 1000) with the options of config/perception_train_tiny.yaml's data
   (128x96 images, 48 m BEV at 1 m, the issue-14 scenario mix) using one writer process
   per core (autonomy_simulator.dataset.write_parallel; resumable: a WORK folder that
   already holds them is reused);
3. trains the same network (config/perception_model_tiny.yaml) with
   config/perception_train_gpu.yaml; its time budget is what is left of `--minutes`
   after the data were written, minus `--eval-reserve-s` and `--overhead-s` (training
   start-up, validations, export). A training process that runs past its share is
   stopped and its last saved state (`last.pt`) is exported instead;
4. evaluates the exported checkpoint on the held-out set with the evaluation CLI
   (`python -m autonomy_perception.evaluation.evaluate`);
5. writes into OUT_DIR (7 files, so the lent machine's $OUT returns them all):
   perception_gpu.pt (the exported checkpoint), scalars.csv, val.csv, train_summary.json,
   eval.json, timing.json (data / train / eval seconds, the planned and measured budget
   split, the checks, the resolved training config) and gpu_train.log (everything printed).

Exit code: 0 done, 1 a stage failed, 2 the checks failed (no CUDA with --device cuda, no EGL).
Small knobs (--train-sequences, --frames, --steps, --batch, --clip-len, ...) make the CPU
smoke test (tests/test_gpu_train_script.py) run the same path in seconds."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from autonomy_simulator import labels as lab
from autonomy_simulator.dataset import DatasetWriter, write_parallel

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("random,narrow_street_oncoming,intersection_occlusion,pedestrian_crossing,random,"
             "highway_cut_in,double_lane_change_left_turn")
OUT_FILES = ("perception_gpu.pt", "scalars.csv", "val.csv", "train_summary.json", "eval.json",
             "timing.json", "gpu_train.log")
EGL_HINT = ("EGL: carry the GL loaders (tools/gpu_wheels.sh writes .gl/) and set "
            "__EGL_VENDOR_LIBRARY_FILENAMES to the NVIDIA vendor file "
            "(tools/gpu_train.sh does both on the lent machine)")


def probe() -> Dict:
    """What this machine offers: torch/CUDA, EGL renderer, cores, /dev/shm. Run in a child
    process (gpu_train never initialises CUDA or EGL itself)."""
    info: Dict = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    try:
        # lazy: torch only in the probe child (the parent stays light)
        import torch
        info["torch"] = torch.__version__
        info["cuda"] = bool(torch.cuda.is_available())
        if info["cuda"]:
            p = torch.cuda.get_device_properties(0)
            info.update(gpu=p.name, gpu_mem_gib=round(p.total_memory / 2 ** 30, 1),
                        gpus=torch.cuda.device_count())
    except Exception as e:  # noqa: BLE001 - reported, the caller decides
        info["torch_error"] = f"{type(e).__name__}: {e}"
    try:
        # lazy: moderngl (OpenGL) only in the probe child
        import moderngl
        ctx = moderngl.create_standalone_context(backend="egl")
        info.update(egl_renderer=ctx.info.get("GL_RENDERER"), egl_vendor=ctx.info.get("GL_VENDOR"),
                    gl_version=ctx.version_code)
        ctx.release()
    except Exception as e:  # noqa: BLE001
        info["egl_error"] = f"{type(e).__name__}: {e}"
    try:
        info["shm_free_gib"] = round(shutil.disk_usage("/dev/shm").free / 2 ** 30, 2)
    except OSError:
        info["shm_free_gib"] = None
    return info


class Log:
    """Prints and appends to OUT/gpu_train.log (also the children's output)."""

    def __init__(self, path: Path):
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def __call__(self, msg: str):
        with self.lock:
            print(msg, flush=True)
            self.f.write(msg + "\n")

    def run(self, cmd: List[str], timeout_s: Optional[float] = None, env=None) -> tuple:
        """Run `cmd`, its stdout+stderr line by line into the log. -> (returncode, timed_out)."""
        self(f"$ {' '.join(cmd)}")
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             cwd=str(ROOT), env=env, bufsize=1)

        def pump():
            for line in p.stdout:
                self(line.rstrip("\n"))
        th = threading.Thread(target=pump, daemon=True)
        th.start()
        timed_out = False
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            self(f"gpu_train: {cmd[2] if len(cmd) > 2 else cmd[0]} ran past {timeout_s:.0f} s: stopping it")
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        th.join(timeout=10)
        return p.returncode, timed_out

    def close(self):
        self.f.close()


def child_env() -> Dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def training_config(a, work: Path, out: Path, budget_s: float) -> Dict:
    """The GPU training config with this run's folders, budget and overrides (model inline
    by absolute path, so the written file works from anywhere)."""
    cfg_path = Path(a.config)
    if not cfg_path.is_absolute():
        cfg_path = ROOT / cfg_path
    raw = yaml.safe_load(cfg_path.read_text())
    mc = Path(raw["model_config"])
    raw["model_config"] = str(mc if mc.is_absolute() else (cfg_path.parent / mc).resolve())
    d, t = raw.setdefault("data", {}), raw.setdefault("train", {})
    d.update(train=str(work / "train"), val=str(work / "eval"))
    t.update(out=str(work / "run"), export=str(out / "perception_gpu.pt"),
             time_budget_s=round(float(budget_s), 1), device=a.device)
    for key, sec, name in (("steps", t, "steps"), ("batch", t, "batch"), ("threads", t, "threads"),
                           ("loader_workers", t, "loader_workers"), ("val_every", t, "val_every"),
                           ("val_sequences", t, "val_sequences"), ("lr", t, "lr"),
                           ("clip_len", d, "clip_len"), ("burn_in_max", d, "burn_in_max")):
        v = getattr(a, key)
        if v is not None:
            sec[name] = v
    return raw


def fit_loader_workers(raw: Dict, info: Dict, log: Log):
    """Each loader worker keeps 2 batches in shared memory: fewer workers if /dev/shm is small."""
    t, d = raw["train"], raw["data"]
    n = int(t.get("loader_workers", 0))
    shm = info.get("shm_free_gib")
    if n <= 0 or not shm:
        return
    mc = yaml.safe_load(Path(raw["model_config"]).read_text())
    m = mc.get("model", mc)
    h, w = m["input_hw"]
    batch_gib = (int(t.get("batch", 1)) * (int(d.get("clip_len", 3)) + int(d.get("burn_in_max", 0)))
                 * len(m["cameras"]) * 3 * h * w) / 2 ** 30
    fit = max(1, int(shm * 0.5 / max(1e-9, 2 * batch_gib)))
    if fit < n:
        log(f"gpu_train: /dev/shm has {shm} GiB free: loader_workers {n} -> {fit}")
        t["loader_workers"] = fit


def export_last_state(last: Path, dst: Path) -> bool:
    """The training process was stopped: export its last saved state instead."""
    # lazy: torch and the network only when this fallback is needed
    import torch
    from autonomy_perception.network.model import PerceptionNet
    if not last.exists():
        return False
    ck = torch.load(last, map_location="cpu", weights_only=False)
    net = PerceptionNet(ck["config"])
    net.load_state_dict(ck["state_dict"])
    net.eval().save(dst, train={"steps": int(ck["step"]), "elapsed_s": round(float(ck.get("elapsed_s", 0)), 1),
                                "stopped": "gpu_train time limit; exported from last.pt"})
    return True


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="tools/gpu_train.sh", description=__doc__.split("\n")[0])
    ap.add_argument("out", help="folder for the checkpoint, metrics, timing and log")
    ap.add_argument("--minutes", type=float, default=9.0, help="wall-clock budget of everything")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="data writer processes")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--config", default="config/perception_train_gpu.yaml")
    ap.add_argument("--work", default=str(ROOT / "data" / "gpu_train"),
                    help="data sets and the training folder (reused: resumable data)")
    ap.add_argument("--train-sequences", type=int, default=128)
    ap.add_argument("--eval-sequences", type=int, default=14)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--height", type=int, default=96)
    ap.add_argument("--bev-extent", type=float, default=48.0)
    ap.add_argument("--bev-cell", type=float, default=1.0)
    ap.add_argument("--scenarios", default=SCENARIOS)
    ap.add_argument("--train-seed", type=int, default=0)
    ap.add_argument("--eval-seed", type=int, default=1000)
    ap.add_argument("--eval-reserve-s", type=float, default=60.0, help="kept for the final evaluation")
    ap.add_argument("--overhead-s", type=float, default=30.0,
                    help="kept for the training process's start-up, validations and export")
    ap.add_argument("--eval-rectification", default="on", choices=["on", "both", "off"])
    ap.add_argument("--eval-threads", type=int, default=4)
    g = ap.add_argument_group("training overrides (default: the config's)")
    for name, typ in (("steps", int), ("batch", int), ("lr", float), ("threads", int),
                      ("loader-workers", int), ("val-every", int), ("val-sequences", int),
                      ("clip-len", int), ("burn-in-max", int)):
        g.add_argument(f"--{name}", type=typ, default=None)
    return ap.parse_args(argv)


class GpuTrainRun:
    """One run: the stages in order, each logging and filling `timing` (saved after each)."""

    def __init__(self, a: argparse.Namespace, argv):
        self.a, self.t0, self.budget = a, time.perf_counter(), a.minutes * 60.0
        self.out, self.work = Path(a.out).resolve(), Path(a.work).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        for f in OUT_FILES:               # this run's files only
            (self.out / f).unlink(missing_ok=True)
        self.log = Log(self.out / "gpu_train.log")
        self.env = child_env()
        self.info: Dict = {}
        self.timing: Dict = {"budget_s": round(self.budget, 1), "workers": a.workers, "device": a.device,
                             "command": [sys.argv[0]] + list(sys.argv[1:] if argv is None else argv)}

    def since(self) -> float:
        return round(time.perf_counter() - self.t0, 2)

    def save_timing(self, error=None):
        if error is not None:
            self.timing["error"] = error
            for e in ([error] if isinstance(error, str) else error):
                self.log(f"gpu_train: error: {e}")
        self.timing["total_s"] = self.since()
        (self.out / "timing.json").write_text(json.dumps(self.timing, indent=1))

    def checks(self) -> bool:
        """CUDA (with --device cuda) and an EGL context, in a child process."""
        r = subprocess.run([sys.executable, "-c", "import json; from autonomy_tools.gpu_train import probe; "
                            "print(json.dumps(probe()))"], capture_output=True, text=True,
                           env=self.env, cwd=str(ROOT), timeout=300)
        try:
            info = json.loads(r.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            info = {"probe_error": (r.stderr or r.stdout)[-2000:]}
        self.info = info
        self.timing.update(checks=info, checks_s=self.since())
        self.log("gpu_train: checks " + json.dumps(info))
        problems = []
        if self.a.device == "cuda" and not info.get("cuda"):
            problems.append(f"no CUDA device (torch {info.get('torch')} {info.get('torch_error', '')}); "
                            "use --device cpu for a CPU run")
        if "egl_error" in info or "probe_error" in info:
            problems.append(f"no EGL context for the renderer: "
                            f"{info.get('egl_error') or info.get('probe_error')}. {EGL_HINT}")
        if problems:
            self.save_timing(problems)
            return False
        if self.a.device == "cuda" and "llvmpipe" in str(info.get("egl_renderer", "")).lower():
            self.log(f"gpu_train: warning: EGL renders on the CPU ({info['egl_renderer']}), not the GPU; {EGL_HINT}")
        return True

    def data(self) -> bool:
        """Both data sets, one writer process per core (resumable)."""
        a, e = self.a, self.a.bev_extent
        scen = [s for s in a.scenarios.split(",") if s]
        jobs = [(DatasetWriter(self.work / name, a.width, a.height, None, a.frames, 0.1, 1.0, scen, seed,
                               lab.BevSpec(e, e, a.bev_cell, -e / 2, -e / 2)), n)
                for name, seed, n in (("train", a.train_seed, a.train_sequences),
                                      ("eval", a.eval_seed, a.eval_sequences))]
        self.log(f"gpu_train: data: {a.train_sequences} + {a.eval_sequences} sequences x {a.frames} "
                 f"frames into {self.work} with {a.workers} writer processes")
        every = max(1, (a.train_sequences + a.eval_sequences) // 10)

        def done(j, i, k, n):
            if k % every == 0 or k == n:
                self.log(f"gpu_train: data {k}/{n} sequences ({self.since():.0f} s)")
        t = time.perf_counter()
        try:
            stats = write_parallel(jobs, a.workers, progress=False, on_done=done)
        except Exception as exc:  # noqa: BLE001 - any writer failure ends the run, logged
            self.save_timing(f"data generation failed: {type(exc).__name__}: {exc}")
            return False
        ds = self.timing["data_s"] = round(time.perf_counter() - t, 2)
        self.timing["data"] = {"train": stats[0], "eval": stats[1]}
        frames = (stats[0]["written"] + stats[1]["written"]) * a.frames
        self.log(f"gpu_train: data done in {ds:.1f} s ({frames} frames written, "
                 f"{frames / max(ds, 1e-9):.1f} frames/s)")
        self.save_timing()
        return True

    def train(self) -> bool:
        """Training with the time left (planned split printed); overrun -> stop, export last.pt."""
        a = self.a
        left = self.budget - (time.perf_counter() - self.t0)
        budget = left - a.eval_reserve_s - a.overhead_s
        floor = max(5.0, 0.1 * self.budget)
        if budget < floor:
            self.log(f"gpu_train: warning: only {left:.0f} s left after the data; training {floor:.0f} s anyway")
            budget = floor
        raw = training_config(a, self.work, self.out, budget)
        fit_loader_workers(raw, self.info, self.log)
        run_dir = self.work / "run"
        shutil.rmtree(run_dir, ignore_errors=True)     # a fresh run (its CSVs are appended to)
        run_dir.mkdir(parents=True)
        cfg_file = self.work / "train_config.yaml"
        cfg_file.write_text(yaml.safe_dump(raw, sort_keys=False))
        planned = {"checks_s": self.timing["checks_s"], "data_s": self.timing["data_s"],
                   "train_s": round(budget, 1), "overhead_s": a.overhead_s, "eval_s": a.eval_reserve_s}
        self.timing.update(train_budget_s=round(budget, 1), train_config=raw, planned=planned)
        self.log("gpu_train: budget split (planned): " + ", ".join(f"{k} {v:.0f} s" for k, v in planned.items())
                 + f" of {self.budget:.0f} s")
        self.save_timing()
        # hard stop: half the evaluation reserve must be left (never before budget + overhead + 10 s)
        limit = max(budget + a.overhead_s + 10.0,
                    self.budget - (time.perf_counter() - self.t0) - 0.5 * a.eval_reserve_s)
        t = time.perf_counter()
        rc, stopped = self.log.run([sys.executable, "-m", "autonomy_perception.training.train",
                                    "--config", str(cfg_file), "--no-progress"], timeout_s=limit, env=self.env)
        self.timing.update(train_s=round(time.perf_counter() - t, 2), train_returncode=rc)
        ck = self.out / "perception_gpu.pt"
        if stopped:
            self.timing["train_stopped"] = True
            if export_last_state(run_dir / "last.pt", ck):
                self.log(f"gpu_train: exported the last saved state to {ck}")
        for f in ("scalars.csv", "val.csv", "train_summary.json"):
            if (run_dir / f).exists():
                shutil.copy2(run_dir / f, self.out / f)
        if (run_dir / "train_summary.json").exists():
            self.timing["train_summary"] = json.loads((run_dir / "train_summary.json").read_text())
        if not ck.exists() or (rc != 0 and not stopped):
            self.save_timing(f"training failed (exit code {rc}); no checkpoint")
            return False
        self.save_timing()
        return True

    def evaluate(self) -> bool:
        """The evaluation CLI on the held-out set; the measured split."""
        a = self.a
        t = time.perf_counter()
        rc, _ = self.log.run([sys.executable, "-m", "autonomy_perception.evaluation.evaluate",
                              "--checkpoint", str(self.out / "perception_gpu.pt"), "--data", str(self.work / "eval"),
                              "--out", str(self.out / "eval.json"), "--rectification", a.eval_rectification,
                              "--device", a.device, "--threads", str(a.eval_threads)], env=self.env)
        self.timing.update(eval_s=round(time.perf_counter() - t, 2), eval_returncode=rc)
        total = self.since()
        m = self.timing["measured"] = {k: self.timing[k] for k in ("checks_s", "data_s", "train_s", "eval_s")}
        m["total_s"] = total
        self.timing["over_budget"] = total > self.budget
        self.log("gpu_train: budget split (measured): " + ", ".join(f"{k} {v:.1f} s" for k, v in m.items())
                 + f" of {self.budget:.0f} s" + (" -- OVER BUDGET" if total > self.budget else ""))
        missing = [f for f in OUT_FILES if f != "timing.json" and not (self.out / f).exists()]
        if rc != 0 or missing:
            self.save_timing(f"evaluation exit code {rc}; missing outputs {missing}")
            return False
        self.save_timing()
        self.log(f"gpu_train: done: {', '.join(OUT_FILES)} in {self.out}")
        return True


def main(argv=None) -> int:
    run = GpuTrainRun(parse_args(argv), argv)
    try:
        if not run.checks():
            return 2
        return 0 if run.data() and run.train() and run.evaluate() else 1
    finally:
        run.log.close()


if __name__ == "__main__":
    sys.exit(main())

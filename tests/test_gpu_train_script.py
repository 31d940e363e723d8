"""tools/gpu_train.sh (autonomy_tools/gpu_train.py) end to end on CPU in a tiny mode: the
same path as on a GPU machine -- checks, both data sets written by 2 writer processes,
training with a background loader worker, export, held-out evaluation -- with tiny knobs.
Every output file exists, the timing split is filled, the checkpoint loads, and the files
written in parallel are the ones the sequential writer makes."""
import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "gpu_train.sh"
TINY = ["--device", "cpu", "--workers", "2", "--train-sequences", "2", "--eval-sequences", "1",
        "--frames", "4", "--minutes", "1", "--steps", "2", "--batch", "1", "--clip-len", "2",
        "--burn-in-max", "1", "--threads", "1", "--loader-workers", "1", "--val-every", "1",
        "--val-sequences", "1", "--eval-threads", "1", "--eval-reserve-s", "5", "--overhead-s", "5"]


def _rows(p):
    with open(p) as f:
        return list(csv.DictReader(f))


@pytest.mark.timeout(300)
def test_gpu_train_script_cpu_tiny(tmp_path):
    from autonomy_perception import inference_engine
    from autonomy_perception.network import model as model_module
    from autonomy_simulator.dataset import DatasetWriter, load_sequence, sequence_path
    from autonomy_tools.gpu_train import OUT_FILES, Log, export_last_state

    out, work = tmp_path / "out", tmp_path / "work"
    r = subprocess.run(["bash", str(SCRIPT), str(out), "--work", str(work), *TINY],
                       capture_output=True, text=True, timeout=280, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(OUT_FILES)     # <= 8 files: $OUT returns all

    timing = json.loads((out / "timing.json").read_text())
    m = timing["measured"]
    assert all(m[k] > 0 for k in ("data_s", "train_s", "eval_s"))
    assert m["total_s"] >= m["data_s"] + m["train_s"] + m["eval_s"] and not timing["over_budget"]
    assert timing["data"]["train"]["written"] == 2 and timing["data"]["eval"]["written"] == 1
    assert timing["train_config"]["train"]["loader_workers"] == 1       # the prefetch path ran
    assert timing["checks"]["egl_renderer"]
    assert "budget split (measured)" in (out / "gpu_train.log").read_text()

    assert [int(x["step"]) for x in _rows(out / "scalars.csv")] == [1, 2]
    assert all(np.isfinite(float(x["loss"])) for x in _rows(out / "scalars.csv"))
    assert len(_rows(out / "val.csv")) == 2
    assert json.loads((out / "train_summary.json").read_text())["steps"] == 2
    res = json.loads((out / "eval.json").read_text())["results"]
    assert set(res) == {"video", "single"} and all(v["frames"] == 4 for v in res.values())

    # the exported checkpoint: the committed model configuration, CPU tensors, loadable
    raw = torch.load(out / "perception_gpu.pt", weights_only=False)
    assert all(v.device.type == "cpu" for v in raw["state_dict"].values())
    mc = yaml.safe_load((ROOT / "config" / "perception_model_tiny.yaml").read_text())["model"]
    net, _ = model_module.load_checkpoint(out / "perception_gpu.pt", "cpu", expect_config=mc)
    assert net.cfg["input_hw"] == [96, 128] and len(net.cfg["cameras"]) == 8
    # the node's inference wrapper loads it
    eng = inference_engine.InferenceEngine.from_checkpoint(out / "perception_gpu.pt", "cpu")
    assert tuple(eng.input_hw) == (96, 128)
    # a training process stopped at the time limit: its last saved state is exported
    assert export_last_state(work / "run" / "last.pt", tmp_path / "stopped.pt")
    stopped, ck = model_module.load_checkpoint(tmp_path / "stopped.pt", "cpu", expect_config=mc)
    assert ck["train"]["steps"] == 2
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), stopped.state_dict().values()))
    log = Log(tmp_path / "t.log")
    assert log.run(["sleep", "30"], timeout_s=0.5)[1] is True        # stopped, not waited for
    log.close()

    # written by 2 processes == written by the sequential writer (same bytes per array)
    man = json.loads((work / "train" / "manifest.json").read_text())
    assert man["sequences"] == 2 and man["frames"] == 4 and man["seed"] == 0
    b = man["bev"]
    from autonomy_simulator import labels as lab
    w = DatasetWriter(tmp_path / "seq", man["image_size"][0], man["image_size"][1], None, 4, 0.1, 1.0,
                      man["scenarios"], 0, lab.BevSpec(b["extent_x"], b["extent_y"], b["cell"],
                                                      b["origin_x"], b["origin_y"]))
    try:
        mine = load_sequence(w.write_sequence(1))
    finally:
        w.close()
    pool = load_sequence(sequence_path(work / "train", 1, man["shard_size"]))
    assert set(mine) == set(pool)
    for k in mine:
        assert np.array_equal(mine[k], pool[k]), k


@pytest.mark.timeout(120)
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_gpu_train_script_refuses_without_cuda(tmp_path):
    r = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out"), "--work", str(tmp_path / "w")],
                       capture_output=True, text=True, timeout=110, cwd=ROOT)
    assert r.returncode == 2
    assert "no CUDA device" in r.stdout and "--device cpu" in r.stdout
    assert json.loads((tmp_path / "out" / "timing.json").read_text())["error"]
    assert not (tmp_path / "w").exists()                  # nothing written before the checks pass

"""bench/gpu_check.sh --dry-run (issue 19): the GPU check runs its CPU parts here and prints
the JSON it fills on a CUDA machine -- every variant named, the CPU variant measured, the
profiler summary written."""
import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(180)
def test_gpu_check_dry_run_prints_the_schema(tmp_path):
    proc = subprocess.run([str(ROOT / "bench" / "gpu_check.sh"), "--dry-run", "--frames", "2",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    names = {v["name"] for v in result["variants"]}
    assert {"cpu_fp32", "cuda_fp32", "cuda_fp16", "cuda_bf16", "cuda_fp16_compile", "cuda_bf16_compile"} <= names
    keys = {"total_ms_p50", "total_ms_p95", "rectify_ms_p50", "network_ms_p50", "frames", "skipped"}
    assert all(keys <= set(v) for v in result["variants"])
    cpu = next(v for v in result["variants"] if v["name"] == "cpu_fp32")
    assert cpu["skipped"] is None and cpu["frames"] == 2 and 0 < cpu["total_ms_p50"] <= cpu["total_ms_p95"]
    assert result["raw_input"] == "8 x 1280x960 bgr8" and result["dry_run"] is True
    assert result["profile"]["top"] and (tmp_path / "profile_top_kernels.txt").stat().st_size > 0
    assert len(result["load_average"]) == 3

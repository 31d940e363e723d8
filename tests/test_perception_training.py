"""End to end on a tiny simulator dataset: dataset writer -> training (checkpoints, CSV,
validation, resume, export) -> feature cache -> head fine-tuning from the cache ->
evaluation command (video / single, rectified / raw)."""
import csv
import json

import numpy as np
import pytest
import torch
import yaml

from test_perception_network import TINY

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from autonomy_simulator import labels as lab
    from autonomy_simulator.dataset import DatasetWriter
    root = tmp_path_factory.mktemp("percep_data")
    w = DatasetWriter(root / "sim", width=64, height=32, cameras=["main", "rear"], frames=4,
                      stride=0.1, seed=3, bev=lab.BevSpec(32.0, 32.0, 1.0, -16.0, -16.0))
    w.run(2, progress=False)
    w.close()
    return root / "sim"


def _config(tmp_path, data, **train):
    model = dict(TINY, cameras=["main", "rear"])
    cfg = {"model": model,
           "data": {"train": str(data), "val": str(data), "clip_len": 2, "burn_in_max": 1},
           "train": {"steps": 2, "batch": 1, "ckpt_every": 1, "val_every": 2, "val_sequences": 1,
                     "out": str(tmp_path / "run"), "export": str(tmp_path / "m.pt"), "warmup": 1,
                     "single_frame_prob": 0.0, **train}}
    p = tmp_path / "train.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _rows(p):
    with open(p) as f:
        return list(csv.DictReader(f))


@pytest.mark.timeout(900)
def test_train_resume_cache_finetune_evaluate(tmp_path, tiny_dataset, capsys):
    from autonomy_perception.evaluation import evaluate
    from autonomy_perception.inference_engine import InferenceEngine
    from autonomy_perception.network.model import load_checkpoint
    from autonomy_perception.training import cache_features, train
    from autonomy_perception.training.data import SimDataset

    ds = SimDataset(tiny_dataset, train.load_train_config(_config(tmp_path, tiny_dataset))["model"])
    s = ds.sequence(0)
    assert s.images.shape == (4, 2, 3, 32, 64) and s.seg.shape == (4, 3, 16, 16)
    assert s.images.max() > 0 and s.seg[:, 0].sum() > 0            # road seen, drivable labelled

    cfg = _config(tmp_path, tiny_dataset)
    assert train.main(["--config", str(cfg), "--no-progress"]) == 0
    rows = _rows(tmp_path / "run" / "scalars.csv")
    assert [int(r["step"]) for r in rows] == [1, 2] and all(np.isfinite(float(r["loss"])) for r in rows)
    assert len(_rows(tmp_path / "run" / "val.csv")) == 1
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=False)["step"] == 2
    model = InferenceEngine.from_checkpoint(tmp_path / "m.pt")
    assert model.camera_names == ["main", "rear"]
    # resume continues from step 2 to 3
    assert train.main(["--config", str(cfg), "--resume", "--steps", "3", "--no-progress"]) == 0
    assert [int(r["step"]) for r in _rows(tmp_path / "run" / "scalars.csv")] == [1, 2, 3]
    assert "resumed from" in capsys.readouterr().err

    # feature cache + heads-only fine-tuning from it
    cache = tmp_path / "cache"
    assert cache_features.main(["--checkpoint", str(tmp_path / "m.pt"), "--data", str(tiny_dataset),
                                "--out", str(cache)]) == 0
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["levels"] == 2 and len(list(cache.glob("seq_*.npz"))) == 2
    ft = _config(tmp_path, tiny_dataset, out=str(tmp_path / "ft"), export=str(tmp_path / "ft.pt"),
                 init_checkpoint=str(tmp_path / "m.pt"), train_modules="heads", steps=2)
    d = yaml.safe_load(ft.read_text())
    d["data"]["feature_cache"] = str(cache)
    ft.write_text(yaml.safe_dump(d))
    assert train.main(["--config", str(ft), "--no-progress"]) == 0
    a, _ = load_checkpoint(tmp_path / "m.pt")
    b, _ = load_checkpoint(tmp_path / "ft.pt")
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa if not k.startswith("heads."))
    assert any(not torch.equal(sa[k], sb[k]) for k in sa if k.startswith("heads."))
    # a cache made by another encoder is refused
    from autonomy_perception.training.cache_features import FeatureCache, FeatureCacheError
    other = train.PerceptionNet(dict(TINY, cameras=["main", "rear"]))
    with pytest.raises(FeatureCacheError, match="another encoder"):
        FeatureCache(cache, other)

    # evaluation command: video/single x rectified/raw, JSON written
    out = tmp_path / "eval.json"
    assert evaluate.main(["--checkpoint", str(tmp_path / "ft.pt"), "--data", str(tiny_dataset),
                          "--out", str(out)]) == 0
    res = json.loads(out.read_text())["results"]
    assert set(res) == {"video", "single", "video_raw", "single_raw"}
    for r in res.values():
        assert r["frames"] == 8 and 0.0 <= r["iou"]["drivable"] <= 1.0
    assert evaluate.main(["--checkpoint", str(tmp_path / "missing.pt"), "--data", str(tiny_dataset)]) == 2

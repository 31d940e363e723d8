"""Dataset writer: format as documented, resumable (existing sequences skipped, a deleted
one is regenerated with the same content), labels consistent with the rasters."""
import json

import numpy as np
import pytest

from autonomy_simulator import dataset, labels as lab


@pytest.mark.timeout(120)
def test_dataset_format_and_resume(tmp_path):
    pytest.importorskip("moderngl")
    out = tmp_path / "ds"
    spec = lab.BevSpec(40.0, 40.0, 0.5, -20.0, -20.0)
    kw = dict(width=64, height=48, cameras=["main", "rear"], frames=2, stride=0.1, warmup=0.2,
              scenario_names=["pedestrian_crossing", "narrow_street_oncoming"], seed=1, bev=spec,
              semantic=True, shard_size=1)
    w = dataset.DatasetWriter(out, **kw)
    paths = w.run(2, progress=False)
    w.close()
    assert [p.parent.name for p in paths] == ["shard_0000", "shard_0001"]
    man = json.loads((out / "manifest.json").read_text())
    assert man["format"] == dataset.FORMAT and man["camera_names"] == ["main", "rear"]
    d = dataset.load_sequence(paths[0])
    assert str(d["scenario"]) == "pedestrian_crossing"
    assert d["images"].shape == (2, 2, 48, 64, 3) and d["images"].dtype == np.uint8
    assert d["images"].std() > 5
    assert d["semantic"].shape == (2, 2, 48, 64)
    assert d["bev"].shape == (2, len(lab.LAYERS), spec.ny, spec.nx)
    assert d["bev"][:, lab.LAYERS.index("drivable")].mean() > 0.05
    assert d["K"].shape == (2, 3, 3) and d["K"][0, 0, 0] == pytest.approx(700.0 * 64 / 1280)
    assert not np.allclose(d["T_base_camera"], d["T_base_camera_nominal"])   # mounting error
    assert np.allclose(d["T_base_camera"], d["T_base_camera_nominal"], atol=0.1)
    assert np.all(np.diff(d["stamps"]) == pytest.approx(0.1))
    assert d["ego"].shape == (2, len(dataset.EGO_FIELDS))
    # object labels: inside the grid, their centre cell is set in the objects layer
    f = lab.OBJECT_FIELDS
    for t in range(2):
        objs = d["objects"][t, :d["num_objects"][t]]
        assert len(objs) > 0
        for o in objs:
            col = int((o[f.index("x")] - spec.origin_x) / spec.cell)
            row = int((o[f.index("y")] - spec.origin_y) / spec.cell)
            assert d["bev"][t, lab.LAYERS.index("objects"), row, col] == 1
        vis = objs[:, f.index("visible_pixels")]
        occ = objs[:, f.index("occluded")]
        assert np.array_equal(occ == 1, vis == 0)
    # resume: existing files are skipped, a removed one comes back identical
    mtime = paths[0].stat().st_mtime_ns
    before = dataset.load_sequence(paths[1])
    paths[1].unlink()
    w = dataset.DatasetWriter(out, **kw)
    w.run(2, progress=False)
    w.close()
    assert paths[0].stat().st_mtime_ns == mtime
    again = dataset.load_sequence(paths[1])
    for k in ("ego", "bev", "objects", "stamps", "K", "T_base_camera"):
        assert np.array_equal(before[k], again[k]), k
    with pytest.raises(ValueError):
        dataset.DatasetWriter(out, **{**kw, "width": 80}).run(2, progress=False)

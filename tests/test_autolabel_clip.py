"""Auto-labeling end to end: a short simulator scenario is recorded (camera images at the
network's 128x96, odometry, /tf_static; ground truth in the bag only for the check), the
auto-labeler labels it with the committed network, and the labels are checked against the
ground truth within the tolerances below; the outputs (MCAP, training data set) load in
the project's readers; the command rejects a clip without cameras."""
import json

import pytest
import torch

from autonomy_autolabel.command import main as autolabel_main
from autonomy_autolabel.labeler import AutolabelConfig, autolabel_clip
from autonomy_autolabel.output import write_dataset, write_mcap
from autonomy_autolabel.quality import evaluate_clip
from autonomy_perception.evaluation.protocol import EvaluationProtocol
from autonomy_perception.inference_engine import InferenceEngine
from autonomy_perception.training.data import SimDataset
from autonomy_replay.bag_data import BagData
from autonomy_replay.perception_eval import checkpoint_config
from autonomy_simulator.record import record
from autonomy_stack.paths import share_dir

SCENARIO, SEED, DURATION = "narrow_street_oncoming", 7100, 8.0
# Tolerances, with margin over what this clip measured (auto-labels / online output):
# vehicle AP 0.54 / 0.29, position error 0.55 / 0.83 m, velocity error 0.05 / 1.20 m/s,
# parked accuracy 1.0 / 0.35, road (drivable) IoU 0.88 / 0.86.
MIN_VEHICLE_AP = 0.4
MAX_POSITION_ERR_M = 0.8
MAX_VELOCITY_ERR = 0.3
MIN_PARKED_ACCURACY = 0.9
MIN_ROAD_IOU = 0.8


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    torch.set_num_threads(1)
    bag = record(SCENARIO, SEED, DURATION, tmp_path_factory.mktemp("al") / "clip.mcap",
                 camera_rate=10.0, width=128, height=96)
    engine = InferenceEngine.from_checkpoint(share_dir() / "models" / "perception_tiny.pt", "cpu")
    labels = autolabel_clip(bag, engine, AutolabelConfig(keep_online_rasters=True))
    protocol = EvaluationProtocol.from_model_config(engine.config)
    return bag, labels, evaluate_clip(bag, labels, protocol)


@pytest.mark.timeout(120)
def test_labels_match_ground_truth_within_tolerances(clip):
    _, labels, q = clip
    auto, online = q["autolabel"], q["online"]
    assert q["frames"] == len(labels.frames) >= 75
    assert auto["vehicle_ap"] >= MIN_VEHICLE_AP, q
    assert auto["position_err_m"] <= MAX_POSITION_ERR_M, q
    assert auto["velocity_err"] <= MAX_VELOCITY_ERR, q
    assert auto["parked_accuracy"] >= MIN_PARKED_ACCURACY, q
    assert auto["road_iou"] >= MIN_ROAD_IOU, q
    # hindsight must pay: better than the car's own output on the same frames
    assert auto["vehicle_ap"] > online["vehicle_ap"] and auto["velocity_err"] < online["velocity_err"], q
    assert auto["road_iou"] > online["road_iou"], q
    parked = [tr for tr in labels.tracks if tr.static]
    assert parked and all(s.speed == 0.0 for tr in parked for s in tr.states)


@pytest.mark.timeout(120)
def test_outputs_load_in_the_project_readers(clip, tmp_path):
    _, labels, _ = clip
    bag = write_mcap(labels, tmp_path / "labels")
    data = BagData(bag)
    assert data.counts["/autolabel/objects"] == len(labels.frames)
    assert data.counts["/autolabel/markers"] == len(labels.frames)
    assert data.counts["/autolabel/road"] >= 7 and data.counts["/autolabel/bev/drivable"] >= 7
    road = data.get("/autolabel/road")[-1][1]
    assert road.header.frame_id == "odom" and len(road.drivable_area.points) >= 3
    n_objs = sum(len(m.objects) for _, m in data.get("/autolabel/objects"))
    assert n_objs == sum(len(o) for o in labels.objects) > 0
    files = write_dataset(labels, tmp_path / "dataset", frames=32)
    assert len(files) == len(labels.frames) // 32
    manifest = json.loads((tmp_path / "dataset" / "manifest.json").read_text())
    assert manifest["labels"] == "autolabel"
    ds = SimDataset(tmp_path / "dataset", checkpoint_config(share_dir() / "models" / "perception_tiny.pt"))
    seq = ds.sequence(0)
    assert seq.images.shape[:2] == (32, 8) and seq.seg.shape[0] == 32
    assert seq.seg[:, 0].mean() > 0.1                              # drivable from the fused road
    assert sum(v.sum() for v in seq.visible) > 0                   # labeled objects as targets


@pytest.mark.timeout(60)
def test_command_rejects_a_clip_without_cameras(tmp_path, capsys):
    bag = record(SCENARIO, SEED, 1.0, tmp_path / "blind.mcap", images=False)
    assert autolabel_main([str(bag), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "camera_info" in err and str(bag) in err
    assert autolabel_main([str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2

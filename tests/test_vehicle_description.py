"""One vehicle description (issue 16): VehicleParams, read from config/vehicle.yaml, is
what the planner, optimiser, search, controller, simulator and the vehicle description
node take; derived limits (max curvature, body about the rear axle) are computed from
it, never set twice."""
import math
import re
from pathlib import Path

import pytest
import yaml

from autonomy_control.controller import ControllerConfig, TrackingController
from autonomy_planning.planner import Planner, PlannerConfig
from autonomy_vehicle.vehicle_model import VehicleParams, read_vehicle_config

ROOT = Path(__file__).resolve().parent.parent


def write_vehicle(tmp_path, **changes):
    doc = yaml.safe_load((ROOT / "config" / "vehicle.yaml").read_text())
    doc["/**"]["ros__parameters"].update(changes)
    path = tmp_path / "vehicle.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_defaults_are_the_vehicle_config_and_limits_are_derived():
    v = VehicleParams()
    assert v == VehicleParams.from_config()
    raw = yaml.safe_load((ROOT / "config" / "vehicle.yaml").read_text())["/**"]["ros__parameters"]
    assert (v.length, v.width, v.wheelbase, v.max_steer) == (
        raw["body_length"], raw["body_width"], raw["wheelbase"], raw["max_steer"])
    assert v.max_curvature == pytest.approx(math.tan(v.max_steer) / v.wheelbase)
    assert v.body == pytest.approx((v.length - v.rear_overhang, v.rear_overhang, v.width / 2))


def test_a_different_vehicle_reaches_planner_optimiser_search_and_controller(tmp_path):
    """A longer, wider van with a longer wheelbase (an asymmetric change: front and rear
    extents differ)."""
    van = VehicleParams.from_config(write_vehicle(tmp_path, body_length=6.0, body_width=2.2,
                                                  rear_overhang=1.2, wheelbase=3.8))
    assert van.body == pytest.approx((4.8, 1.2, 1.1))
    planner = Planner(PlannerConfig(vehicle=van))
    assert planner.body == pytest.approx(van.body)
    sc = planner.cfg.search
    assert (sc.front, sc.rear, sc.half_width) == pytest.approx(van.body)
    assert sc.max_curvature <= van.max_curvature
    oc = planner.cfg.optimizer
    assert planner.optimizer.max_curvature == pytest.approx(oc.curvature_margin * van.max_curvature)
    # the default planner is unchanged by it
    assert Planner().body == pytest.approx(VehicleParams().body)
    ctl = TrackingController(ControllerConfig(vehicle=van))
    assert ctl.lateral.vp.wheelbase == 3.8


def test_bad_vehicle_config_names_the_key(tmp_path):
    with pytest.raises(ValueError, match="wheelbase"):
        read_vehicle_config(write_vehicle(tmp_path, wheelbase="long"))


def test_vehicle_description_node_declares_the_vehicle_description():
    from autonomy_vehicle.nodes.vehicle_description_node import PARAMS, vehicle_from_params
    p = {spec.name: spec.default for spec in PARAMS}
    assert vehicle_from_params(p) == VehicleParams()


def test_no_hand_set_vehicle_numbers_in_the_modules_that_take_it():
    """The modules that once set the vehicle's size or steering limit themselves."""
    pat = re.compile(r"^\s*(wheelbase|front|rear|half_width|max_steer)\s*:\s*float\s*=\s*[\d.]+",
                     re.M)
    for rel in ("autonomy_planning/planner.py", "autonomy_planning/trajectory_optimizer.py",
                "autonomy_planning/maneuver_search.py", "autonomy_control/controller.py",
                "autonomy_vehicle/nodes/vehicle_description_node.py"):
        src = (ROOT / rel).read_text()
        assert not pat.search(src), (rel, pat.search(src).group(0))
    assert "max_curvature: float = 0.18" not in \
        (ROOT / "autonomy_planning/trajectory_optimizer.py").read_text()

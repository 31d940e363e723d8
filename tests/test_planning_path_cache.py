"""Planning memory (issue 15): the planner's reference-path cache stays bounded while the
lane geometry from perception changes every cycle, and a lane whose centreline changes
under the same id gets a fresh path (never the stale one)."""
import numpy as np
import pytest

from autonomy_stack.vector_space import EgoState

from autonomy_planning.path import PathCache
from autonomy_planning.planner import Planner, PlannerConfig
from autonomy_planning.scene import Lane, PlanningScene, build_road_frame, lane_path

XS = np.linspace(-60.0, 400.0, 231)


def wobbly_road(k: int, width: float = 3.5):
    """Two-way road whose centrelines move by a few millimetres to centimetres with `k`
    (as lane geometry from perception does), same lane ids every time."""
    rng = np.random.default_rng(k)
    wob = 0.05 * np.sin(XS / 17.0 + k) + rng.normal(0.0, 0.004, len(XS))
    lanes = [Lane(1, np.column_stack([XS, wob]), width, 13.9),
             Lane(2, np.column_stack([XS[::-1], width + wob[::-1]]), width, 13.9)]
    bounds = [np.column_stack([XS, np.full_like(XS, -width / 2)]),
              np.column_stack([XS, np.full_like(XS, 1.5 * width)])]
    return lanes, bounds


def test_path_cache_is_lru():
    c = PathCache(2)
    c["a"], c["b"] = 1, 2
    assert c["a"] == 1            # a is now the most recent
    c["c"] = 3                    # evicts b
    assert "b" not in c and "a" in c and "c" in c and len(c) == 2
    assert c.get("b") is None
    with pytest.raises(ValueError):
        PathCache(0)


def test_cache_stays_bounded_over_1000_lane_geometries():
    size = 64
    planner = Planner(PlannerConfig(path_cache_size=size))
    sizes = []
    for k in range(1000):
        lanes, bounds = wobbly_road(k)
        scene = PlanningScene(0.1 * k, EgoState(0.0, 0.0, 0.0, 8.0, stamp=0.1 * k), [], lanes,
                              bounds)
        build_road_frame(scene, planner._paths)
        sizes.append(len(planner._paths))
    assert max(sizes) <= size
    # without the bound every geometry would have added entries: the cache is full
    assert sizes[-1] == size


def test_changed_geometry_under_the_same_id_gets_a_new_path():
    cache = PathCache(16)
    lanes, _ = wobbly_road(0)
    moved = Lane(1, lanes[0].centerline + [0.0, 0.5], 3.5, 13.9)
    p0 = lane_path(lanes[0], cache)
    assert lane_path(lanes[0], cache) is p0
    p1 = lane_path(moved, cache)
    assert p1 is not p0
    _, d = p1.project(np.array([[100.0, 0.5]]))
    assert abs(d[0]) < 0.1


def test_planner_cycles_with_changing_lanes_stay_bounded():
    """The full cycle (futures' caches included) over changing geometry."""
    planner = Planner(PlannerConfig(path_cache_size=32))
    for k in range(30):
        lanes, bounds = wobbly_road(k)
        scene = PlanningScene(0.1 * k, EgoState(0.8 * k, 0.0, 0.0, 8.0, stamp=0.1 * k), [],
                              lanes, bounds)
        planner.plan(scene)
    assert len(planner._paths) <= 32
    assert len(planner.predictor._paths) <= 8

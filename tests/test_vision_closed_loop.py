"""The in-process closed loop with perception in the loop (autonomy_tools.vision_closed_loop):
a short vision episode runs the whole chain (render 8 cameras -> rectify -> network ->
post-processing -> lanes from road lines -> planner -> supervisor -> controller -> simulator)
and the ego drives forward along the route without leaving the road. The camera images are
rendered at the network's input size (128x96), the smallest the network accepts."""
import numpy as np
import pytest

from autonomy_stack.geometry import arc_length, project_to_polyline

from autonomy_tools.closed_loop_metrics import episode_metrics
from autonomy_tools.vision_closed_loop import run_episode

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_short_vision_episode_drives_forward_on_the_road():
    trace, extra = run_episode("random", seed=0, mode="vision", duration=4.0)
    assert extra["mode"] == "vision" and extra["end_reason"] == "time_budget"
    n = len(trace.t)
    assert n >= 39 and len(trace.objects) == n and len(trace.x) == n
    # every cycle went through perception and the planner
    cycles = extra["cycles"]
    assert len(cycles) == n and all("maneuver" in c and "lanes" in c for c in cycles)
    assert len(trace.perception_latency_s) == n and len(trace.planner_latency_s) == n
    assert sum(c["lanes"] > 0 for c in cycles) >= n // 2      # lanes came from road lines
    # forward along the scenario's route, near it, on the road, nothing hit
    route = trace.route
    s, d = project_to_polyline(route, arc_length(route), np.column_stack([trace.x, trace.y]))
    assert s[-1] - s[0] > 8.0, f"progress along the route only {s[-1] - s[0]:.1f} m"
    assert np.all(np.diff(s) > -0.05)
    m = episode_metrics(trace)
    assert m["collisions"] == 0 and m["off_road_s"] == 0.0
    # perception's lanes are not the map's (edges seen ~1 m inside the true ones here), so
    # the car may sit off the route's centreline, but within the supervisor's 2.5 m
    assert m["max_route_deviation_m"] < 2.5
    assert m["supervisor_stops"] == 0 and m["silent_failure"] == 0
    assert 0.0 < m["perception_latency_p50_s"] < 2.0


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode"):
        run_episode("random", seed=0, mode="lidar", duration=0.1)

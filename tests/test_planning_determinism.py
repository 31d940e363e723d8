"""Deterministic planning (issue 16): the optimiser's QPs are bounded in iterations, the
wall-clock limit is only a safety net, so a seeded closed-loop run plans the same on an
idle and on a loaded machine. `parking_lot` is the catalogue run whose path QPs run into
the iteration limit (with the former 30 ms wall-clock limit, a CPU burner on this 2-core
machine cut 4 of them short: the runs differed by 6 mm)."""
import os
import subprocess
import sys

import numpy as np

from autonomy_planning.planner import Planner
from autonomy_planning.trajectory_optimizer import OptimizerConfig
from autonomy_simulator import scenarios
from autonomy_tools.planning_closed_loop import run_scenario

DURATION = 15.0


def seeded_run():
    sc = scenarios.make("parking_lot", seed=0)
    return run_scenario(sc, DURATION, planner=Planner(), check_corridor=False,
                        record_plans_every=1)


def test_same_plans_with_and_without_cpu_load():
    idle = seeded_run()
    # a busy loop on every core (one alone left the former 30 ms limit unhit here)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
               for _ in range(os.cpu_count() or 1)]
    try:
        loaded = seeded_run()
    finally:
        for b in burners:
            b.kill()
            b.wait()
    solves_idle = [s[:3] for t in idle.timings for s in t["solves"]]
    solves_loaded = [s[:3] for t in loaded.timings for s in t["solves"]]
    # the runs exercise the iteration bound, and no solve is cut by the wall clock
    assert any("maximum iterations" in s[1] for s in solves_idle)
    assert not any("time limit" in s[1] for s in solves_idle + solves_loaded)
    # ... with room to spare: the wall-clock limit is a safety net, far from the longest
    # solve under load (the former 30 ms was below twice the ~20 ms of an idle run's)
    longest_s = max(s[3] for t in loaded.timings for s in t["solves"]) / 1e3
    assert OptimizerConfig().time_limit > 2.0 * longest_s, longest_s
    assert solves_idle == solves_loaded
    assert len(idle.x) == len(loaded.x)
    assert np.max(np.hypot(idle.x - loaded.x, idle.y - loaded.y)) <= 0.01
    for (t0, tt0, v0), (t1, tt1, v1) in zip(idle.plans, loaded.plans):
        assert t0 == t1 and np.max(np.abs(v0 - v1)) <= 0.01

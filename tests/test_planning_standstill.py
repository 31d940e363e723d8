"""The planner restarts from a standstill (issue 15): the stack started late, the ego has
braked to a stop without commands in narrow_street_oncoming (6 s, the simulator's own
no-command braking, straight ahead next to the cones); once the planner runs, the ego
waits for the oncoming car and, the way clear, moves off and makes progress within a
bounded time -- before, it crept up nose to tail behind a parked car and stayed at
`nudge_left/stop` for ever (199 stops in a row)."""
import numpy as np
import pytest

from autonomy_tools.planning_closed_loop import run_scenario
from autonomy_planning.planner import Planner, PlannerConfig

scenarios = pytest.importorskip("autonomy_simulator.scenarios")

HOLD_S = 6.0            # stack started this late after the simulator
RESTART_WITHIN = 20.0   # s from the way being clear to 20 m of progress


@pytest.mark.timeout(120)
def test_moves_off_after_a_6s_standstill_once_the_way_is_clear():
    sc = scenarios.make("narrow_street_oncoming", seed=0, oncoming="yield", autopilot=False)
    sim = sc.sim
    for _ in range(int(round(HOLD_S / sim.dt))):
        sim.step()                        # no commands: the simulator brakes the ego
    assert abs(sim.ego.speed) < 1e-3
    agent = sim.agents[0]
    cfg = PlannerConfig()
    cfg.optimizer.time_limit = 1e10       # deterministic: iteration-bounded
    x_start = sim.ego.x

    def done(sim_, res):
        return sim_.ego.x > x_start + 40.0

    res = run_scenario(sc, 50.0, planner=Planner(cfg), stop_when=done, check_corridor=False,
                       agent_ids=(agent.id,))
    assert not res.collisions, res.collisions[:3]
    A = res.agents[agent.id]
    # the way is clear once the oncoming car has passed the ego
    passed = np.nonzero(A["x"] < np.interp(A["t"], res.t, res.x) - 5.0)[0]
    assert len(passed), "the oncoming car never passed"
    t_clear = float(A["t"][passed[0]])
    moved = np.nonzero(res.x > x_start + 20.0)[0]
    assert len(moved), (f"stuck at x = {res.x[-1]:.1f} (start {x_start:.1f}); last plans "
                        f"{[l for _, l in res.maneuvers[-3:]]}")
    t_moved = float(res.t[moved[0]])
    assert t_moved - t_clear <= RESTART_WITHIN, (t_clear, t_moved)
    # and no endless stop: the longest run of stop plans after the way is clear
    stops = [l.endswith("/stop") for t, l in res.maneuvers if t >= t_clear]
    run = longest = 0
    for s in stops:
        run = run + 1 if s else 0
        longest = max(longest, run)
    assert longest < 150, longest

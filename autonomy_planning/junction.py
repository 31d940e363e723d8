"""Junction and merge behaviour on top of the joint futures (no ROS): who the ego must
yield to, when it may go, and when it may break a mutual wait.

The maneuver search already scores every ego candidate against every hypothesis of every
agent (yield / proceed / ...), weighted by its probability. Three things it could not
tell on its own (issue 16):

1. **Followers** -- an agent behind the ego in the ego's lane, same direction, is
   responsible for its own gap (it follows us, it never drives through us). Its
   constant-speed hypotheses would otherwise "hit" every candidate that slows down, so
   the ego sped away or braked in panic for a car behind it; and the corridor was cut
   by it (infeasible QP -> emergency braking). `drop_followers` removes them (a lane
   change, whose target lane does not overlap the follower now, still sees agents there).
2. **Gap acceptance without panic** -- the search accepts a gap when no likely
   hypothesis of the crossing / merging agent (its yield *and* its proceed futures,
   each with its probability) overlaps the candidate in time, and yields otherwise; an
   emergency-braking profile is only forced when `imminent_conflict` holds: braking
   comfortably in the lane still meets a likely occupancy within `imminent_ttc_s`.
   Stop-line walls carry no soft clearance (they held the ego ~5 m short of the line,
   where the line never counted as served).
3. **Deadlock breaking** -- when the ego has waited `deadlock_wait_s` and every agent
   that holds it up is itself standing and its most probable future is to keep standing
   (yield / stop), the ego proceeds at `deadlock_creep_speed`: those agents' moving
   hypotheses are discounted by `deadlock_discount` for the search (the corridor is still
   built from all likely occupancies, and once such an agent moves its futures' weights
   follow within a few cycles and the ego yields again).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from autonomy_stack.params import param

from autonomy_planning.maneuver_search import Occupancy


@dataclass
class JunctionConfig:
    # param(...): also a planning node parameter (planning_node.PARAMS)
    follower_lat_margin: float = param(0.3, "m: an agent behind overlapping the ego's body "
                                       "width plus this is a follower (ignored)",
                                       min=0.0, max=2.0)
    imminent_ttc_s: float = param(2.5, "s: a conflict sooner than this (at comfortable "
                                  "braking) is imminent: only then an emergency plan",
                                  min=0.5, max=8.0)
    deadlock_wait_s: float = param(6.0, "s of mutual waiting before the ego breaks a "
                                   "deadlock", min=1.0, max=60.0)
    deadlock_creep_speed: float = param(2.5, "m/s: speed cap while breaking a deadlock",
                                        min=0.5, max=8.0)
    deadlock_discount: float = param(0.1, "x probability of a waiting agent's moving "
                                     "hypotheses while breaking a deadlock",
                                     min=0.0, max=1.0)
    standing_speed: float = 0.3       # m/s: slower than this is standing


@dataclass
class JunctionDecision:
    """What the junction logic saw this cycle (diagnostics and tests)."""
    followers: List[int] = field(default_factory=list)       # agent ids ignored
    blockers: List[int] = field(default_factory=list)        # agents holding the ego up
    deadlock: bool = False                                   # breaking a mutual wait
    min_ttc: float = float("inf")                            # s to the first conflict


def _keep(occ: Occupancy, m: np.ndarray) -> Occupancy:
    return Occupancy(s=occ.s[m], d=occ.d[m], hs=occ.hs[m], hd=occ.hd[m], p=occ.p[m],
                     agent=occ.agent[m], static=occ.static[m],
                     vs=None if occ.vs is None else occ.vs[m])


def drop_followers(occ: Occupancy, ego_s: float, ego_d: float, body: tuple,
                   cfg: JunctionConfig) -> tuple:
    """(occupancy without the followers, their agent ids): moving agents entirely behind
    the ego's rear now, overlapping its body laterally, moving the ego's way."""
    if not len(occ):
        return occ, []
    front, rear, hw = body
    behind = occ.s[:, 0] + occ.hs[:, 0] < ego_s - rear
    overlap = np.abs(occ.d[:, 0] - ego_d) < hw + occ.hd[:, 0] + cfg.follower_lat_margin
    same_way = occ.vs[:, 0] > 0.5 if occ.vs is not None else np.zeros(len(occ), bool)
    fol = behind & overlap & same_way & ~occ.static & (occ.agent >= 0)
    if not np.any(fol):
        return occ, []
    return _keep(occ, ~fol), sorted({int(a) for a in occ.agent[fol]})


def time_to_conflict(occ: Occupancy, t: np.ndarray, ego_s: np.ndarray, ego_d: np.ndarray,
                     body: tuple, min_probability: float = 0.1,
                     lat_margin: float = 0.25, lon_margin: float = 0.5) -> float:
    """First time (s) the ego body along (ego_s, ego_d) overlaps any likely occupancy
    (inf if never)."""
    if not len(occ):
        return float("inf")
    front, rear, hw = body
    m = occ.p >= min_probability
    if not np.any(m):
        return float("inf")
    glat = np.abs(occ.d[m] - ego_d[None]) - (hw + occ.hd[m])
    glon = np.maximum((occ.s[m] - occ.hs[m]) - (ego_s[None] + front),
                      (ego_s[None] - rear) - (occ.s[m] + occ.hs[m]))
    hit = (glat < lat_margin) & (glon < lon_margin)
    cols = np.where(hit.any(axis=0))[0]
    return float(t[cols[0]]) if len(cols) else float("inf")


def comfortable_stop(t: np.ndarray, v0: float, decel: float) -> np.ndarray:
    """Relative stations of braking from v0 at `decel` to a stop, on the grid `t`."""
    ts = v0 / max(decel, 1e-3)
    tt = np.minimum(t, ts)
    return v0 * tt - 0.5 * decel * tt ** 2


def imminent_conflict(occ: Occupancy, t: np.ndarray, ego_s: float, ego_d: float, v0: float,
                      body: tuple, comfort_decel: float, cfg: JunctionConfig) -> tuple:
    """(imminent, ttc): does braking comfortably in the current lane still meet a likely
    occupancy within `imminent_ttc_s`? Only then is a harder plan an emergency."""
    s = ego_s + comfortable_stop(t, v0, comfort_decel)
    ttc = time_to_conflict(occ, t, s, np.full(len(t), ego_d), body)
    return ttc < cfg.imminent_ttc_s, ttc


def deadlock_agents(occ: Occupancy, agents: Dict[int, object], futures_top: Dict[int, float],
                    t: np.ndarray, ego_s: float, ego_d: float, v_go: float, body: tuple,
                    cfg: JunctionConfig) -> Optional[List[int]]:
    """The agents that hold up a go-candidate (constant `v_go` in the current lane) if
    all of them are standing and most probably keep standing (`futures_top`: per agent
    the end speed of its most probable hypothesis); None if some blocker moves or would
    move (then the wait is not mutual) or nothing blocks."""
    if not len(occ):
        return None
    s = ego_s + v_go * t
    front, rear, hw = body
    blockers = set()
    for k in range(len(occ)):
        if occ.static[k] or occ.agent[k] < 0 or occ.p[k] < 0.05:
            continue
        glat = np.abs(occ.d[k] - ego_d) - (hw + occ.hd[k])
        glon = np.maximum((occ.s[k] - occ.hs[k]) - (s + front), (s - rear) - (occ.s[k] + occ.hs[k]))
        if np.any((glat < 0.25) & (glon < 0.5)):
            blockers.add(int(occ.agent[k]))
    if not blockers:
        return None
    for a in blockers:
        ag = agents.get(a)
        if ag is None or abs(ag.speed) > cfg.standing_speed or \
                futures_top.get(a, 0.0) > cfg.standing_speed:
            return None
    return sorted(blockers)


def discount_agents(occ: Occupancy, ids: List[int], factor: float) -> Occupancy:
    """Occupancy with the moving hypotheses of agents `ids` scaled by `factor` (their
    standing hypotheses, whose speed stays ~0, keep their weight)."""
    if not ids or not len(occ):
        return occ
    sel = np.isin(occ.agent, ids)
    moving = np.abs(occ.vs).max(axis=1) > 0.5 if occ.vs is not None else np.ones(len(occ), bool)
    p = np.where(sel & moving, occ.p * factor, occ.p)
    return Occupancy(s=occ.s, d=occ.d, hs=occ.hs, hd=occ.hd, p=p, agent=occ.agent,
                     static=occ.static, vs=occ.vs)

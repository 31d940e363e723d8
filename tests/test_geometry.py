"""autonomy_stack.geometry: hand-computed cases with asymmetric fixtures, and a guard that no
second copy of box corners, angle wrapping or box overlap grows back in the tree."""
import ast
import math
import re
from pathlib import Path

import numpy as np
import pytest

from autonomy_stack import geometry as G
from autonomy_stack.vector_space import ObjectClass, ObjectState

ROOT = Path(__file__).resolve().parent.parent
SQ3 = math.sqrt(3.0)


# ----------------------------------------------------------------------------- angles
def test_wrap_angle_range_is_minus_pi_inclusive_to_pi_exclusive():
    assert G.wrap_angle(math.pi) == -math.pi
    assert G.wrap_angle(-math.pi) == -math.pi
    assert G.wrap_angle(3 * math.pi) == pytest.approx(-math.pi)
    assert G.wrap_angle(math.pi - 1e-9) == pytest.approx(math.pi - 1e-9, abs=1e-12)
    assert G.wrap_angle(-math.pi + 1e-9) == pytest.approx(-math.pi + 1e-9, abs=1e-12)
    assert G.wrap_angle(2 * math.pi + 0.5) == pytest.approx(0.5)
    assert G.wrap_angle(-0.5 - 4 * math.pi) == pytest.approx(-0.5)
    assert G.wrap_angle(0.25) == 0.25
    a = np.random.default_rng(0).uniform(-50.0, 50.0, 1000)
    w = G.wrap_angle(a)
    assert np.all(w >= -math.pi) and np.all(w < math.pi)
    assert np.allclose(np.cos(w), np.cos(a)) and np.allclose(np.sin(w), np.sin(a))


def test_wrap_angle_scalar_and_array_types():
    assert isinstance(G.wrap_angle(4.0), float)
    assert isinstance(G.wrap_angle(np.float64(4.0)), np.float64)
    out = G.wrap_angle([math.pi, -3 * math.pi / 2, 0.1])
    assert isinstance(out, np.ndarray) and out.shape == (3,)
    assert np.allclose(out, [-math.pi, math.pi / 2, 0.1])
    assert G.wrap_angle(np.zeros((2, 3), np.float32) + 7.0).dtype == np.float32
    # the scalar path gives the same numbers as the array path
    a = np.random.default_rng(1).uniform(-20.0, 20.0, 200)
    assert np.array_equal(G.wrap_angle(a), [G.wrap_angle(float(v)) for v in a])


# ----------------------------------------------------------------------------- frames
def test_to_and_from_frame_with_a_yawed_ego():
    ego = (100.0, 50.0, math.pi / 2)            # facing +y (north)
    world = np.array([[100.0, 60.0, 1.5], [99.0, 50.0, -2.0]])
    local = G.to_frame(world, *ego)
    assert np.allclose(local, [[10.0, 0.0, 1.5], [0.0, 1.0, -2.0]])   # ahead; left
    assert np.allclose(G.from_frame(local, *ego), world)
    assert np.allclose(G.rotation(math.pi / 6) @ [1.0, 0.0], [SQ3 / 2, 0.5])
    assert np.allclose(G.rotation(0.3) @ G.rotation(-0.3), np.eye(2))


# ----------------------------------------------------------------------------- boxes
# A 4 x 2 m box yawed 30 degrees at (10, 5) (front-left of the origin). Its corners by hand:
# centre + R(30) @ (+-2, +-1), cos 30 = sqrt(3)/2, sin 30 = 1/2.
BOX = (10.0, 5.0, math.radians(30.0), 4.0, 2.0)
BOX_CORNERS = [
    (10 + SQ3 - 0.5, 5 + 1 + SQ3 / 2),     # front-left  (+2, +1)
    (10 + SQ3 + 0.5, 5 + 1 - SQ3 / 2),     # front-right (+2, -1)
    (10 - SQ3 + 0.5, 5 - 1 - SQ3 / 2),     # rear-right  (-2, -1)
    (10 - SQ3 - 0.5, 5 - 1 + SQ3 / 2),     # rear-left   (-2, +1)
]


def test_box_corners_by_hand():
    c = G.box_corners(*BOX)
    assert c.shape == (4, 2)
    assert np.allclose(c, BOX_CORNERS, atol=1e-12)
    # clockwise seen from above: negative signed area
    x, y = c[:, 0], c[:, 1]
    assert 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) == pytest.approx(-8.0)
    # a reference point 1.5 m behind the centre (a rear axle): the box moves along the heading
    back = G.box_corners(10.0 - 1.5 * SQ3 / 2, 5.0 - 0.75, BOX[2], 4.0, 2.0, center_offset=1.5)
    assert np.allclose(back, BOX_CORNERS, atol=1e-12)


def test_callers_delegate_to_box_corners():
    from autonomy_planning.parking.lot import CCW_CORNERS, Box, car_corners
    from autonomy_vehicle.vehicle_model import VehicleParams
    o = ObjectState(1, ObjectClass.CAR, *BOX, height=1.5)
    assert np.array_equal(o.corners(), G.box_corners(*BOX))
    # the parking lot keeps its counter-clockwise order (front-left, rear-left, rear-right,
    # front-right)
    assert np.allclose(Box(*BOX).corners(), np.array(BOX_CORNERS)[CCW_CORNERS], atol=1e-12)
    vp = VehicleParams()
    assert np.array_equal(car_corners((1.0, 2.0, 0.4), vp),
                          G.box_corners(1.0, 2.0, 0.4, vp.length, vp.width,
                                        vp.center_offset)[CCW_CORNERS])


def _bounding_boxes_intersect(a, b):
    return bool(np.all(a.min(0) <= b.max(0)) and np.all(b.min(0) <= a.max(0)))


def test_boxes_overlap_cases():
    a = G.box_corners(*BOX)
    assert G.boxes_overlap(a, a)
    assert G.boxes_overlap(a, a[::-1])                        # either vertex order
    assert not G.boxes_overlap(a, G.box_corners(20.0, 5.0, 0.0, 4.0, 2.0))
    # a small box inside the big one
    assert G.boxes_overlap(a, G.box_corners(10.2, 5.1, 1.0, 0.5, 0.5))
    # touching edges count as overlapping
    assert G.boxes_overlap(G.box_corners(0.0, 0.0, 0.0, 2.0, 2.0),
                           G.box_corners(2.0, 0.0, 0.0, 2.0, 2.0))
    # two diamonds (2 x 2 boxes yawed 45 deg) on the diagonal: |x| + |y| <= sqrt(2) and the
    # same around (1.5, 1.5) are 0.12 m apart along (1, 1) -- their axis-aligned bounding
    # boxes overlap, the separating-axis test must not be fooled
    d0 = G.box_corners(0.0, 0.0, math.pi / 4, 2.0, 2.0)
    d1 = G.box_corners(1.5, 1.5, math.pi / 4, 2.0, 2.0)
    assert _bounding_boxes_intersect(d0, d1) and not G.boxes_overlap(d0, d1)
    assert G.boxes_overlap(d0, G.box_corners(1.3, 1.3, math.pi / 4, 2.0, 2.0))
    # a 0.1 m thin bar along the 30 deg box's right side, 0.05 m away from it (its centre
    # 1.1 m from the box centre along the right normal (sin 30, -cos 30)); 0.05 m into it
    right = np.array([0.5, -SQ3 / 2])
    near = np.array(BOX[:2]) + 1.1 * right
    bar = G.box_corners(near[0], near[1], BOX[2], 6.0, 0.1)
    assert _bounding_boxes_intersect(a, bar) and not G.boxes_overlap(a, bar)
    hit = np.array(BOX[:2]) + 1.0 * right
    assert G.boxes_overlap(a, G.box_corners(hit[0], hit[1], BOX[2], 6.0, 0.1))


# ----------------------------------------------------------------------------- polylines
L_SHAPE = np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 3.0]])     # 4 m east, then 3 m north


def test_arc_length_and_total_length_of_an_l():
    assert np.allclose(G.arc_length(L_SHAPE), [0.0, 4.0, 7.0])
    assert G.polyline_length(L_SHAPE) == pytest.approx(7.0)
    assert G.polyline_length(L_SHAPE[:1]) == 0.0 and len(G.arc_length(L_SHAPE[:1])) == 1
    xyz = np.column_stack([L_SHAPE, [5.0, 6.0, 7.0]])            # extra columns ignored
    assert np.allclose(G.arc_length(xyz), [0.0, 4.0, 7.0])


def test_projection_on_an_l():
    s_cum = G.arc_length(L_SHAPE)
    q = np.array([[2.0, 1.0],      # above the first leg: left of it
                  [5.0, 2.0],      # east of the second leg: right of it (it runs north)
                  [-1.0, 0.5],     # before the start: extrapolated along the first leg
                  [4.0, 5.0]])     # beyond the end: extrapolated along the last leg
    s, d = G.project_to_polyline(L_SHAPE, s_cum, q)
    assert np.allclose(s, [2.0, 6.0, -1.0, 9.0])
    assert np.allclose(d, [1.0, -1.0, 0.5, 0.0])


def test_interpolate_resample_headings_offset_on_an_l():
    s_cum = G.arc_length(L_SHAPE)
    x, y, h = G.interpolate_polyline(L_SHAPE, s_cum, 5.5)
    assert (x, y, h) == pytest.approx((4.0, 1.5, math.pi / 2))
    assert G.interpolate_polyline(L_SHAPE, s_cum, -3.0) == pytest.approx((0.0, 0.0, 0.0))
    r = G.resample_polyline(L_SHAPE, 1.0)
    assert len(r) == 8 and np.allclose(r[0], L_SHAPE[0]) and np.allclose(r[-1], L_SHAPE[-1])
    assert np.allclose(np.diff(G.arc_length(r)), 1.0) and np.allclose(r[4], [4.0, 0.0])
    # a repeated vertex: dropped with min_segment, the result is the same
    rep = np.insert(L_SHAPE, 1, L_SHAPE[1] + 1e-9, axis=0)
    assert np.allclose(G.resample_polyline(rep, 1.0, min_segment=1e-6), r)
    assert len(G.remove_duplicate_points(rep)) == 3
    h = G.polyline_headings(L_SHAPE)
    assert np.allclose(h, [0.0, math.atan2(3.0, 4.0), math.pi / 2])
    off = G.offset_polyline(L_SHAPE, 1.0)
    assert np.allclose(off[0], [0.0, 1.0]) and np.allclose(off[-1], [3.0, 3.0])


# ----------------------------------------------------------------------------- guard
# The rule: outside autonomy_stack/geometry.py no function may be named like a box-corner,
# angle-wrap or box-overlap helper unless it is a thin delegate -- at most 3 statements
# (docstring not counted), one of them calling the shared helper of its kind (e.g.
# `ObjectState.corners` -> `box_corners`). Test functions (`test_*`) are not helpers.
# Inline copies of the wrap formula (modulo 2 pi, or atan2 of sin and cos) are refused too.
FAMILIES = {
    "box corners": (re.compile(r"corners$"), "box_corners"),
    "angle wrap": (re.compile(r"(^|_)wrap(_|$)|normali[sz]e_angle|angle_wrap"), "wrap_angle"),
    "box overlap": (re.compile(r"overlap"), "boxes_overlap"),
}
INLINE_WRAP = [re.compile(r"%\s*\(?\s*2(\.0)?\s*\*\s*(math|np|numpy)\.pi"),
               re.compile(r"a(rc)?tan2\(\s*(np\.|math\.|numpy\.)?sin\(")]
SCANNED = ["autonomy_stack", "autonomy_vehicle", "autonomy_perception", "autonomy_planning",
           "autonomy_control", "autonomy_simulator", "autonomy_replay", "autonomy_tools",
           "tests", "bench", "tools", "launch"]
SHARED = ROOT / "autonomy_stack" / "geometry.py"


def _project_files():
    files = [f for d in SCANNED for f in sorted((ROOT / d).rglob("*.py"))]
    return [f for f in files if "__pycache__" not in f.parts]


def _calls(node):
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            f = n.func
            yield f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def _is_thin_delegate(fn, helper: str) -> bool:
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None),
                                                             ast.Constant):
        body = body[1:]
    return len(body) <= 3 and any(helper in _calls(stmt) for stmt in body)


def test_no_second_copy_of_the_geometry_helpers():
    assert len(_project_files()) > 100
    bad = []
    for f in _project_files():
        if f == SHARED:
            continue
        rel = f.relative_to(ROOT)
        tree = ast.parse(f.read_text(), str(f))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or \
                    fn.name.startswith("test_"):
                continue
            for family, (pattern, helper) in FAMILIES.items():
                if pattern.search(fn.name) and not _is_thin_delegate(fn, helper):
                    bad.append(f"{rel}:{fn.lineno} {fn.name}() looks like a {family} helper: "
                               f"call autonomy_stack.geometry.{helper}")
        if f == Path(__file__).resolve():
            continue
        for k, line in enumerate(f.read_text().splitlines(), 1):
            if any(p.search(line) for p in INLINE_WRAP):
                bad.append(f"{rel}:{k} inline angle wrap: use autonomy_stack.geometry.wrap_angle")
    assert not bad, "\n".join(bad)


def test_guard_catches_a_copy():
    src = ("def rect_corners(x, y, yaw, l, w):\n    c = 1\n    s = 2\n    return c + s\n"
           "class O:\n    def corners(self):\n        return box_corners(self.x, 0, 0, 1, 1)\n")
    fns = [n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.FunctionDef)]
    assert [_is_thin_delegate(fn, "box_corners") for fn in fns] == [False, True]
    assert INLINE_WRAP[0].search("(a + math.pi) % (2.0 * math.pi) - math.pi")
    assert INLINE_WRAP[1].search("np.arctan2(np.sin(a), np.cos(a))")
    assert INLINE_WRAP[1].search("math.atan2(math.sin(a), math.cos(a))")


def test_smooth_polyline_removes_wiggles_and_keeps_a_left_curve():
    from autonomy_stack.geometry import smooth_polyline
    rng = np.random.default_rng(0)
    x = np.arange(0.0, 35.0, 1.0)
    # a gentle LEFT curve (R = 60 m, centre at +y) with +-0.4 m of perception noise
    R = 60.0
    th = x / R
    clean = np.column_stack([R * np.sin(th), R - R * np.cos(th)])
    noisy = clean + rng.uniform(-0.4, 0.4, clean.shape) * np.column_stack([np.zeros_like(x), np.ones_like(x)])
    sm = smooth_polyline(noisy)
    assert sm.shape == noisy.shape
    assert np.all(np.diff(sm[:, 0]) > 0)                       # order kept (along +x)
    assert np.max(np.abs(sm[:, 1] - clean[:, 1])) < 0.25       # back near the true curve
    # curvature: positive (left) and near 1/60 in the middle, no 0.2 1/m wiggles
    d1 = np.gradient(sm, axis=0)
    d2 = np.gradient(d1, axis=0)
    k = (d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]) / np.hypot(*d1.T) ** 3
    assert np.all(np.abs(k[3:-3]) < 0.05) and np.median(k) > 0.005
    # a polyline folding back (U-turn) is left as it is
    u = np.column_stack([np.r_[x, x[::-1]], np.r_[np.zeros_like(x), np.full_like(x, 8.0)]])
    assert np.array_equal(smooth_polyline(u), u)


def test_fit_velocity_is_the_slope_through_noisy_positions():
    from autonomy_stack.geometry import fit_velocity
    t = np.arange(10) * 0.1
    xy = np.column_stack([5.0 + 3.0 * t, -2.0 - 1.0 * t]) + np.array([[0.05, -0.05]] * 5 + [[-0.05, 0.05]] * 5)[::-1]
    vx, vy = fit_velocity(t, xy)
    assert abs(vx - 3.0) < 0.3 and abs(vy + 1.0) < 0.3

"""Regression mode (like openpilot's process replay): compare a replay's output bag with a
stored reference bag within tolerances, and explain every difference in one line.

Tolerances (YAML; every key optional, shown with its default):
    count: {abs: 0, rel: 0.0}        # per-topic message count: |n - n_ref| <= abs + rel*n_ref
    default: {abs: 1.0e-6, rel: 0.0} # numeric fields: |a - b| <= abs + rel*|b|
    ignore_topics: [/rosout, /parameter_events, /diagnostics]
    ignore_fields: []                # field-path patterns ignored on every topic
    max_diffs_per_topic: 5           # lines shown per topic
    topics:
      /planning/trajectory:
        count: {abs: 1}
        fields: {"points[*].speed": {abs: 0.05}, "points[*].pose.*": {abs: 0.01}}
        ignore_fields: [maneuver]
      /planning/agent_futures:
        pair: index                  # stamps made from the node's clock: pair by position

Field paths look like `points[3].pose.position.x`; in patterns `[*]` matches any index and
`*` any characters (fnmatch). Messages are paired by header.stamp when the type has a
header (a stamp present on one side only is a difference), else (or with `pair: index`)
by position. Strings must
match exactly; numeric arrays are compared element-wise.

    python -m autonomy_replay.regression OUT_BAG REFERENCE_BAG [--tolerances FILE]
exits 0 when equal within tolerances, 1 with the diff otherwise, 2 on bad input.
"""
from __future__ import annotations

import argparse
import fnmatch
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import yaml

from autonomy_replay.bag import BagError, BagReader, stamp_ns

DEFAULTS = {
    "count": {"abs": 0, "rel": 0.0},
    "default": {"abs": 1e-6, "rel": 0.0},
    "ignore_topics": ["/rosout", "/parameter_events", "/diagnostics"],
    "ignore_fields": [],
    "max_diffs_per_topic": 5,
    "topics": {},
}


class ToleranceError(ValueError):
    pass


def load_tolerances(source=None) -> dict:
    """From a YAML file path, a dict, or None (defaults)."""
    tol = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
           for k, v in DEFAULTS.items()}
    if source is None:
        return tol
    if isinstance(source, dict):
        user = source
    else:
        text = Path(source).read_text()
        try:
            user = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ToleranceError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(user, dict):
        raise ToleranceError(f"{source}: expected a mapping at the top level")
    unknown = set(user) - set(DEFAULTS)
    if unknown:
        raise ToleranceError(f"unknown keys {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    for k in ("count", "default"):
        if k in user:
            _check_tol(user[k], k)
            tol[k].update(user[k])
    for k in ("ignore_topics", "ignore_fields"):
        if k in user:
            if not isinstance(user[k], list):
                raise ToleranceError(f"'{k}' must be a list")
            tol[k] = list(user[k])
    if "max_diffs_per_topic" in user:
        tol["max_diffs_per_topic"] = int(user["max_diffs_per_topic"])
    for topic, spec in (user.get("topics") or {}).items():
        if not isinstance(spec, dict) or set(spec) - {"count", "fields", "ignore_fields", "pair"}:
            raise ToleranceError(f"topics.{topic}: expected keys count/fields/ignore_fields/pair")
        if spec.get("pair", "stamp") not in ("stamp", "index"):
            raise ToleranceError(f"topics.{topic}.pair: 'stamp' or 'index'")
        if "count" in spec:
            _check_tol(spec["count"], f"topics.{topic}.count")
        for f, t in (spec.get("fields") or {}).items():
            _check_tol(t, f"topics.{topic}.fields.{f}")
        tol["topics"][topic] = spec
    return tol


def _check_tol(t, where):
    if not isinstance(t, dict) or set(t) - {"abs", "rel"}:
        raise ToleranceError(f"{where}: expected {{abs: number, rel: number}}, got {t!r}")
    for k, v in t.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise ToleranceError(f"{where}.{k}: expected a number >= 0, got {v!r}")


def _pattern(p: str) -> str:
    return p.replace("[*]", "\x00").replace("[", "[[]").replace("\x00", "[[]#]")


def _norm(path: str) -> str:
    return re.sub(r"\[\d+\]", "[#]", path)


@dataclass
class RegressionResult:
    reference: str
    output: str
    differences: List[str] = field(default_factory=list)
    topics: Dict[str, dict] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.differences

    def text(self) -> str:
        head = (f"REGRESSION PASSED: {len(self.topics)} topics match {self.reference} within "
                "tolerances" if self.passed else
                f"REGRESSION FAILED: {len(self.differences)} difference(s) against "
                f"{self.reference}")
        return "\n".join([head] + [f"  {d}" for d in self.differences])

    def to_dict(self) -> dict:
        return {"passed": self.passed, "reference": self.reference, "output": self.output,
                "differences": list(self.differences), "topics": self.topics}


def flatten(msg, prefix: str = "", out: Optional[dict] = None) -> dict:
    """Decoded rosbags message -> {field path: leaf} (numbers, strings, numpy arrays)."""
    out = {} if out is None else out
    if hasattr(msg, "__dataclass_fields__"):
        for name in msg.__dataclass_fields__:
            if name == "__msgtype__":
                continue
            flatten(getattr(msg, name), f"{prefix}.{name}" if prefix else name, out)
    elif isinstance(msg, (list, tuple)):
        out[f"{prefix}.__len__"] = len(msg)
        for i, v in enumerate(msg):
            flatten(v, f"{prefix}[{i}]", out)
    else:
        out[prefix] = msg
    return out


class _TopicTol:
    def __init__(self, tol: dict, topic: str):
        spec = tol["topics"].get(topic, {})
        self.default = tol["default"]
        self.fields = [(_pattern(p), t) for p, t in (spec.get("fields") or {}).items()]
        self.ignore = [_pattern(p) for p in tol["ignore_fields"] + list(spec.get("ignore_fields") or [])]
        self.count = {**tol["count"], **(spec.get("count") or {})}

    def for_path(self, path: str):
        n = _norm(path)
        if any(fnmatch.fnmatchcase(n, p) for p in self.ignore):
            return None
        for p, t in self.fields:
            if fnmatch.fnmatchcase(n, p):
                return {**self.default, **t}
        return self.default


def _compare_leaf(a, b, tol) -> Optional[str]:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return f"shape {a.shape} vs reference {b.shape}"
        if a.dtype.kind in "fiub" and b.dtype.kind in "fiub":
            if a.size == 0:
                return None
            d = np.abs(a.astype(float) - b.astype(float))
            lim = tol["abs"] + tol["rel"] * np.abs(b.astype(float))
            bad = ~((d <= lim) | (np.isnan(a.astype(float)) & np.isnan(b.astype(float))))
            if np.any(bad):
                i = int(np.argmax(np.where(bad, d, -1)))
                return (f"{int(bad.sum())} of {a.size} elements differ, worst [{i}]: "
                        f"{a.flat[i]!r} vs reference {b.flat[i]!r}")
            return None
        return None if np.array_equal(a, b) else "array differs"
    if isinstance(a, str) or isinstance(b, str):
        return None if a == b else f"{a!r} vs reference {b!r}"
    try:
        fa, fb = float(a), float(b)
    except (TypeError, ValueError):
        return None if a == b else f"{a!r} vs reference {b!r}"
    if math.isnan(fa) and math.isnan(fb):
        return None
    lim = tol["abs"] + tol["rel"] * abs(fb)
    if abs(fa - fb) <= lim:
        return None
    return f"{a!r} vs reference {b!r} (|diff| {abs(fa - fb):.6g} > {lim:.6g})"


def _load(path) -> tuple:
    r = BagReader(path)
    ts = r.typestore()
    msgs: Dict[str, list] = {}
    for topic, t, data in r.messages():
        mt = r.topics[topic].msgtype
        try:
            msgs.setdefault(topic, []).append((t, ts.deserialize_cdr(data, mt)))
        except Exception:
            msgs.setdefault(topic, []).append((t, None))
    types = {n: t.msgtype for n, t in r.topics.items()}
    problems = [str(p) for p in r.problems]
    r.close()
    return msgs, types, problems


def compare_bags(output, reference, tolerances=None) -> RegressionResult:
    tol = tolerances if isinstance(tolerances, dict) and "topics" in tolerances and \
        "default" in tolerances else load_tolerances(tolerances)
    res = RegressionResult(str(reference), str(output))
    try:
        out, out_types, out_probs = _load(output)
        ref, ref_types, ref_probs = _load(reference)
    except (BagError, OSError) as exc:
        res.differences.append(f"cannot read bags: {exc}")
        return res
    for p in out_probs:
        res.differences.append(f"output bag problem: {p}")
    for p in ref_probs:
        res.differences.append(f"reference bag problem: {p}")
    ignore = [_pattern(p) for p in tol["ignore_topics"]]
    topics = sorted(t for t in set(out_types) | set(ref_types)
                    if not any(fnmatch.fnmatchcase(t, p) for p in ignore))
    limit = tol["max_diffs_per_topic"]
    for topic in topics:
        o, r = out.get(topic, []), ref.get(topic, [])
        tt = _TopicTol(tol, topic)
        info = {"count": len(o), "reference_count": len(r), "compared": 0, "differing": 0}
        res.topics[topic] = info
        if topic not in out_types:
            res.differences.append(f"{topic}: missing in the output (reference has {len(r)} "
                                   "messages)")
            continue
        if topic not in ref_types:
            res.differences.append(f"{topic}: not in the reference (output has {len(o)} messages)")
            continue
        if out_types[topic] != ref_types[topic]:
            res.differences.append(f"{topic}: type {out_types[topic]} vs reference "
                                   f"{ref_types[topic]}")
            continue
        lim = tt.count["abs"] + tt.count["rel"] * len(r)
        if abs(len(o) - len(r)) > lim:
            res.differences.append(f"{topic}: {len(o)} messages vs reference {len(r)} "
                                   f"(tolerance ±{lim:g})")
        pairs, lines = _pair(topic, o, r, tol["topics"].get(topic, {}).get("pair", "stamp"))
        shown = 0
        for line in lines:
            if shown < limit:
                res.differences.append(line)
            shown += 1
        for (to, mo), (tr, mr) in pairs:
            info["compared"] += 1
            if mo is None or mr is None:
                continue
            fo, fr = flatten(mo), flatten(mr)
            diffs = []
            for path in sorted(set(fo) | set(fr)):
                t = tt.for_path(path)
                if t is None:
                    continue
                if path not in fo or path not in fr:
                    diffs.append(f"{path} only in the {'output' if path in fo else 'reference'}")
                    continue
                d = _compare_leaf(fo[path], fr[path], t)
                if d:
                    diffs.append(f"{path} = {d}")
            if diffs:
                info["differing"] += 1
                if shown < limit:
                    when = _when(mo, to)
                    res.differences.append(f"{topic} @ {when}: " + "; ".join(diffs[:3]) +
                                           (f"; ... {len(diffs) - 3} more fields"
                                            if len(diffs) > 3 else ""))
                shown += 1
        if shown > limit:
            res.differences.append(f"{topic}: ... {shown - limit} more difference(s) not shown")
    return res


def _when(m, t) -> str:
    h = getattr(m, "header", None)
    return (f"stamp {stamp_ns(h.stamp) * 1e-9:.6f} s" if h is not None
            else f"log time {t * 1e-9:.6f} s")


def _pair(topic, o, r, mode="stamp"):
    """Pair by header stamp when both sides have headers, else by index."""
    has_header = all(m is not None and hasattr(m, "header") for _, m in o + r) and o and r
    if not has_header or mode == "index":
        return list(zip(o, r)), []
    ro = {}
    for e in r:
        ro.setdefault(stamp_ns(e[1].header.stamp), []).append(e)
    pairs, lines, seen = [], [], set()
    for e in o:
        s = stamp_ns(e[1].header.stamp)
        cand = ro.get(s)
        if cand:
            pairs.append((e, cand.pop(0)))
            seen.add(s)
        else:
            lines.append(f"{topic} @ stamp {s * 1e-9:.6f} s: only in the output")
    for s, rest in ro.items():
        for _ in rest:
            lines.append(f"{topic} @ stamp {s * 1e-9:.6f} s: only in the reference")
    return pairs, lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m autonomy_replay.regression",
                                 description="compare an output bag with a reference bag")
    ap.add_argument("output")
    ap.add_argument("reference")
    ap.add_argument("--tolerances", default=None)
    a = ap.parse_args(argv)
    try:
        tol = load_tolerances(a.tolerances)
    except (ToleranceError, OSError) as exc:
        print(f"regression: bad tolerances: {exc}", file=sys.stderr)
        return 2
    for p in (a.output, a.reference):
        if not Path(p).exists():
            print(f"regression: {p} does not exist", file=sys.stderr)
            return 2
    res = compare_bags(a.output, a.reference, tol)
    print(res.text())
    return 0 if res.passed else 1


if __name__ == "__main__":
    sys.exit(main())

"""Every custom message type crosses DDS between two processes and its fields round-trip."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import autonomy_interfaces.msg as m
from ros_helpers import spin_until

HERE = Path(__file__).parent
MSG_DIR = HERE.parent / "interfaces" / "autonomy_interfaces" / "msg"
ALL_TYPES = sorted(p.stem for p in MSG_DIR.glob("*.msg"))


def fill(msg, seed: int):
    """Set every field of `msg` (recursively) to a distinct non-default value."""
    rng = np.random.default_rng(seed)
    for field, ftype in msg.get_fields_and_field_types().items():
        value = getattr(msg, field)
        if ftype in ("float", "double"):
            setattr(msg, field, float(np.float32(rng.uniform(-100, 100))))
        elif ftype.startswith(("uint", "int", "octet")) and "[" not in ftype and "sequence" not in ftype:
            hi = 2 if ftype in ("int8",) else 100
            setattr(msg, field, int(rng.integers(0, hi)) if "uint" in ftype or ftype == "octet"
                    else int(rng.integers(-1, 2)))
        elif ftype == "boolean":
            setattr(msg, field, True)
        elif ftype == "string":
            setattr(msg, field, f"value_{seed}_{field}")
        elif ftype.startswith("double[") or ftype.startswith("float["):
            n = len(value)
            setattr(msg, field, rng.uniform(-5, 5, n).astype(np.float32).astype(float))
        elif ftype.startswith("sequence<"):
            inner = ftype[len("sequence<"):-1]
            elem_cls = _class_of(inner)
            items = []
            for k in range(2):
                e = elem_cls()
                fill(e, seed * 10 + k)
                items.append(e)
            setattr(msg, field, items)
        elif hasattr(value, "get_fields_and_field_types"):
            fill(value, seed + 7)
    return msg


def _class_of(type_str: str):
    import importlib
    pkg, name = type_str.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


def as_plain(msg):
    if hasattr(msg, "get_fields_and_field_types"):
        return {f: as_plain(getattr(msg, f)) for f in msg.get_fields_and_field_types()}
    if isinstance(msg, (list, tuple)):
        return [as_plain(x) for x in msg]
    if isinstance(msg, np.ndarray):
        return msg.tolist()
    if hasattr(msg, "tolist"):
        return msg.tolist()
    return msg


@pytest.mark.timeout(90)
def test_every_custom_type_round_trips_between_processes():
    import rclpy
    assert len(ALL_TYPES) >= 10
    proc = subprocess.Popen([sys.executable, str(HERE / "helpers" / "echo_all_types.py"),
                             ",".join(ALL_TYPES)], start_new_session=True)
    rclpy.init()
    node = rclpy.create_node("roundtrip_test")
    try:
        received = {}
        pubs = {}
        for i, name in enumerate(ALL_TYPES):
            cls = getattr(m, name)
            pubs[name] = node.create_publisher(cls, f"/echo_in/{name}", 10)
            node.create_subscription(cls, f"/echo_out/{name}",
                                     lambda msg, n=name: received.setdefault(n, msg), 10)
        assert spin_until(node, lambda: all(p.get_subscription_count() > 0 for p in pubs.values())
                          and all(node.count_publishers(f"/echo_out/{n}") > 0 for n in ALL_TYPES),
                          timeout=30), "echo process did not match all topics"
        sent = {name: fill(getattr(m, name)(), seed=i + 1) for i, name in enumerate(ALL_TYPES)}

        def pending():
            for name in ALL_TYPES:
                if name not in received:
                    pubs[name].publish(sent[name])
            return len(received) == len(ALL_TYPES)
        assert spin_until(node, pending, timeout=30), \
            f"no echo for {sorted(set(ALL_TYPES) - set(received))}"
        for name in ALL_TYPES:
            assert as_plain(received[name]) == as_plain(sent[name]), name
        # the filled messages are not all-default (the comparison means something)
        assert as_plain(sent["Object"]) != as_plain(m.Object())
    finally:
        node.destroy_node()
        rclpy.shutdown()
        proc.terminate()
        proc.wait(timeout=10)

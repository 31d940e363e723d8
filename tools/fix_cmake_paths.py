"""Rewrite the Python include dirs that the ROS wheels' exported CMake files hard-code
(from the machine that built the wheels) to this interpreter's, so that rosidl's
generated Python extensions compile here. Idempotent."""
from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy

PY_INC = sysconfig.get_paths()["include"]
NP_INC = numpy.get_include()
# e.g. /opt/python/cp311-cp311/include/python3.11 and .../site-packages/numpy/_core/include
PY_RE = re.compile(r"/opt/python/cp3\d+-cp3\d+t?/include/python3\.\d+t?")
NP_RE = re.compile(r"/opt/python/cp3\d+-cp3\d+t?/lib/python3\.\d+/site-packages/numpy/(?:_core|core)/include")


def main(prefix: str) -> int:
    changed = 0
    for path in Path(prefix, "share").rglob("*.cmake"):
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        new = NP_RE.sub(NP_INC, text)
        new = PY_RE.sub(PY_INC, new)
        if new != text:
            path.write_text(new)
            changed += 1
    print(f"fix_cmake_paths: rewrote {changed} file(s) under {prefix}/share")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else sys.prefix))

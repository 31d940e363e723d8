"""Clean up Fast DDS shared-memory files left behind by processes that died without
closing them (kill -9, crashed tests). Fast DDS names its segments /dev/shm/fastdds_* (+
`_el` lock files and `sem.fastdds_*` semaphores); a stale *port* segment of a domain can
stop discovery of later participants in that domain. A segment is stale when no live
process maps it. This is what `fastdds shm clean` does, without the Fast DDS tools (not
installable from PyPI). No rclpy import."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Set

SHM = Path("/dev/shm")
PREFIXES = ("fastdds_", "fastrtps_", "sem.fastdds_", "sem.fastrtps_")


def _mapped_names() -> Set[str]:
    names: Set[str] = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/maps") as f:
                for line in f:
                    i = line.find("/dev/shm/")
                    if i >= 0:
                        names.add(line[i + 9:].strip().replace(" (deleted)", ""))
        except OSError:
            continue
    return names


def _base(name: str) -> str:
    """Segment a file belongs to: fastdds_X for fastdds_X, fastdds_X_el, sem.fastdds_X_mutex."""
    n = name[4:] if name.startswith("sem.") else name
    for suffix in ("_el", "_mutex"):
        if n.endswith(suffix):
            n = n[: -len(suffix)]
    return n


def stale_files(shm: Path = SHM) -> List[Path]:
    if not shm.is_dir():
        return []
    files = [p for p in shm.iterdir() if p.name.startswith(PREFIXES)]
    mapped = {_base(n) for n in _mapped_names()}
    return [p for p in files if _base(p.name) not in mapped]


def clean(shm: Path = SHM) -> int:
    n = 0
    for p in stale_files(shm):
        try:
            p.unlink()
            n += 1
        except OSError:
            pass
    return n


if __name__ == "__main__":
    print(f"removed {clean()} stale Fast DDS shared-memory file(s)")

"""`autonomy-stack replay`: the bag replay harness (`autonomy_replay.command`) with the
standalone graph runner plugged in, so `--nodes MODE` starts the mode's nodes with sim time.

    autonomy-stack replay BAG [--rate R] [--nodes MODE] [--record OUT] [--report DIR] ...
    python -c "from autonomy_tools.replay import main; main([...])"     # the same
"""
import sys
from typing import Optional, Sequence

from autonomy_replay.command import main as replay_main
from autonomy_tools.runner import Runner


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit code of the replay (see `autonomy_replay.command`)."""
    return replay_main(argv, graph_runner=Runner)


if __name__ == "__main__":
    sys.exit(main())

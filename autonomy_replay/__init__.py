"""Bag replay harness: play a rosbag2 into the graph with sim time, record the outputs,
report metrics and rendered frames, and compare to a reference (regression mode).

    autonomy-stack replay BAG [--rate R] [--start S] [--duration D] [--nodes MODE]
                              [--record OUT] [--report DIR] [--reference REF --tolerances F]

(`autonomy-stack replay` is `autonomy_tools.replay.main`: this harness with the graph runner
plugged in for `--nodes`; `autonomy_replay.main` is the same without `--nodes`.)

- BAG: a rosbag2 directory, or a .mcap / .db3 file (`X.mcap` also finds the directory X/
  that the simulator's recorder writes). Damaged bags replay as far as they are readable.
- Sim time: the player publishes /clock from the bag's log times; start the graph with
  use_sim_time:=true (`--nodes MODE` starts the mode's nodes that way and stops them after).
- Raw CDR bytes are republished without decoding; playback starts once the consuming
  topics have matched subscribers (`--wait-for`, else a stable set of matched topics).
- `--record OUT` (default DIR/output_bag with --report): every topic the graph publishes
  that the bag does not hold, as a new MCAP rosbag2, log time = sim time.
- `--report DIR`: report.json + report.md (rates, stage latency, perception and planning
  metrics against /ground_truth/...), frames/topdown_NNNN.png, frames/mosaic_NNNN.png,
  replay.gif, replay.mp4, node_logs/ (with --nodes).
- `--reference REF [--tolerances F]`: regression mode (see `regression`), exit 1 on a diff.
- Graph readiness and loss accounting (`--nodes MODE`, or `--graph MODE [--graph-file F]`
  for a graph started separately): before playing, every link between two nodes of the
  mode that carries the bag's data (graph description: publishes/subscribes) must be
  matched; after playing, each recorded output must have received its expected count
  (`--expect TOPIC=N`, or the description's `one_per_input`).
Exit codes: see `autonomy_replay.command` (0 ok, 1 regression, 2 usage/unreadable,
3 damaged bag, 4 incomplete input, 5 undeliverable, 6 graph failure, 7 graph links not
matched (nothing played), 8 messages lost in the graph, 130 interrupted).

Pure modules (no rclpy): `bag` (tolerant reading), `recorder` (MCAP writing), `metrics`,
`bag_data` (decoded bag data and grid helpers shared by `report` and `render`), `report`,
`regression`, `render`, `synthetic` (generated test bags). `player` (rclpy) publishes and
records; `command` holds the argparse front end; `nodes/relay_node` is a one-topic relay
used as a stand-in graph by tests and bench/replay.py.
"""
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`replay BAG [...]` without a graph runner (`--nodes` is refused: use
    `autonomy_tools.replay.main`); returns the exit code (see autonomy_replay.command)."""
    # lazy: start-up time (importing a harness module does not load the argparse front end)
    from autonomy_replay.command import main as _main
    return _main(argv)

"""Procedural driving simulator: worlds, agents with behaviour models, the ego bicycle,
an 8-camera rig with rendering, perfect vector-space labels, scenarios, bags, sim node."""

"""Learned parking search: a seeded problem generator (lots from the simulator's
`parking_lot` world), hybrid-A*-style motion primitives with footprint collision checking,
A* baselines (Euclidean and navigation-route heuristics), PUCT MCTS guided by a
policy/value network, imitation training, and the conversion of a path to a timed
trajectory. `ParkingPlanner` is the entry point for the planning node. No ROS here."""

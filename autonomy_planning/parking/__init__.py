"""Learned parking search: parking lots as plain data (from a simulator world passed in, a
vector space or by hand; the seeded problem generator over simulated lots is
`autonomy_tools.parking_problems`), hybrid-A*-style motion primitives with footprint collision checking,
A* baselines (Euclidean and navigation-route heuristics), PUCT MCTS guided by a
policy/value network, imitation training (`train`, a tools-layer entry point), and the conversion of a path to a timed
trajectory. `ParkingPlanner` is the entry point for the planning node. No ROS here."""

"""Planning: joint multi-agent futures, coarse maneuver search, convex corridor,
trajectory optimisation, learned parking search (A* vs MCTS), and the planning node."""

"""Evaluation of the perception network: metrics (pure numpy) and the evaluate command."""

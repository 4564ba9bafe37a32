"""Analyses that need their own loops over the same network, hooks and views: evolution over checkpoints, invariance sweeps."""

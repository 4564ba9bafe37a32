"""Circuits: how each unit is built from the units below it, and which classes it matters for."""

"""Experiment scripts that reproduce the papers' tables; see experiments/README.md."""

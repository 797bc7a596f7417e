"""Scenarios: the file model, step and check kinds (one module each), the runner and its results."""

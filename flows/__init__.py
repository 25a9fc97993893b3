"""Prefect flows: wiring, caching, task runners. The computation lives in ``synthtext``."""

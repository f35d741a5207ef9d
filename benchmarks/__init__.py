"""Benchmarks for lens_odesteer; run with ``python -m benchmarks [name ...]``."""

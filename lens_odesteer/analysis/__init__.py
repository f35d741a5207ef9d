"""Analysis of steering: projections, barrier level sets, trajectories, per-step logits.

Functions here return tidy pandas DataFrames (or small dataclasses); nothing imports plotly.
The plotting layer is :mod:`lens_odesteer.viz`.
"""

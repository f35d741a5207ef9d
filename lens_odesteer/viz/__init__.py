"""Plotly figures for the frames of :mod:`lens_odesteer.analysis` and ``evaluation``."""

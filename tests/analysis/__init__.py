"""Tests of lens_odesteer.analysis."""

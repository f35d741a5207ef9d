"""Tests of lens_odesteer.evaluation."""

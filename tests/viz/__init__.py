"""Tests of lens_odesteer.viz and the report."""

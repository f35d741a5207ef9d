"""Tests of lens_odesteer.models and lens_odesteer.activations."""

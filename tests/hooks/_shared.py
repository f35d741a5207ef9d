"""Texts, prompts and hook names shared by the hook tests."""

from __future__ import annotations

from lens_odesteer.models import resid_post

POS_TEXTS = [
    "I love this wonderful day.",
    "What a great and happy result!",
    "The food was delicious and kind.",
    "She smiled, full of joy.",
    "This is excellent work, thank you.",
    "A beautiful, peaceful morning.",
    "We are thrilled with the gift.",
    "Everything went perfectly well.",
]
NEG_TEXTS = [
    "I hate this terrible day.",
    "What an awful and sad result!",
    "The food was disgusting and cold.",
    "She frowned, full of anger.",
    "This is horrible work, go away.",
    "A miserable, noisy morning.",
    "We are furious about the loss.",
    "Everything went badly wrong.",
]
PROMPTS = ["Hello there, my friend", "Hi", "The capital of France is"]

TINY_HOOK = resid_post(0)

SMOL_LAYER = 12
"""SmolLM2 layer whose residual stream the slow tests steer."""

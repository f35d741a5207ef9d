"""Analysis that runs the model: the only part of :mod:`lens_odesteer.analysis` that does.

* :mod:`~lens_odesteer.analysis.model_runs.logits`: :func:`step_logits`, the next-token
  prediction after patching each state of a steering path back into the model;
* :mod:`~lens_odesteer.analysis.model_runs.layers`: :func:`collect_layer_splits` and
  :func:`field_variation_by_layer`, activations of several layers in one pass, split by group;
* :mod:`~lens_odesteer.analysis.model_runs.differences`: :func:`step_logit_differences`, one
  method's per-step next-token log-probabilities minus another's.

Everything else in :mod:`lens_odesteer.analysis` works on tensors and frames only (activations
already collected, fitted steerers), never imports TransformerLens or transformers and never
takes a model; ``tests/unit/test_layering.py`` holds that rule. All names stay importable from
:mod:`lens_odesteer.analysis`.
"""

from lens_odesteer.analysis.model_runs.differences import step_logit_differences
from lens_odesteer.analysis.model_runs.layers import collect_layer_splits, field_variation_by_layer
from lens_odesteer.analysis.model_runs.logits import StepLogits, step_logits

__all__ = [
    "StepLogits",
    "collect_layer_splits",
    "field_variation_by_layer",
    "step_logit_differences",
    "step_logits",
]

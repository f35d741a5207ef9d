"""lens_odesteer: ODE-based activation steering (ODESteer) for TransformerLens models.

The top-level namespace holds what a user needs to fit steerers, steer a model and compare
methods; everything else stays importable from its module (``lens_odesteer.barriers``,
``lens_odesteer.features``, ``lens_odesteer.flows``, ``lens_odesteer.analysis``,
``lens_odesteer.viz``, ``lens_odesteer.evaluation``, ...).

Example:
    >>> import torch, lens_odesteer as lo
    >>> pos, neg = torch.randn(32, 576) + 0.3, torch.randn(32, 576) - 0.3
    >>> ode = lo.ODESteer(lo.sketch_barrier(n_components=1024)).fit(pos, neg)
    >>> ode.steer(neg[:4], T=ode.T_for(0.1)).shape
    torch.Size([4, 576])
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from lens_odesteer._version import __version__
from lens_odesteer.errors import LensOdesteerError
from lens_odesteer.hooks import SteeringHook, SteeringPlan, generate, steering
from lens_odesteer.io import load_steerer
from lens_odesteer.models.names import resid_post, resid_pre
from lens_odesteer.steerers import (
    CAA,
    HPR,
    ITI,
    AngularSteering,
    LinAcT,
    MeanCentring,
    MiMiC,
    ODESteer,
    RepE,
    RFFODESteer,
    RFFStepODESteer,
    SphericalSteering,
    StepODESteer,
    TruthFlow,
    ValueSteer,
    rff_barrier,
    sketch_barrier,
    value_barrier,
)

if TYPE_CHECKING:
    from lens_odesteer.activations import collect_activations
    from lens_odesteer.analysis import (
        field_variation,
        fit_projection,
        search_barrier,
        step_logits,
        trajectory_frame,
    )
    from lens_odesteer.datasets import load_builtin
    from lens_odesteer.evaluation.runner import evaluate
    from lens_odesteer.evaluation.strength import match_strength
    from lens_odesteer.models.loading import load_model
    from lens_odesteer.models.tiny import tiny_bridge
    from lens_odesteer.report import comparison_report

# Names whose modules import transformers / TransformerLens / pandas are loaded on first use, so
# that `import lens_odesteer` stays fast for pure-tensor work.
_LAZY = {
    "collect_activations": "lens_odesteer.activations",
    "comparison_report": "lens_odesteer.report",
    "evaluate": "lens_odesteer.evaluation.runner",
    "field_variation": "lens_odesteer.analysis",
    "fit_projection": "lens_odesteer.analysis",
    "load_builtin": "lens_odesteer.datasets",
    "load_model": "lens_odesteer.models.loading",
    "match_strength": "lens_odesteer.evaluation.strength",
    "search_barrier": "lens_odesteer.analysis",
    "step_logits": "lens_odesteer.analysis",
    "tiny_bridge": "lens_odesteer.models.tiny",
    "trajectory_frame": "lens_odesteer.analysis",
}

# Names that were top-level before the namespace was curated: still served (with a warning
# that says where they live now), never listed in __all__.
_MOVED = {
    "AbstractBarrier": "lens_odesteer.barriers",
    "AbstractFeatureMap": "lens_odesteer.features",
    "AbstractSteerer": "lens_odesteer.steerers",
    "BarrierSearchResult": "lens_odesteer.analysis",
    "ContrastDataset": "lens_odesteer.datasets",
    "ContrastPair": "lens_odesteer.datasets",
    "FieldVariation": "lens_odesteer.analysis",
    "FileFormatError": "lens_odesteer.errors",
    "HookNameError": "lens_odesteer.errors",
    "IdentityFeatures": "lens_odesteer.features",
    "IntegrationError": "lens_odesteer.errors",
    "InvalidActivationsError": "lens_odesteer.errors",
    "InvalidParameterError": "lens_odesteer.errors",
    "KernelLogisticBarrier": "lens_odesteer.barriers",
    "LinearBarrier": "lens_odesteer.barriers",
    "MLPValueBarrier": "lens_odesteer.barriers",
    "ModelLoadError": "lens_odesteer.errors",
    "NotFittedError": "lens_odesteer.errors",
    "PolynomialSketch": "lens_odesteer.features",
    "ProvenanceError": "lens_odesteer.errors",
    "RandomFourierFeatures": "lens_odesteer.features",
    "ShapeMismatchError": "lens_odesteer.errors",
    "SteeringConflictError": "lens_odesteer.errors",
    "SteeringHandle": "lens_odesteer.hooks",
    "Trajectory": "lens_odesteer.flows",
    "answer_spans": "lens_odesteer.activations",
    "attn_out": "lens_odesteer.models.names",
    "bootstrap_ci": "lens_odesteer.evaluation.stats",
    "calibrate_kl": "lens_odesteer.evaluation.strength",
    "calibrated_T": "lens_odesteer.evaluation.strength",
    "field_variation_by_layer": "lens_odesteer.analysis",
    "format_chat": "lens_odesteer.datasets",
    "integrate": "lens_odesteer.flows",
    "make_task": "lens_odesteer.evaluation.tasks",
    "mlp_out": "lens_odesteer.models.names",
    "model_d_model": "lens_odesteer.models.names",
    "model_n_layers": "lens_odesteer.models.names",
    "model_provenance": "lens_odesteer.models.loading",
    "paired_bootstrap": "lens_odesteer.evaluation.stats",
    "read_header": "lens_odesteer.io",
    "save_steerer": "lens_odesteer.io",
    "validate_hook_name": "lens_odesteer.models.names",
}

# Removed entry points: one plan and three ways to apply it replace them.
_REMOVED = {
    "attach": "use `with lo.steering(model, plan):` (hooks removed however the block ends)",
    "make_hooks": "use `plan.hooks(model)` with a `lo.SteeringPlan`",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    module = _MOVED.get(name)
    if module is not None:
        warnings.warn(
            f"`lens_odesteer.{name}` moved out of the top-level namespace; import it from "
            f"`{module}` (`from {module} import {name}`).",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module), name)
    if name in _REMOVED:
        raise AttributeError(f"`lens_odesteer.{name}` was removed: {_REMOVED[name]}.")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CAA",
    "HPR",
    "ITI",
    "AngularSteering",
    "LensOdesteerError",
    "LinAcT",
    "MeanCentring",
    "MiMiC",
    "ODESteer",
    "RFFODESteer",
    "RFFStepODESteer",
    "RepE",
    "SphericalSteering",
    "SteeringHook",
    "SteeringPlan",
    "StepODESteer",
    "TruthFlow",
    "ValueSteer",
    "__version__",
    "collect_activations",
    "comparison_report",
    "evaluate",
    "field_variation",
    "fit_projection",
    "generate",
    "load_builtin",
    "load_model",
    "load_steerer",
    "match_strength",
    "resid_post",
    "resid_pre",
    "rff_barrier",
    "search_barrier",
    "sketch_barrier",
    "steering",
    "step_logits",
    "tiny_bridge",
    "trajectory_frame",
    "value_barrier",
]

"""lens_odesteer: ODE-based activation steering (ODESteer) for TransformerLens models.

Example:
    >>> import torch, lens_odesteer as lo
    >>> pos, neg = torch.randn(32, 576) + 0.3, torch.randn(32, 576) - 0.3
    >>> lo.ODESteer(n_components=1024).fit(pos, neg).steer(neg[:4], T=5.0).shape
    torch.Size([4, 576])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lens_odesteer._version import __version__
from lens_odesteer.barriers import (
    AbstractBarrier,
    KernelLogisticBarrier,
    LinearBarrier,
    MLPValueBarrier,
)
from lens_odesteer.datasets import ContrastDataset, ContrastPair, format_chat, load_builtin
from lens_odesteer.errors import (
    FileFormatError,
    HookNameError,
    IntegrationError,
    InvalidActivationsError,
    InvalidParameterError,
    LensOdesteerError,
    ModelLoadError,
    NotFittedError,
    ProvenanceError,
    ShapeMismatchError,
)
from lens_odesteer.features import (
    AbstractFeatureMap,
    IdentityFeatures,
    PolynomialSketch,
    RandomFourierFeatures,
)
from lens_odesteer.flows import Trajectory, integrate
from lens_odesteer.hooks import (
    SteeringHandle,
    SteeringHook,
    attach,
    generate,
    make_hooks,
    steering,
)
from lens_odesteer.io import load_steerer, read_header, save_steerer
from lens_odesteer.models.names import (
    attn_out,
    mlp_out,
    model_d_model,
    model_n_layers,
    resid_post,
    resid_pre,
    validate_hook_name,
)
from lens_odesteer.steerers import (
    CAA,
    ITI,
    AbstractSteerer,
    LinAcT,
    MiMiC,
    ODESteer,
    RepE,
    RFFODESteer,
    RFFStepODESteer,
    StepODESteer,
    ValueSteer,
)

if TYPE_CHECKING:
    from lens_odesteer.activations import answer_spans, collect_activations
    from lens_odesteer.analysis import (
        BarrierSearchResult,
        FieldVariation,
        field_variation,
        field_variation_by_layer,
        fit_projection,
        search_barrier,
        step_logits,
        trajectory_frame,
    )
    from lens_odesteer.evaluation.runner import evaluate
    from lens_odesteer.evaluation.stats import bootstrap_ci, paired_bootstrap
    from lens_odesteer.evaluation.strength import calibrate_kl, calibrated_T
    from lens_odesteer.evaluation.tasks import make_task
    from lens_odesteer.models.loading import load_model, model_provenance
    from lens_odesteer.models.tiny import tiny_bridge
    from lens_odesteer.report import comparison_report

# Names whose modules import transformers / TransformerLens are loaded on first use, so that
# `import lens_odesteer` stays fast for pure-tensor work.
_LAZY = {
    "bootstrap_ci": "lens_odesteer.evaluation.stats",
    "calibrate_kl": "lens_odesteer.evaluation.strength",
    "calibrated_T": "lens_odesteer.evaluation.strength",
    "evaluate": "lens_odesteer.evaluation.runner",
    "make_task": "lens_odesteer.evaluation.tasks",
    "paired_bootstrap": "lens_odesteer.evaluation.stats",
    "BarrierSearchResult": "lens_odesteer.analysis",
    "FieldVariation": "lens_odesteer.analysis",
    "comparison_report": "lens_odesteer.report",
    "field_variation": "lens_odesteer.analysis",
    "field_variation_by_layer": "lens_odesteer.analysis",
    "fit_projection": "lens_odesteer.analysis",
    "search_barrier": "lens_odesteer.analysis",
    "step_logits": "lens_odesteer.analysis",
    "trajectory_frame": "lens_odesteer.analysis",
    "answer_spans": "lens_odesteer.activations",
    "collect_activations": "lens_odesteer.activations",
    "load_model": "lens_odesteer.models.loading",
    "model_provenance": "lens_odesteer.models.loading",
    "tiny_bridge": "lens_odesteer.models.tiny",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "CAA",
    "ITI",
    "AbstractBarrier",
    "AbstractFeatureMap",
    "AbstractSteerer",
    "BarrierSearchResult",
    "ContrastDataset",
    "ContrastPair",
    "FieldVariation",
    "FileFormatError",
    "HookNameError",
    "IdentityFeatures",
    "IntegrationError",
    "InvalidActivationsError",
    "InvalidParameterError",
    "KernelLogisticBarrier",
    "LensOdesteerError",
    "LinAcT",
    "LinearBarrier",
    "MLPValueBarrier",
    "MiMiC",
    "ModelLoadError",
    "NotFittedError",
    "ODESteer",
    "PolynomialSketch",
    "ProvenanceError",
    "RFFODESteer",
    "RFFStepODESteer",
    "RandomFourierFeatures",
    "RepE",
    "ShapeMismatchError",
    "SteeringHandle",
    "SteeringHook",
    "StepODESteer",
    "Trajectory",
    "ValueSteer",
    "__version__",
    "answer_spans",
    "attach",
    "attn_out",
    "bootstrap_ci",
    "calibrate_kl",
    "calibrated_T",
    "collect_activations",
    "comparison_report",
    "evaluate",
    "field_variation",
    "field_variation_by_layer",
    "fit_projection",
    "format_chat",
    "generate",
    "integrate",
    "load_builtin",
    "load_model",
    "load_steerer",
    "make_hooks",
    "make_task",
    "mlp_out",
    "model_d_model",
    "model_n_layers",
    "model_provenance",
    "paired_bootstrap",
    "read_header",
    "resid_post",
    "resid_pre",
    "save_steerer",
    "search_barrier",
    "steering",
    "step_logits",
    "tiny_bridge",
    "trajectory_frame",
    "validate_hook_name",
]

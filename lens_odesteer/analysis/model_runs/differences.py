"""Per-step next-token differences between two steering methods, from :func:`step_logits`.

:func:`step_logit_differences` takes the :class:`StepLogits` of one prompt and subtracts one
method's per-step log-probabilities from another's (ODESteer minus CAA, ODESteer minus its own
one step), so a heatmap of the difference can have its own colour scale.

Example:
    >>> import lens_odesteer as lo
    >>> from lens_odesteer.analysis import step_logits
    >>> from lens_odesteer.analysis.model_runs.differences import step_logit_differences
    >>> model = lo.tiny_bridge()
    >>> hook = "blocks.1.hook_resid_post"
    >>> acts = lo.collect_activations(model, ["ab", "cd", "ef", "gh"], hook, progress=False)
    >>> ode = lo.ODESteer(lo.sketch_barrier(n_components=128)).fit(acts[:2], acts[2:])
    >>> caa = lo.CAA().fit(acts[:2], acts[2:])
    >>> res = step_logits(model, "abc", hook, {"ODESteer": ode, "CAA": caa}, T=1.0, top_k=3)
    >>> diff = step_logit_differences(res, ["CAA", "ODESteer"])
    >>> float(diff.loc[diff.baseline == "ODESteer", "logprob"].abs().max())
    0.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from lens_odesteer.analysis.model_runs.logits import StepLogits
from lens_odesteer.errors import InvalidParameterError


def step_logit_differences(
    result: StepLogits,
    baselines: str | Sequence[str] | None = None,
    *,
    method: str | None = None,
) -> pd.DataFrame:
    """Per-step next-token differences of ``method`` minus each baseline, token by token.

    Args:
        result: from :func:`~lens_odesteer.analysis.model_runs.logits.step_logits`.
        baselines: the methods subtracted (default: every other method of ``result``).
        method: the method they are subtracted from (default: ``result.reference``, the ODE).

    Returns:
        One row per (baseline, step, tracked token): ``method``, ``baseline``, ``pair`` (e.g.
        ``"ODESteer - CAA"``), ``step``, ``fraction``, ``token_id``, ``token``, ``is_target``
        and the differences ``logprob``, ``logit`` and ``prob`` (the method's value minus the
        baseline's at the same step; steps are matched by ``fraction``, exactly when both
        saved the same times). ``attrs["max_abs"]`` holds the largest ``|logprob|`` per pair.
    """
    if not isinstance(result, StepLogits):
        raise InvalidParameterError(
            "Expected the StepLogits returned by lens_odesteer.analysis.step_logits; got "
            f"{type(result).__name__}."
        )
    tokens = result.tokens
    labels = list(dict.fromkeys(tokens["method"]))
    minuend = method if method is not None else result.reference
    if minuend not in labels:
        raise InvalidParameterError(f"`method` {minuend!r} is not one of {labels}.")
    if baselines is None:
        chosen = [m for m in labels if m != minuend]
    else:
        chosen = [baselines] if isinstance(baselines, str) else list(baselines)
    unknown = [b for b in chosen if b not in labels]
    if unknown or not chosen:
        raise InvalidParameterError(
            f"`baselines` {unknown or chosen} must name methods of the result {labels}."
        )
    mine = tokens[tokens["method"] == minuend]
    out = []
    for base in chosen:
        other = tokens[tokens["method"] == base]
        for tid, g in mine.groupby("token_id", sort=False):
            g = g.sort_values("step")
            b = other[other["token_id"] == tid].sort_values("fraction")
            frac = g["fraction"].to_numpy(dtype=float)
            same = len(b) == len(g) and np.allclose(
                b["fraction"].to_numpy(dtype=float), frac, rtol=0.0, atol=1e-12
            )
            part: dict[str, object] = {
                "method": minuend,
                "baseline": base,
                "pair": f"{minuend} - {base}",
                "step": g["step"].to_numpy(),
                "fraction": frac,
                "token_id": int(tid),
                "token": g["token"].iloc[0],
                "is_target": bool(g["is_target"].iloc[0]),
            }
            for col in ("logprob", "logit", "prob"):
                bv = b[col].to_numpy(dtype=float)
                ref = bv if same else np.interp(frac, b["fraction"].to_numpy(dtype=float), bv)
                part[col] = g[col].to_numpy(dtype=float) - ref
            out.append(pd.DataFrame(part))
    frame = pd.concat(out, ignore_index=True)
    frame.attrs["max_abs"] = {
        str(p): float(g["logprob"].abs().max()) for p, g in frame.groupby("pair", sort=False)
    }
    return frame

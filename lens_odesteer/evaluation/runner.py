"""Run one evaluation task for a set of methods, fairly, with resume: :func:`evaluate`.

For each split of the task: collect last-token activations of its contrast texts at one hook,
fit every method on them (the same data, layer and scope for all), choose each method's strength
on the validation units, then score the held-out test units once at that strength.

Strength (``strength=``):

* ``"grid"`` (default): candidate strengths that move the reference activations (last tokens of
  the validation prompts) by the fractions ``grid`` of their mean norm (displacement matching,
  :func:`~lens_odesteer.evaluation.strength.solve_T_for_displacement`), and the best on the
  validation units wins. For generation tasks a candidate only counts if its mean perplexity
  under the unsteered model stays within ``max_ppl_ratio`` times the unsteered text's, so
  "better" cannot be bought with broken text.
* ``"displacement"``: one strength per method, the one with displacement ``grid[0]`` x norm.
* ``"kl"``: one strength per method, the one whose mean next-token KL from the unsteered model
  on the reference prompts is ``kl_budget``
  (:func:`~lens_odesteer.evaluation.strength.calibrate_kl`).

Every finished (split, method, phase, strength) is stored as an atomic part file under
``out_dir``; a rerun with the same configuration skips finished parts. Results: ``units.csv``
(per unit and seed), ``summary.csv`` (tidy estimates with 95% bootstrap intervals, plus the
``side_*`` capability rows of :mod:`~lens_odesteer.evaluation.side_effects`), ``paired.csv``
(paired differences against the best one-step baseline, with their power), ``reliability.csv``
and ``reliability_items.csv`` (per-item steerability,
:mod:`~lens_odesteer.evaluation.reliability`) and ``results.json`` (configuration, library and
model provenance, sizes, timings).

Besides ``val`` and ``test``, two phases are scored: ``sweep`` (likelihood tasks: the test
units at every other candidate strength, for the per-item slopes) and ``side`` (the side-effect
items at the chosen strength).
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from lens_odesteer._atomic import atomic_path
from lens_odesteer._validation import check_finite_float
from lens_odesteer._version import __version__
from lens_odesteer.activations import collect_activations
from lens_odesteer.analysis.nonlinearity import field_variation, has_flow_path
from lens_odesteer.errors import FileFormatError, InvalidParameterError
from lens_odesteer.evaluation.distributed import Shard, current_shard
from lens_odesteer.evaluation.likelihood import unsteered_split
from lens_odesteer.evaluation.methods import (
    MAX_T,
    ONE_STEP,
    fit_method,
    method_spec,
    parse_methods,
)
from lens_odesteer.evaluation.reliability import (
    method_geometry,
    reliability_frame,
    training_geometry,
)
from lens_odesteer.evaluation.side_effects import (
    describe,
    side_effect_data,
    side_effect_summary,
    side_effect_units,
)
from lens_odesteer.evaluation.store import PartStore, write_csv, write_json
from lens_odesteer.evaluation.strength import (
    _solve_displacement,
    calibrate_kl,
    mean_displacement,
)
from lens_odesteer.evaluation.summary import baseline_pairs, paired_differences, summarize
from lens_odesteer.evaluation.tasks import make_task
from lens_odesteer.evaluation.tasks.base import Split, Task
from lens_odesteer.hooks import SteeringPlan
from lens_odesteer.io import load_steerer
from lens_odesteer.models.names import HookedModel, model_n_layers, resid_post
from lens_odesteer.steerers.base import AbstractSteerer

__all__ = ["EvalConfig", "check_eval_options", "evaluate"]

STRENGTH_MODES = ("grid", "displacement", "kl")


@dataclass
class EvalConfig:
    """Settings of :func:`evaluate` that change results (saved with them)."""

    task: str
    methods: list[str]
    layer: int
    hook: str
    strength: str = "grid"
    grid: tuple[float, ...] = (0.05, 0.1, 0.2)
    kl_budget: float = 0.1
    max_ppl_ratio: float = 2.0
    quick: bool = False
    seed: int = 0
    n_boot: int = 2000
    task_kwargs: dict[str, Any] = field(default_factory=dict)


def _say(msg: str, t0: float) -> None:
    tqdm.write(f"[{time.perf_counter() - t0:7.1f}s] {msg}")


_FLAGS = {
    "grid": "--grid",
    "kl_budget": "--kl-budget",
    "max_ppl_ratio": "--max-ppl-ratio",
    "seed": "--seed",
    "n_boot": "--n-boot",
    "layer": "--layer",
    "strength": "--strength",
}


def check_eval_options(*, flags: bool = False, **options: Any) -> dict[str, Any]:
    """Check the numeric options of :func:`evaluate` (those given) and return them normalised.

    ``strength`` a mode name; ``grid`` a non-empty sequence of finite fractions > 0 (None: the
    task's); ``kl_budget`` finite > 0; ``max_ppl_ratio`` finite >= 1 (below 1 the unsteered
    text itself would fail the limit); ``seed`` an int >= 0; ``n_boot`` an int >= 1; ``layer``
    None or an int >= 0 (its upper bound needs the model). ``flags=True`` names them as the
    command line does (``--max-ppl-ratio``).

    Raises:
        InvalidParameterError: the first option out of range, with its value.
    """
    out = dict(options)

    def name(key: str) -> str:
        return _FLAGS[key] if flags else f"`{key}`"

    if "strength" in options and options["strength"] not in STRENGTH_MODES:
        raise InvalidParameterError(
            f"Unknown strength mode {options['strength']!r} for {name('strength')}; expected "
            f"one of {STRENGTH_MODES}."
        )
    grid = options.get("grid")
    if grid is not None:
        bad = isinstance(grid, (str, bytes)) or not isinstance(grid, Sequence) or not grid
        values: list[float] = []
        if not bad:
            try:
                values = [check_finite_float(g, "grid", minimum=0.0, strict=True) for g in grid]
            except InvalidParameterError:
                bad = True
        if bad:
            raise InvalidParameterError(
                f"{name('grid')} must hold finite fractions > 0 of the mean activation norm, "
                f"e.g. (0.05, 0.1, 0.2); got {grid!r}."
            )
        out["grid"] = tuple(values)
    for key, low, strict, why in (
        ("kl_budget", 0.0, True, "nats of next-token KL"),
        ("max_ppl_ratio", 1.0, False, "a multiple of the unsteered text's perplexity"),
    ):
        if key in options:
            try:
                out[key] = check_finite_float(options[key], key, minimum=low, strict=strict)
            except InvalidParameterError:
                sign = ">" if strict else ">="
                raise InvalidParameterError(
                    f"{name(key)} must be a finite number {sign} {low:g} ({why}); got "
                    f"{options[key]!r}."
                ) from None
    for key, low in (("seed", 0), ("n_boot", 1)):
        if key in options:
            value = options[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidParameterError(f"{name(key)} must be an int >= {low}; got {value!r}.")
    layer = options.get("layer")
    if layer is not None and (isinstance(layer, bool) or not isinstance(layer, int) or layer < 0):
        raise InvalidParameterError(
            f"{name('layer')} must be a layer index (an int >= 0); got {layer!r}."
        )
    return out


def _cached_acts(store: PartStore, cache: Path, n_rows: int) -> Tensor | None:
    """The cached activations of ``cache`` when its seal proves them whole, else None."""
    data = store.whole(cache, what="activation cache")
    if data is None:
        return None
    try:
        loaded = torch.load(io.BytesIO(data), weights_only=True)
    except Exception as exc:  # sealed but unreadable: a broken writer
        store.say(f"activation cache {str(cache)!r} cannot be read ({exc}); recomputing it")
        return None
    if (
        not isinstance(loaded, Tensor)
        or loaded.ndim != 2
        or loaded.shape[0] != n_rows
        or not loaded.is_floating_point()
    ):
        got = tuple(loaded.shape) if isinstance(loaded, Tensor) else type(loaded).__name__
        store.say(
            f"activation cache {str(cache)!r} holds {got}, not [{n_rows}, d_model]; recomputing it"
        )
        return None
    return loaded


def _acts(
    model: HookedModel,
    texts: list[str],
    hook: str,
    cache: Path | None,
    store: PartStore | None = None,
    batch_size: int = 16,
) -> Tensor:
    if cache is not None and store is not None:
        if not store.owns(str(cache)):  # data-parallel: another rank computes it
            store.wait_whole(cache, what="activation cache")
        loaded = _cached_acts(store, cache, len(texts))
        if loaded is not None:
            return loaded
    acts = collect_activations(model, texts, hook, batch_size=batch_size, progress=False)
    assert isinstance(acts, Tensor)
    if cache is not None and store is not None:
        store.unseal(cache)
        with atomic_path(cache) as tmp:
            torch.save(acts, tmp)
        store.seal(cache, rows=len(texts))
    return acts


def _plain_json(value: Any) -> Any:
    """``value`` as it reads back from a steerer file: NaN and inf become None, tuples lists."""
    if isinstance(value, dict):
        return {str(k): _plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _plain_json(value.item())
    return value


def _fit(
    method: str,
    pos: Tensor,
    neg: Tensor,
    path: Path | None,
    provenance: dict[str, Any],
    seed: int,
    groups: tuple[list[Any], list[Any]] | None = None,
    store: PartStore | None = None,
) -> tuple[AbstractSteerer, dict[str, Any]]:
    """The fitted steerer (loaded if saved before) and what its fit found (searched barriers).

    ``groups`` (one id per positive and per negative row, e.g. the TruthfulQA question) keeps
    a group on one side of the searched methods' held-out split. A saved steerer is reused only
    when its seal proves it whole; the facts are returned as they read back from the file, so a
    resumed run reports exactly what a fresh one does.
    """
    if path is not None and store is not None and not store.owns(str(path)):
        store.wait_whole(path, what="steerer")  # data-parallel: another rank fits it
    if path is not None and store is not None and store.whole(path, what="steerer") is not None:
        try:
            steerer = load_steerer(path)
        except FileFormatError as exc:
            store.say(f"steerer {str(path)!r} cannot be loaded ({exc}); fitting it again")
        else:
            return steerer, dict((steerer.provenance_ or {}).get("fit_facts", {}))  # type: ignore[attr-defined]
    steerer, facts = fit_method(method, pos, neg, seed=seed, groups=groups)
    facts = _plain_json(dict(facts))
    if path is not None and store is not None:
        store.unseal(path)
        steerer.save(path, provenance=_plain_json({**provenance, "fit_facts": facts}))
        store.seal(path)
    return steerer, dict(facts)


def _diagnostic(steerer: AbstractSteerer, ref: Tensor, T: float) -> dict[str, float]:
    """How far multi-step is from one step for ``steerer`` at ``T`` on the reference rows.

    Empty for steerers without a path to integrate (LinAcT, MiMiC) and for ``T = 0``.
    """
    if T <= 0 or not has_flow_path(steerer):
        return {}
    diag = field_variation(steerer, ref, T=T)
    gap, gap_low, gap_high = diag.median_ci("gap")
    bend, bend_low, bend_high = diag.median_ci("bend")
    return {
        "gap_median": gap,
        "gap_ci_low": gap_low,
        "gap_ci_high": gap_high,
        "bend_median": bend,
        "bend_ci_low": bend_low,
        "bend_ci_high": bend_high,
        "mean_pairwise_cosine": diag.mean_pairwise_cosine,
        "turn_deg_median": diag.median("turn_deg"),
        "n_rows": len(diag.rows),
    }


def _score_key(frame: pd.DataFrame, task: Task) -> float:
    value = float(frame.groupby("unit")[task.primary].mean().mean())
    return value if task.higher_is_better else -value


def _select(task: Task, candidates: list[pd.DataFrame], ppl_limit: float | None) -> int:
    """Index of the best candidate on validation (respecting the perplexity limit)."""
    best, best_score = 0, float("-inf")
    for i, frame in enumerate(candidates):
        if ppl_limit is not None and "ppl" in frame and float(frame["ppl"].mean()) > ppl_limit:
            continue
        score = _score_key(frame, task)
        if score > best_score:
            best, best_score = i, score
    return best


def evaluate(
    task: str | Task,
    model: HookedModel | None = None,
    *,
    methods: Sequence[str] | str | None = None,
    layer: int | None = None,
    quick: bool = False,
    out_dir: str | os.PathLike[str] | None = None,
    strength: str = "grid",
    grid: Sequence[float] | None = None,
    kl_budget: float = 0.1,
    max_ppl_ratio: float = 2.0,
    seed: int = 0,
    n_boot: int = 2000,
    fresh: bool = False,
    progress: bool = True,
    task_kwargs: dict[str, Any] | None = None,
    shard: Shard | None = None,
    side_effects: bool = True,
) -> pd.DataFrame:
    """Evaluate ``methods`` on ``task`` and return the tidy summary (see the module docstring).

    Main arguments:
        task: a task name (``truthfulqa_mc``, ``truthfulqa_gen``, ``detox``, ``sentiment``,
            ``behaviors``) or a :class:`~lens_odesteer.evaluation.tasks.Task`.
        model: a TransformerLens model (default: :func:`~lens_odesteer.load_model`).
        methods: method names (default: all); ``"none"`` is always included.
        layer: residual-stream layer to steer (``blocks.L.hook_resid_post``; default: middle).
        quick: tiny sizes, for tests and smoke runs.
        out_dir: folder for parts, results and steerers (None: nothing written, no resume).

    Other arguments:
        strength, grid, kl_budget, max_ppl_ratio: how ``T`` is chosen (module docstring).
        seed: seed of the task's subsets; n_boot: bootstrap resamples.
        fresh: discard partial results in ``out_dir`` instead of resuming.
        task_kwargs: passed to the task's constructor (sizes, data path, ...).
        shard: this process of a data-parallel run (default: from ``RANK``/``WORLD_SIZE``, set
            by ``accelerate launch``/``torchrun``; see
            :mod:`~lens_odesteer.evaluation.distributed`). Each rank computes its share of the
            work into ``out_dir`` and rank 0 writes the merged results.
        side_effects: measure each method's capability side effects at its chosen strength
            (:mod:`~lens_odesteer.evaluation.side_effects`: the ``side_*`` summary rows; about
            330 short forward passes per method and split, 56 with ``quick``). False skips them
            (``--no-side-effects``), e.g. for long CPU runs.

    Returns:
        The summary frame (``summary.csv``); the full results are in ``out_dir``.
    """
    t0 = time.perf_counter()
    # Everything that can be checked without the model is checked before it loads.
    checked = check_eval_options(
        strength=strength,
        grid=grid,
        kl_budget=kl_budget,
        max_ppl_ratio=max_ppl_ratio,
        seed=seed,
        n_boot=n_boot,
        layer=layer,
    )
    grid, kl_budget, max_ppl_ratio = checked["grid"], checked["kl_budget"], checked["max_ppl_ratio"]
    names = parse_methods(methods)
    shard = shard if shard is not None else current_shard()
    if shard.world > 1 and out_dir is None:
        raise InvalidParameterError(
            f"A data-parallel run ({shard.world} processes) shares its work through `out_dir`; "
            "pass an output folder."
        )
    task_obj = (
        task
        if isinstance(task, Task)
        else make_task(task, quick=quick, seed=seed, **(task_kwargs or {}))
    )
    if model is None:
        from lens_odesteer.models.loading import load_model

        model = load_model()
    n_layers = model_n_layers(model)
    layer = n_layers // 2 if layer is None else layer
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise InvalidParameterError(f"`layer` must be an int in [0, {n_layers}); got {layer!r}.")
    hook = resid_post(layer)
    if grid is None:
        grid = task_obj.default_grid[:2] if quick else task_obj.default_grid
    fractions: tuple[float, ...] = check_eval_options(grid=grid)["grid"]
    cfg = EvalConfig(
        task=task_obj.name,
        methods=names,
        layer=layer,
        hook=hook,
        strength=strength,
        grid=fractions,
        kl_budget=kl_budget,
        max_ppl_ratio=max_ppl_ratio,
        quick=quick,
        seed=seed,
        n_boot=n_boot,
        task_kwargs=dict(task_kwargs or {}),
    )
    from lens_odesteer.models.loading import model_provenance

    raw_info = model_provenance(model)
    model_info = {k: str(v) for k, v in raw_info.items()}
    # Steerers keep the model's facts with their types (d_model 64, not "64"), so a steerer
    # read back from the store (a resumed or data-parallel run) passes the provenance check.
    fit_info = {
        k: v if v is None or isinstance(v, (bool, int, float, str)) else str(v)
        for k, v in raw_info.items()
    }
    fingerprint = {
        **{k: v for k, v in asdict(cfg).items() if k != "methods"},
        "task_config": task_obj.config(),
        "model": model_info.get("model_name", ""),
        "library_version": __version__,
    }
    out = Path(out_dir) if out_dir is not None else None
    store = (
        PartStore(out, fingerprint, fresh=fresh, log=lambda line: _say(line, t0), shard=shard)
        if out is not None
        else None
    )
    splits = task_obj.splits()
    parts: list[pd.DataFrame | _Pending] = []
    timings: dict[str, float] = {}
    chosen: dict[str, dict[str, Any]] = {}
    geometry: dict[str, dict[str, float]] = {}  # per split, for reliability.csv
    bar = tqdm(
        total=len(splits) * len(names),
        desc=f"eval {task_obj.name}",
        disable=not progress or not shard.is_main,
    )
    for split in splits:
        _say(
            f"{split.name}: activations of {len(split.pos_texts)}+{len(split.neg_texts)} "
            f"fit texts at {hook}",
            t0,
        )
        cache = None if out is None else out / "cache"
        pos = _acts(model, split.pos_texts, hook, cache and cache / f"{split.name}-pos.pt", store)
        neg = _acts(model, split.neg_texts, hook, cache and cache / f"{split.name}-neg.pt", store)
        ref = _acts(model, split.ref_prompts, hook, cache and cache / f"{split.name}-ref.pt", store)
        norm = float(ref.norm(dim=-1).mean())
        geometry[split.name] = training_geometry(pos, neg, split.row_groups())
        none_val: pd.DataFrame | None = None
        for method in names:
            t_m = time.perf_counter()
            # Unsteered scores (``none``, prompting, the references of strength selection)
            # are split at the steered hook too: one shared cache and one arithmetic path.
            with unsteered_split(hook):
                frames, info = _run_method(
                    task_obj,
                    model,
                    split,
                    method,
                    hook,
                    pos,
                    neg,
                    ref,
                    norm,
                    cfg,
                    store,
                    out,
                    fit_info,
                    none_val,
                    side_effects=side_effects,
                )
            if method == "none":
                none_val = info.pop("val_frame", None)
            info.pop("val_frame", None)
            parts.extend(frames)
            chosen[f"{split.name}/{method}"] = info
            timings[f"{split.name}/{method}"] = time.perf_counter() - t_m
            bar.update(1)
            _say(
                f"{split.name}/{method}: T={info['T']:.4g} ({info['n_candidates']} candidates)"
                f" in {timings[f'{split.name}/{method}']:.1f}s",
                t0,
            )
    bar.close()
    frames_all = [_resolve(store, p) for p in parts]
    shard.barrier()  # every rank has finished its items; rank 0 writes the merged results
    units = pd.concat(frames_all, ignore_index=True)
    units.insert(0, "task", task_obj.name)
    summary = summarize(
        units,
        task_obj.metrics + _extra_metrics(units, task_obj),
        pooled=task_obj.pooled,
        n_boot=n_boot,
        seed=seed,
    )
    summary.insert(0, "task", task_obj.name)
    paired = _paired(units, task_obj, names, n_boot, seed)
    side = side_effect_summary(units, n_boot=n_boot, seed=seed)  # capability cost per method
    if not side.empty:
        side = side.assign(task=task_obj.name)[list(summary.columns)]
        summary = pd.concat([summary, side], ignore_index=True)
    reliability, reliability_items = reliability_frame(
        units,
        task_obj,
        geometry=geometry,
        method_geom={k: v.get("geometry") or {} for k, v in chosen.items()},
        n_boot=n_boot,
        seed=seed,
    )
    diagnostic = diagnostic_frame(chosen)
    if out is not None and shard.is_main:
        write_csv(out / "units.csv", units)
        write_csv(out / "diagnostic.csv", diagnostic)
        write_csv(out / "summary.csv", summary)
        write_csv(out / "paired.csv", paired)
        write_csv(out / "reliability.csv", reliability)
        write_csv(out / "reliability_items.csv", reliability_items)
        write_json(
            out / "results.json",
            {
                "config": asdict(cfg),
                "task_config": task_obj.config(),
                "splits": {s.name: s.info for s in splits},
                "library_version": __version__,
                "torch_version": torch.__version__,
                "model": model_info,
                "chosen": chosen,
                "timings_s": timings,
                "wall_s": time.perf_counter() - t0,
                "parts_computed": store.n_computed if store else None,
                "parts_reused": store.n_reused if store else None,
                "recomputed_damaged": store.damaged if store else None,
                "processes": shard.world,
                "summary": summary.to_dict(orient="records"),
                "paired": paired.to_dict(orient="records"),
                "reliability": reliability.to_dict(orient="records"),
                "side_effects": describe(_side_data(cfg)) if side_effects else None,
            },
        )
    shard.barrier()  # the merged results are on disk before any rank returns
    summary.attrs["paired"] = paired
    summary.attrs["reliability"] = reliability
    summary.attrs["reliability_items"] = reliability_items
    summary.attrs["diagnostic"] = diagnostic
    summary.attrs["units"] = units
    summary.attrs["wall_s"] = time.perf_counter() - t0
    summary.attrs["parts_computed"] = store.n_computed if store else None
    summary.attrs["parts_reused"] = store.n_reused if store else None
    return summary


def diagnostic_frame(chosen: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per (split, method): chosen ``T``, the multi-step diagnostic and search facts.

    ``gap_median``/``bend_median`` are the median over the reference rows (last tokens of the
    validation prompts) of ``|ODE end - one-step end| / displacement`` and of the part due to the
    barrier's curvature, at the chosen ``T`` (see
    :func:`~lens_odesteer.analysis.nonlinearity.field_variation`); NaN for the unsteered model,
    LinAcT and MiMiC. Searched methods add the chosen barrier and its held-out scores.

    Example:
        >>> chosen = {"fold0/ODESteer": {"T": 2.0, "diagnostic": {"gap_median": 0.01},
        ...                              "fit_facts": {}}}
        >>> diagnostic_frame(chosen)[["split", "method", "T", "gap_median"]].to_dict("records")
        [{'split': 'fold0', 'method': 'ODESteer', 'T': 2.0, 'gap_median': 0.01}]
    """
    rows = []
    for key, info in chosen.items():
        split, _, method = key.partition("/")
        row: dict[str, Any] = {"split": split, "method": method, "T": info.get("T")}
        row.update(info.get("diagnostic") or {})
        row.update({f"search_{k}": v for k, v in (info.get("fit_facts") or {}).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def _extra_metrics(units: pd.DataFrame, task: Task) -> tuple[str, ...]:
    extra = ("ppl", "dist1", "dist2", "dist3", "repetition")
    return tuple(m for m in extra if m in units.columns and m not in task.metrics)


#: A candidate strength that moves the validation activations by less than this share of its
#: target is not a match: a closed gate or a vanishing field leaves them where they are (see
#: :func:`_candidates`).
UNMOVED = 0.01
#: The strength used then: every method's native unit (HPR's published angle scale, Spherical
#: Steering's full rotation of a fully gated row).
UNMATCHED_T = 1.0


def _candidates(
    task: Task,
    model: HookedModel,
    method: str,
    steerer: AbstractSteerer,
    split: Split,
    hook: str,
    ref: Tensor,
    norm: float,
    cfg: EvalConfig,
) -> list[float]:
    spec = method_spec(method)
    if spec.paper_T is not None:
        return [spec.paper_T]  # '<method>@paper': the reference's own T, not searched
    t_max = MAX_T.get(spec.steering)
    if t_max is None and getattr(steerer, "stop", None) is not None:
        # Rows stop at the margin, so a displacement target can be out of reach; an unbounded
        # search would then take one huge first step (the margin is checked per step). Cap
        # the arc length at the mean residual norm (about one radian of rotation).
        t_max = norm
    if cfg.strength == "kl":
        return [calibrate_kl(model, steerer, hook, split.ref_prompts, cfg.kl_budget, t_max=t_max)]
    fracs = cfg.grid if cfg.strength == "grid" else cfg.grid[:1]
    ts = []
    for f in fracs:
        t, moved = _solve_displacement(steerer, ref, f * norm, t_max=t_max)
        if t_max is None and moved < UNMOVED * f * norm:
            # A gated method (HPR, Spherical Steering) whose gate leaves every validation
            # activation alone, or a field that vanishes on all of them (ODESteer's default
            # barrier on Gemma-3-270M's behaviour prompts): no T reaches the target, and the
            # search would end at its ceiling (2^40), which saturates the rows it does steer at
            # test. (Methods with a cap, such as a margin stop, keep the cap.)
            warnings.warn(
                f"{method} on split {split.name!r} moves the validation activations by "
                f"{moved:.3g} at T = {t:.3g}, under {UNMOVED:.0%} of the target {f * norm:.3g} "
                f"(grid {f:g}): it leaves them where they are (a closed gate, or a field "
                f"that vanishes there). Using its native T = {UNMATCHED_T:g} instead of a "
                "displacement-matched strength.",
                stacklevel=2,
            )
            t = UNMATCHED_T
        ts.append(t)
    return list(dict.fromkeys(ts))


def _run_method(
    task: Task,
    model: HookedModel,
    split: Split,
    method: str,
    hook: str,
    pos: Tensor,
    neg: Tensor,
    ref: Tensor,
    norm: float,
    cfg: EvalConfig,
    store: PartStore | None,
    out: Path | None,
    model_info: dict[str, Any],
    none_val: pd.DataFrame | None,
    *,
    side_effects: bool = True,
) -> tuple[list[pd.DataFrame | _Pending], dict[str, Any]]:
    provenance = {
        **model_info,
        "hook_name": hook,
        "layer": cfg.layer,
        "task": task.name,
        "split": split.name,
    }
    steer_dir = None if out is None else out / "steerers"
    steerer = reverse = None
    fit_facts: dict[str, Any] = {}
    t_fit = time.perf_counter()
    groups = split.row_groups()
    if method_spec(method).steering != "none":  # 'none' and 'prompt' steer nothing
        steerer, fit_facts = _fit(
            method,
            pos,
            neg,
            steer_dir and steer_dir / f"{split.name}-{method}.safetensors",
            provenance,
            cfg.seed,
            groups,
            store,
        )
        if task.bidirectional:
            reverse, _ = _fit(
                method,
                neg,
                pos,
                steer_dir and steer_dir / f"{split.name}-{method}-reverse.safetensors",
                provenance,
                cfg.seed,
                None if groups is None else (groups[1], groups[0]),
                store,
            )
    fit_s = time.perf_counter() - t_fit
    if steerer is None:
        ts = [0.0]
    elif store is None or out is None:
        ts = _candidates(task, model, method, steerer, split, hook, ref, norm, cfg)
    else:  # data-parallel: one rank solves them, so every rank names the parts alike
        ts = store.shared(
            out / "steerers" / f"{split.name}-{method}-candidates.json",
            lambda: _candidates(task, model, method, steerer, split, hook, ref, norm, cfg),
            what="candidate strengths",
        )

    def run(phase: str, T: float, index: int, units: list[Any]) -> pd.DataFrame | _Pending:
        key = f"{split.name}|{method}|{phase}|{index}|{T:.6g}"
        if store is not None and not store.owns(key):
            return _Pending(key)  # data-parallel: another rank scores it
        if store is not None:
            stored = store.reuse(key)  # None when missing or not proven whole
            if stored is not None:
                return stored
        t = time.perf_counter()
        plan = None if steerer is None else SteeringPlan({hook: steerer}, T=T)
        rev = None if reverse is None else SteeringPlan({hook: reverse}, T=T)
        if phase == "side":  # capability side effects at this strength (side_effects.py)
            frame = side_effect_units(model, plan, _side_data(cfg))
        else:
            with task.instructed(split.name if method_spec(method).instruction else None):
                frame = task.score(model, plan, units, phase=phase, reverse=rev)
        disp = 0.0 if steerer is None else mean_displacement(steerer, ref, T)
        frame = frame.assign(
            split=split.name,
            method=method,
            phase=phase,
            T=T,
            T_index=index,
            displacement=disp,
            displacement_frac=disp / norm if norm > 0 else 0.0,
            wall_s=time.perf_counter() - t,
        )
        return store.put(key, frame) if store is not None else frame

    frames: list[pd.DataFrame | _Pending] = []
    val_frames: list[pd.DataFrame] = []
    # Validation runs for every steered method (also with one candidate: it ranks the one-step
    # baselines for the paired comparison without looking at test data) and for the unsteered
    # model in generation tasks (the perplexity reference).
    need_val = steerer is not None or task.kind == "generation"
    if need_val:
        pending = [run("val", T, i, split.val) for i, T in enumerate(ts)]
        val_frames = [_resolve(store, f) for f in pending]
        frames.extend(val_frames)
    ppl_limit = None
    if task.kind == "generation" and none_val is not None and "ppl" in none_val:
        ppl_limit = cfg.max_ppl_ratio * float(none_val["ppl"].mean())
    best = _select(task, val_frames, ppl_limit) if len(ts) > 1 else 0
    reference = val_frames[best] if val_frames else None
    if method == "none":
        val_frames = []  # the reference is not a candidate of the comparison
    T = ts[best]
    frames.append(run("test", T, best, split.test))
    if task.kind == "likelihood" and steerer is not None:
        # Per-item reliability (reliability.py): the test items at the other candidates too.
        frames.extend(run("sweep", t, i, split.test) for i, t in enumerate(ts) if i != best)
    if side_effects:
        frames.append(run("side", T, best, []))
    if steerer is not None and steer_dir is not None and (store is None or store.shard.is_main):
        provenance = {**provenance, "chosen_T": T, "strength_mode": cfg.strength}
        cal = (getattr(steerer, "provenance_", None) or {}).get("calibration")
        if cal is not None:
            provenance["calibration"] = cal
        provenance["fit_facts"] = fit_facts
        steerer.save(
            steer_dir / f"{split.name}-{method}-chosen.safetensors",
            provenance=_plain_json(provenance),
        )
    info: dict[str, Any] = {
        "T": T,
        "candidates": ts,
        "n_candidates": len(ts),
        "displacement_frac": float(mean_displacement(steerer, ref, T) / norm) if steerer else 0.0,
        "fit_s": fit_s,
        "ppl_limit": ppl_limit,
        "val_scores": [(_score_key(f, task)) for f in val_frames],
        "fit_facts": fit_facts,
        "diagnostic": {} if steerer is None else _diagnostic(steerer, ref, T),
        "geometry": {} if steerer is None else method_geometry(steerer, pos, neg, T),
    }
    if reference is not None:
        info["val_frame"] = reference
    return frames, info


@dataclass(frozen=True)
class _Pending:
    """A part another rank of a data-parallel run scores; read once it is sealed."""

    key: str


def _resolve(store: PartStore | None, frame: pd.DataFrame | _Pending) -> pd.DataFrame:
    if isinstance(frame, _Pending):
        assert store is not None
        return store.wait(frame.key)
    return frame


@functools.lru_cache(maxsize=4)
def _side_items(quick: bool, seed: int, data_dir: str | None) -> Any:
    return side_effect_data(quick=quick, seed=seed, data_dir=data_dir, log=tqdm.write)


def _side_data(cfg: EvalConfig) -> Any:
    """The side-effect items of this run (built once per size, seed and data folder)."""
    data_dir = cfg.task_kwargs.get("data_dir")
    return _side_items(cfg.quick, cfg.seed, None if data_dir is None else str(data_dir))


def _paired(
    units: pd.DataFrame,
    task: Task,
    names: list[str],
    n_boot: int,
    seed: int,
) -> pd.DataFrame:
    """Each non-one-step method minus the best one-step method (best by validation score)."""
    one_step = [m for m in names if m in ONE_STEP]
    if not one_step:
        return pd.DataFrame()

    sign = 1.0 if task.higher_is_better else -1.0

    def val_score(method: str) -> float:
        """Validation score at the chosen strength, averaged over splits (NaN: none)."""
        scores = []
        for _, part in units[units["method"] == method].groupby("split", sort=True):
            test_t = part.loc[part["phase"] == "test", "T"]
            if test_t.empty:
                continue
            val = part[(part["phase"] == "val") & np.isclose(part["T"], float(test_t.iloc[0]))]
            if not val.empty:
                scores.append(sign * float(val.groupby("unit")[task.primary].mean().mean()))
        return float(np.mean(scores)) if scores else float("nan")

    # Without a validation grid (one candidate) rank one-step methods by test score instead,
    # and say so in the frame.
    by_val = all(val_score(m) == val_score(m) for m in one_step)
    if by_val:
        best = max(one_step, key=val_score)
    else:
        test = units[units["phase"] == "test"]
        best = max(
            one_step, key=lambda m: sign * float(test[test["method"] == m][task.primary].mean())
        )
    frames = []
    for method in names:
        if method == best:
            continue
        for metric in task.metrics:
            frame = paired_differences(
                units, metric, method, best, pooled=task.pooled, n_boot=n_boot, seed=seed
            )
            frames.append(frame.assign(baseline_chosen_by="validation" if by_val else "test"))
    for method, base in baseline_pairs(names):  # prompt+X vs prompt and X, X@paper vs X
        if base == best:
            continue  # every method was compared with the best one-step baseline above
        for metric in task.metrics:
            frame = paired_differences(
                units, metric, method, base, pooled=task.pooled, n_boot=n_boot, seed=seed
            )
            frames.append(frame.assign(baseline_chosen_by="design"))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def save_frame_json(frame: pd.DataFrame) -> str:
    """The frame as JSON records (for reports)."""
    return json.dumps(frame.to_dict(orient="records"), indent=2, default=str)

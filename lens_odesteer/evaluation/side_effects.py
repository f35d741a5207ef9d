"""Side effects of steering on capability: true-vs-false preference and neutral perplexity.

A steering gain that costs the model its knowledge or its language is not a gain. For every
method at its chosen strength (the same :class:`~lens_odesteer.hooks.SteeringPlan` the task was
scored with), two measurements on data unrelated to the task:

* **Facts** (``fact_pref``): the built-in facts set (150 true statements, each with a minimally
  edited false twin, written for this project: :func:`~lens_odesteer.datasets.load_builtin`).
  The two statements share a prefix ("The capital of France is"; ``"Fact:"`` for the 16 pairs
  that differ from their first word on); the preference is
  ``log p(true ending | prefix) - log p(false ending | prefix)``, with every position from the
  prefix's last token through the ending steered (the multiple-choice semantics). Reported as
  the paired change against the unsteered model, ``fact_pref_change``: negative means steering
  made the model prefer false statements more.
* **Neutral text** (``neutral_nll``): perplexity of ordinary web text, steered at every token
  after the first word: the full texts (prompt + continuation) of RealToxicityPrompts'
  non-toxic records (``realtoxicityprompts_decodingtrust/nontoxic.jsonl``) whose prompt and
  continuation both have Perspective toxicity below 0.1, a fixed seeded sample. Reported as
  ``neutral_ppl`` (``exp`` of the mean per-token negative log-likelihood over texts) and its
  ratio to the unsteered model's, ``neutral_ppl_ratio``. When the file is missing (no data
  folder) only the facts are measured.

:func:`side_effect_units` scores one plan (one row per fact pair and per text, tagged
``phase="side"`` by the runner); :func:`side_effect_summary` turns the rows of every method into
rows of the tidy summary (metric names prefixed ``side_``) with bootstrap intervals over items.
The prompting baselines' instruction is not applied here: these columns measure steering.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lens_odesteer.errors import DataNotFoundError, InvalidParameterError
from lens_odesteer.evaluation.stats import bootstrap_ci

__all__ = [
    "NEUTRAL_FILE",
    "SIDE_METRICS",
    "SideEffectData",
    "describe",
    "fact_pairs",
    "neutral_texts",
    "side_effect_data",
    "side_effect_summary",
    "side_effect_units",
]

#: The neutral-text source, relative to the data folder.
NEUTRAL_FILE = "realtoxicityprompts_decodingtrust/nontoxic.jsonl"
#: Summary metric names added by :func:`side_effect_summary`.
SIDE_METRICS: tuple[str, ...] = (
    "side_fact_pref_change",
    "side_neutral_ppl",
    "side_neutral_ppl_ratio",
)


@dataclass(frozen=True)
class SideEffectData:
    """The items side effects are measured on.

    Attributes:
        facts: ``(prefix, true ending, false ending)`` per built-in fact pair.
        neutral: ``(first word, rest)`` per neutral text.
        source: where the neutral texts come from (empty when there are none).
    """

    facts: list[tuple[str, str, str]]
    neutral: list[tuple[str, str]] = field(default_factory=list)
    source: str = ""


def _split_shared(true: str, false: str) -> tuple[str, str, str]:
    """``(shared word prefix, true ending, false ending)``; endings keep their leading space."""
    a, b = true.split(" "), false.split(" ")
    k = 0
    while k < min(len(a), len(b)) - 1 and a[k] == b[k]:
        k += 1
    if k == 0:  # the statements differ from their first word on
        return "Fact:", " " + true, " " + false
    return " ".join(a[:k]), " " + " ".join(a[k:]), " " + " ".join(b[k:])


def fact_pairs(n: int | None = None, *, seed: int = 0) -> list[tuple[str, str, str]]:
    """The built-in facts as ``(prefix, true ending, false ending)`` (up to ``n``, seeded).

    Example:
        >>> fact_pairs()[0]
        ('The capital of France is', ' Paris.', ' Rome.')
    """
    from lens_odesteer.datasets import load_builtin

    data = load_builtin("facts")
    pairs = [
        _split_shared(t, f)
        for t, f in zip(data.positive_texts(), data.negative_texts(), strict=True)
    ]
    if n is None or n >= len(pairs):
        return pairs
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    return [pairs[i] for i in sorted(order[:n])]


def neutral_texts(
    n: int = 32,
    *,
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    max_toxicity: float = 0.1,
) -> list[tuple[str, str]]:
    """Up to ``n`` neutral web texts as ``(first word, rest)``; see the module docstring.

    Raises:
        DataNotFoundError: the data folder lacks :data:`NEUTRAL_FILE`.
    """
    from lens_odesteer.datasets._text import json_lines, read_text
    from lens_odesteer.datasets.locate import find_data_dir

    path = find_data_dir(data_dir, need=[NEUTRAL_FILE]) / NEUTRAL_FILE
    texts = []
    for _, line in json_lines(read_text(path, "RealToxicityPrompts JSON Lines")):
        try:
            rec = json.loads(line)
            prompt, cont = rec["prompt"], rec["continuation"]
            tox = max(float(prompt.get("toxicity") or 1.0), float(cont.get("toxicity") or 1.0))
            text = (str(prompt["text"]) + str(cont["text"])).strip()
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        words = text.split(" ")
        if tox < max_toxicity and len(words) >= 6 and "\ufffd" not in text:
            texts.append((words[0], " " + " ".join(words[1:])))
    random.Random(seed).shuffle(texts)
    return texts[:n]


def side_effect_data(
    *,
    quick: bool = False,
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    log: Any = None,
) -> SideEffectData:
    """All 150 fact pairs and 32 neutral texts (``quick``: 24 and 8); see the module docstring."""
    facts = fact_pairs(24 if quick else None, seed=seed)
    try:
        neutral = neutral_texts(8 if quick else 32, seed=seed, data_dir=data_dir)
    except DataNotFoundError:
        if log is not None:
            log(f"side effects: no {NEUTRAL_FILE} in the data folder; neutral perplexity skipped")
        return SideEffectData(facts)
    return SideEffectData(facts, neutral, NEUTRAL_FILE)


def side_effect_units(
    model: Any,
    plan: Any,
    data: SideEffectData,
    *,
    batch_size: int = 16,
) -> pd.DataFrame:
    """One row per fact pair (``fact_pref``) and per neutral text (``neutral_nll``) under ``plan``.

    Units are ``"fact<i>"`` and ``"text<j>"``; ``plan`` None scores the unsteered model.
    """
    from lens_odesteer.activations import answer_spans
    from lens_odesteer.evaluation.likelihood import answer_logprobs

    if not data.facts:
        raise InvalidParameterError("`data.facts` is empty; side effects need fact pairs.")
    prompts = [p for p, _, _ in data.facts] * 2
    answers = [t for _, t, _ in data.facts] + [f for _, _, f in data.facts]
    lp = answer_logprobs(model, prompts, answers, plan, batch_size=batch_size)
    k = len(data.facts)
    rows: list[dict[str, Any]] = [
        {"unit": f"fact{i}", "seed": 0, "fact_pref": float(lp[i] - lp[k + i])} for i in range(k)
    ]
    if data.neutral:
        first = [a for a, _ in data.neutral]
        rest = [b for _, b in data.neutral]
        lp_text = answer_logprobs(model, first, rest, plan, batch_size=batch_size)
        _, spans = answer_spans(model, first, rest)
        for j, (value, (start, end)) in enumerate(zip(lp_text, spans, strict=True)):
            rows.append(
                {"unit": f"text{j}", "seed": 0, "neutral_nll": -float(value) / (end - start)}
            )
    return pd.DataFrame(rows)


def _per_item(frame: pd.DataFrame, metric: str) -> pd.Series:
    sub = frame.dropna(subset=[metric])
    uid = sub["split"].astype(str) + ":" + sub["unit"].astype(str)
    return sub.assign(uid=uid).groupby("uid", sort=True)[metric].mean()


def side_effect_summary(
    units: pd.DataFrame,
    *,
    reference: str = "none",
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Summary rows (``group="all"``) of the side effects of every method in ``units``.

    Reads the ``phase == "side"`` rows; per method: ``side_fact_pref_change`` (mean paired
    change of the true-over-false log-likelihood preference against ``reference``),
    ``side_neutral_ppl`` and ``side_neutral_ppl_ratio`` (against ``reference``, from the paired
    per-token NLL differences), each with a percentile bootstrap interval over items. Columns
    as :func:`~lens_odesteer.evaluation.summary.summarize`'s.
    """
    side = units[units["phase"] == "side"] if "phase" in units.columns else units.iloc[:0]
    if side.empty:
        return pd.DataFrame()
    ref = side[side["method"] == reference]
    rows = []
    for method, sub in side.groupby("method", sort=False):
        ts = sub.groupby("split", sort=True)["T"].first()
        common = {
            "group": "all",
            "method": method,
            "n_seeds": 1,
            "seed_sd": 0.0,
            "T": "/".join(f"{t:.4g}" for t in ts.to_numpy()),
            "T_mean": float(ts.mean()),
        }

        def add(
            metric: str, values: np.ndarray, transform: Any = None, common: dict = common
        ) -> None:
            values = values[np.isfinite(values)]
            if values.size == 0:
                return
            est, low, high = bootstrap_ci(values, level=level, n_boot=n_boot, seed=seed)
            if transform is not None:
                est, low, high = transform(est), transform(low), transform(high)
            rows.append(
                {
                    **common,
                    "metric": metric,
                    "estimate": est,
                    "ci_low": low,
                    "ci_high": high,
                    "n_units": int(values.size),
                }
            )

        if "fact_pref" in side.columns and not ref.empty:
            a, b = _per_item(sub, "fact_pref"), _per_item(ref, "fact_pref")
            shared = a.index.intersection(b.index)
            add("side_fact_pref_change", (a.loc[shared] - b.loc[shared]).to_numpy(dtype=float))
        if "neutral_nll" in side.columns:
            nll = _per_item(sub, "neutral_nll")
            add("side_neutral_ppl", nll.to_numpy(dtype=float), np.exp)
            if not ref.empty:
                b = _per_item(ref, "neutral_nll")
                shared = nll.index.intersection(b.index)
                diff = (nll.loc[shared] - b.loc[shared]).to_numpy(dtype=float)
                add("side_neutral_ppl_ratio", diff, np.exp)
    return pd.DataFrame(rows)


def describe(data: SideEffectData) -> dict[str, Any]:
    """What the side effects were measured on (for ``results.json``)."""
    return {
        "facts": f"built-in facts, {len(data.facts)} true/false pairs (shared prefix, endings)",
        "neutral": f"{data.source}: {len(data.neutral)} texts with toxicity < 0.1"
        if data.neutral
        else "none (data file missing)",
        "steered_positions": "facts: last prefix token through the ending; neutral text: "
        "every token after the first word",
    }

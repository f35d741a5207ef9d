"""Load time of the default model: first load (GGUF into an empty cache) and cached loads.

Each load runs in a fresh Python process (``python -c``), as a user's session would, so nothing
(imported modules aside, which are warm in the OS file cache after the first run) is shared
between loads: the first one dequantises the GGUF into an empty temporary cache directory, the
others load that cache. The time is measured inside the process around ``load_model`` only
(the interpreter and ``import lens_odesteer`` are reported separately).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile

from benchmarks._timing import machine

_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
import lens_odesteer as lo
t1 = time.perf_counter()
model = lo.load_model(cache_dir=sys.argv[1], progress=False)
t2 = time.perf_counter()
logits = model("Hello there", return_type="logits")
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "check": float(logits[0, -1, :5].sum())}))
"""


def _load_once(cache: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, cache], capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run(quick: bool = False) -> None:
    n_cached = 2 if quick else 5
    print("== load: SmolLM2-135M-Instruct via lo.load_model, each load in a fresh process")
    print(f"   machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="lo-bench-cache-") as cache:
        first = _load_once(cache)
        cached = [_load_once(cache) for _ in range(n_cached)]
    med = statistics.median(c["load_s"] for c in cached)
    imp = statistics.median(c["import_s"] for c in cached)
    same = all(c["check"] == first["check"] for c in cached)
    print(f"    first load (GGUF -> empty cache)  {first['load_s']:7.2f} s")
    print(
        f"    cached load (median of {n_cached})       {med:7.2f} s   "
        f"(first / cached x{first['load_s'] / med:.1f}; import lens_odesteer {imp:.2f} s)"
    )
    print(f"    same logits from the GGUF and from the cache: {same}")
    print(f"   target: cached load < 5 s: {'met' if med < 5.0 else 'NOT met'}")


if __name__ == "__main__":
    run()

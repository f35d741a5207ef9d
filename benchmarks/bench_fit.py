"""Wall time and held-out accuracy of fitting ODESteer on 4,000 + 4,000 activations of width 576.

Baseline in the same run: scikit-learn's default L2 ``LogisticRegression(C=1, lbfgs)`` on the
same sketch features (what the reference implementation does).
"""

from __future__ import annotations

import time

import torch

import lens_odesteer as lo


def _data(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    direction = torch.randn(d, generator=gen)
    direction /= direction.norm()
    base = torch.randn(d, generator=gen) * 5
    pos = torch.randn(n, d, generator=gen) * 1.0 + base + 0.6 * direction
    neg = torch.randn(n, d, generator=gen) * 1.0 + base - 0.6 * direction
    return pos, neg


def _accuracy(scores: torch.Tensor, n_pos: int) -> float:
    labels = torch.arange(len(scores)) < n_pos
    return float(((scores > 0) == labels).float().mean())


def run() -> None:
    print("== fit: ODESteer on 4000 + 4000 activations, d_model=576 (sketch n=8000)")
    pos, neg = _data(4000 + 1000, 576, 0)
    tr_p, tr_n, te = pos[:4000], neg[:4000], torch.cat([pos[4000:], neg[4000:]])
    start = time.perf_counter()
    ode = lo.ODESteer().fit(tr_p, tr_n)
    t_ours = time.perf_counter() - start
    acc_ours = _accuracy(ode.barrier_.logit(te), 1000)
    print(f"    ODESteer.fit (torch L-BFGS)         {t_ours:8.2f} s   held-out acc {acc_ours:.3f}")
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        print("    scikit-learn not installed: baseline skipped")
        return
    fm = ode.barrier_.features_
    feats = torch.cat([fm.transform(tr_p), fm.transform(tr_n)]).numpy()
    labels = [1] * 4000 + [0] * 4000
    start = time.perf_counter()
    clf = LogisticRegression(C=1.0, max_iter=1000).fit(feats, labels)
    t_ref = time.perf_counter() - start
    acc_ref = _accuracy(torch.from_numpy(clf.decision_function(fm.transform(te).numpy())), 1000)
    print(f"    sklearn LogisticRegression (lbfgs)   {t_ref:8.2f} s   held-out acc {acc_ref:.3f}")
    print(f"    ratio ours / sklearn: x{t_ours / t_ref:.2f} (sklearn time excludes features)")


if __name__ == "__main__":
    run()

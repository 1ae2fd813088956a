"""Node-scores benchmark: every node of a ~2,000-node tree, ~1,000,000 votes over ~100 models.

Builds a synthetic arena in a temporary DuckDB (no embeddings): a random hierarchy (a random
leaf is split into 2-8 children until the tree has ``--nodes`` nodes), ``--prompts`` prompts
spread over the leaves with uneven (Dirichlet) sizes, and ``--votes`` votes on Zipf-popular
prompts between popularity-skewed models, with Bradley-Terry outcomes from per-branch model
strengths, ~15% ties, and 2% of votes on prompts outside the tree. Tables are filled directly
(not through the import adapters, which bench_import.py times).

Then ``compute_node_scores`` end to end with ``--ci`` node intervals (default sandwich, the
stored default; ``bootstrap``: ``--rounds`` rounds), and a breakdown from
its own timings: aggregation (one DuckDB GROUP BY per member node x pair x outcome), summing up
the tree (one sparse product), per-(node, model) win rates + Wilson intervals, and the node
Bradley-Terry fits + bootstraps (pipelines.ratings), plus storing (one transaction + publishing
the read snapshot). Target: < 60 s.

Peer: the naive way, one DuckDB query per node over its subtree's prompts (path prefix) plus
``ratings.aggregate``, timed on ``--naive-sample`` nodes and extrapolated to the whole tree,
against the aggregate-once-and-sum approach.

The machine is shared: the load average is printed. No assertions.
Usage: ``python bench/bench_node_scores.py [--nodes 2000] [--votes 1000000] [--models 100]
[--rounds 100] [--ci sandwich|bootstrap] [--seed 0] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines import ratings, store  # noqa: E402
from pipelines.scores import compute_node_scores, stored_node_scores  # noqa: E402

TARGET_S = 60.0
DATASET = "synthetic"
TREE_ID = "synthetic:bench"


def random_tree(n_nodes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(parent, depth) of a random tree with about ``n_nodes`` nodes, root 0, in preorder."""
    parent, depth, leaves = [-1], [0], [0]
    while len(parent) < n_nodes:
        leaf = leaves.pop(rng.integers(len(leaves)))
        for _ in range(min(int(rng.integers(2, 9)), n_nodes - len(parent)) or 1):
            parent.append(leaf)
            depth.append(depth[leaf] + 1)
            leaves.append(len(parent) - 1)
    # renumber in depth-first preorder (children in creation order), as the nodes table wants
    children: dict[int, list[int]] = {}
    for i, p in enumerate(parent[1:], start=1):
        children.setdefault(p, []).append(i)
    order, stack = [], [0]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(reversed(children.get(node, [])))
    new = np.empty(len(parent), dtype=np.int64)
    new[order] = np.arange(len(parent))
    old_parent = np.array(parent)
    pre_parent = np.full(len(parent), -1)
    pre_parent[new[1:]] = new[old_parent[1:]]
    return pre_parent, np.array(depth)[order]


def paths(parent: np.ndarray) -> list[str]:
    """Dotted child-index paths ('0', '0.1', ...) of a preorder tree."""
    out = ["0"] + [""] * (len(parent) - 1)
    seen = np.zeros(len(parent), dtype=np.int64)
    for i in range(1, len(parent)):
        p = parent[i]
        out[i] = f"{out[p]}.{seen[p]}"
        seen[p] += 1
    return out


def build_db(db: Path, args: argparse.Namespace) -> dict:
    """Fill a fresh database with the synthetic dataset and tree; returns shape counts."""
    rng = np.random.default_rng(args.seed)
    parent, depth = random_tree(args.nodes, rng)
    n = len(parent)
    n_children = np.bincount(parent[1:], minlength=n)
    leaves = np.flatnonzero(n_children == 0)
    # prompts to leaves, uneven leaf sizes
    share = rng.dirichlet(np.full(len(leaves), 0.7))
    prompt_leaf = leaves[rng.choice(len(leaves), args.prompts, p=share)]
    prompt_ids = np.array([f"p{i:07d}" for i in range(args.prompts)])
    # model strength: global + per depth-1 branch deviation
    top = np.zeros(n, dtype=np.int64)
    for i in range(1, n):
        top[i] = i if parent[i] == 0 else top[parent[i]]
    branches = np.unique(top[1:])
    strength = rng.normal(0, 1.0, args.models)[None, :] + rng.normal(0, 0.4, (len(branches), args.models))
    branch_row = pd.Index(branches).get_indexer(top[prompt_leaf])
    # votes
    m = args.votes
    zipf = 1 / np.arange(1, args.prompts + 1) ** 0.6
    prompt = rng.choice(args.prompts, m, p=zipf / zipf.sum())
    pop = rng.dirichlet(np.full(args.models, 2.0))
    a = rng.choice(args.models, m, p=pop)
    b = rng.choice(args.models - 1, m, p=None)
    b = b + (b >= a)
    d = strength[branch_row[prompt], a] - strength[branch_row[prompt], b]
    p_a = 1 / (1 + np.exp(-d))
    u = rng.random(m)
    tie = 0.15
    outcome = np.where(u < p_a * (1 - tie), 0, np.where(u < 1 - (1 - p_a) * (1 - tie), 2, 1))
    outcome[(outcome == 2) & (rng.random(m) < 0.3)] = 3
    winner = np.array(["model_a", "model_b", "tie", "tie_bothbad"], dtype=object)[outcome]
    outside = rng.random(m) < 0.02
    vote_prompt = np.where(outside, np.char.add("x", prompt.astype(str)), prompt_ids[prompt])
    names = np.array([f"model-{i:03d}" for i in range(args.models)])
    votes = pa.table(
        {
            "battle_id": [f"v{i:08d}" for i in range(m)],
            "prompt_id": vote_prompt,
            "model_a": names[a],
            "model_b": names[b],
            "winner": winner,
            "judge": np.char.add("voter-", rng.integers(0, 20_000, m).astype(str)),
            "tstamp": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365 * 86400, m), unit="s"),
        }
    )
    nodes = pd.DataFrame(
        {
            "node_id": np.arange(n, dtype=np.int32),
            "parent_id": pd.array([None if p < 0 else int(p) for p in parent], dtype="Int32"),
            "depth": depth.astype(np.int32),
            "path": paths(parent),
            "n_children": n_children.astype(np.int32),
        }
    )
    leaf_size = np.bincount(prompt_leaf, minlength=n)
    nodes["size"] = (np.eye(1) if n == 1 else _subtree_sums(parent, leaf_size)).astype(np.int32)
    members = pd.DataFrame({"node_id": prompt_leaf.astype(np.int32), "prompt_id": prompt_ids})
    with store.writer(db) as con, store.transaction(con):
        store.run(con, "INSERT INTO datasets VALUES (?, 'pairwise', 'bench', now()::TIMESTAMP)", [DATASET])
        store.run(
            con,
            "INSERT INTO imports VALUES ('bench-import', ?, 'synthetic', 'x', 'bench', NULL, NULL, ?, 0, "
            "NULL, 0, ?, 0, 0, 0, 'bench', now()::TIMESTAMP)",
            [DATASET, m, m],
        )
        con.register("v", votes)
        store.run(
            con,
            "INSERT INTO battles (dataset, battle_id, prompt_id, model_a, model_b, winner, judge, "
            "judge_kind, tstamp, anony, import_id) SELECT ?, battle_id, prompt_id, model_a, model_b, "
            "winner, judge, 'human', tstamp, true, 'bench-import' FROM v",
            [DATASET],
        )
        con.unregister("v")
        store.run(
            con,
            "INSERT INTO trees VALUES (?, ?, now()::TIMESTAMP, 'bench', 'bench', 'bench', '{}', "
            "?, ?, ?, ?, 0, 'bench')",
            [TREE_ID, DATASET, args.prompts, n, len(leaves), int(depth.max())],
        )
        con.register("n", nodes)
        store.run(
            con,
            "INSERT INTO nodes SELECT ?, node_id, parent_id, depth, path, size, n_children, NULL, "
            "'node ' || node_id, [], NULL, []::FLOAT[], NULL FROM n",  # distinguishing: NULL
            [TREE_ID],
        )
        con.unregister("n")
        con.register("mem", members)
        store.run(con, "INSERT INTO node_members SELECT ?, node_id, prompt_id, 'bench' FROM mem", [TREE_ID])
        con.unregister("mem")
    return {
        "nodes": n,
        "leaves": len(leaves),
        "max_depth": int(depth.max()),
        "prompts": args.prompts,
        "votes": m,
        "models": args.models,
    }


def _subtree_sums(parent: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sum of ``values`` over each node's subtree (preorder: children come after parents)."""
    out = values.astype(np.int64).copy()
    for i in range(len(parent) - 1, 0, -1):
        out[parent[i]] += out[i]
    return out


def naive_per_node(db: Path, sample: int, seed: int) -> tuple[float, int]:
    """Seconds per node of the naive approach (rescan the votes of the node's subtree and
    aggregate them), measured on ``sample`` random nodes; and the number of nodes."""
    with store.reader(db) as con:
        ids = [r[0] for r in store.run(con, "SELECT node_id FROM nodes WHERE tree_id = ?", [TREE_ID])]
        pick = np.random.default_rng(seed).choice(ids, min(sample, len(ids)), replace=False)
        t = time.perf_counter()
        for node_id in pick:
            df = con.execute(
                """
                SELECT b.model_a, b.model_b, b.winner FROM battles b
                JOIN node_members m ON m.prompt_id = b.prompt_id AND m.tree_id = ?
                JOIN nodes n ON n.tree_id = m.tree_id AND n.node_id = m.node_id
                WHERE b.dataset = ? AND (n.path = (SELECT path FROM nodes WHERE tree_id = ? AND node_id = ?)
                   OR starts_with(n.path, (SELECT path FROM nodes WHERE tree_id = ? AND node_id = ?) || '.'))
                """,
                [TREE_ID, DATASET, TREE_ID, int(node_id), TREE_ID, int(node_id)],
            ).df()
            if len(df):
                ratings.aggregate(df)
        return (time.perf_counter() - t) / len(pick), len(ids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=2000)
    ap.add_argument("--votes", type=int, default=1_000_000)
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--prompts", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--naive-sample", type=int, default=40)
    ap.add_argument("--ci", choices=["sandwich", "bootstrap"], default="sandwich", help="node intervals")
    ap.add_argument("--keep", type=Path, help="folder to keep the database in (default: a temp dir)")
    args = ap.parse_args()

    print(f"load average at start: {os.getloadavg()}  cpus: {os.cpu_count()}", flush=True)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_node_scores_"))
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "bench.duckdb"
    if db.exists():
        for p in folder.glob("bench.duckdb*"):
            p.unlink()
    t = time.perf_counter()
    shape = build_db(db, args)
    print(f"synthetic data: {shape}  (built in {time.perf_counter() - t:.1f} s)", flush=True)

    t0 = time.perf_counter()
    shown = {"fit": -1}

    def progress(stage: str, frac: float) -> None:
        """Print the fit stage every 10% (it dominates), with elapsed time, on stderr."""
        step = int(frac * 10)
        if stage == "fit" and step > shown["fit"]:
            shown["fit"] = step
            print(f"  fits {frac:4.0%} after {time.perf_counter() - t0:7.1f} s", file=sys.stderr, flush=True)

    run_id = compute_node_scores(
        db, DATASET, TREE_ID, rounds=args.rounds, seed=args.seed, progress=progress, ci=args.ci
    )
    total = time.perf_counter() - t0
    with store.reader(db) as con:
        row = con.execute("SELECT info, seconds FROM score_runs WHERE run_id = ?", [run_id]).fetchall()[0]
        table = stored_node_scores(con, run_id)
    info = json.loads(row[0])
    sec = info["seconds"]
    store_s = total - row[1]
    how = "sandwich intervals" if args.ci == "sandwich" else f"{args.rounds} bootstrap rounds"
    print(f"\ncompute_node_scores, {shape['nodes']:,} nodes, {how}:")
    print(f"  aggregation (DuckDB, once)        {sec['aggregate']:8.2f} s")
    print(f"  summing up the tree (sparse)      {sec['sum']:8.2f} s")
    print(f"  win rates + Wilson intervals      {sec['stats']:8.2f} s")
    print(
        f"  BT fits + intervals, all nodes    {sec['fit']:8.2f} s   ({info['fitted_nodes']:,} nodes fitted)"
    )
    print(f"  storing + snapshot + session      {store_s:8.2f} s   ({len(table):,} rows)")
    print(f"  total                             {total:8.2f} s   target < {TARGET_S:.0f} s: "
          f"{'met' if total < TARGET_S else 'NOT met'}")  # fmt: skip

    t = time.perf_counter()
    compute_node_scores(db, DATASET, TREE_ID, rounds=args.rounds, seed=args.seed, ci=args.ci)
    print(f"  rerun (stored, keyed)             {time.perf_counter() - t:8.2f} s")

    per_node, n_nodes = naive_per_node(db, args.naive_sample, args.seed)
    once = sec["aggregate"] + sec["sum"]
    print(
        f"\npeer: naive per-node rescan + ratings.aggregate: {per_node * 1e3:.1f} ms/node "
        f"(on {args.naive_sample} nodes) -> {per_node * n_nodes:.1f} s for {n_nodes:,} nodes; "
        f"aggregate-once + sum: {once:.2f} s  (ratio {per_node * n_nodes / once:.0f}x)"
    )
    print(f"\nload average at end: {os.getloadavg()}   database: {db}")


if __name__ == "__main__":
    main()

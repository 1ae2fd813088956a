"""Weakness-profile validity: recovery of planted weaknesses (EvalTree's ground-truth assessment).

Prints, in one run (no assertions; ``tests/test_weakness_validity.py`` holds the floors):

1. **MATH** (5,000 problems, the offline MiniLM embeddings cached by the math tree build).
   Per seed s: plant weaknesses (``content``: 4 of 17 keyword-defined item sets; ``subject``:
   3 of the subject / subject x level-band sets), sample synthetic 0/1 results with
   P(correct) = 0.7 · d^k (k = planted sets holding the item) for d in {0.2, 0.4, 0.5}, build
   the trees with ``random_state=s`` and score every method by item-level precision, recall
   and F1 of the extracted nodes against the planted items:

   * ``EvalTree, faithful tree, best τ`` — the reference protocol: a faithful EvalTree tree
     (``RecursiveKMeans(min_size=1, refine_levels=0)``: recursion to single items, no level
     refinement), Clopper–Pearson 95% intervals (none under 5 items), the extraction rule, and
     the best F1 over every distinct profile of the τ sweep (an oracle choice of τ);
   * ``EvalTree, faithful tree, τ = accuracy`` — the same at τ = the model's overall accuracy
     (no oracle);
   * ``EvalTree, project tree, best τ`` / ``τ = accuracy`` — the same rule on the project's
     default tree (``RecursiveKMeans()``: min_size 3, refine_levels 2);
   * ``pruning, project tree`` — ours: penalised-likelihood pruning of the project tree, every
     node's gain against the model's overall accuracy, penalty 4.77 nats (an isolated node
     needs one-sided p < 0.001); no oracle;
   * ``pruning, project tree, best penalty`` — the same with the best penalty of a grid.

2. **Arena** (``pipelines.simulate``: votes between simulated models over the real bundled
   prompts, planted (model, keyword group) rating offsets). Per seed: simulate, ingest into a
   copy of the database, build the offline tree, aggregate node cells, and score per model with
   planted weaknesses (mean F1 over them), plus the items extracted for models without any:

   * ``baseline z, topmost`` / ``baseline z, EvalTree walk`` — the plain per-node z-test: each
     node's own Bradley–Terry fit against the global rating (Fisher-information standard error),
     p <= 0.05 per node, topmost significant nodes / EvalTree's walk;
   * ``adjusted + BH, topmost`` — ours: the opponent-adjusted score test, Benjamini–Hochberg at
     q = 0.05 over the model's nodes, topmost discoveries;
   * ``adjusted + pruning`` — ours: the same test's z²/2 as the gain of penalised pruning
     (penalty 4.77 nats).

Usage::

    python bench/bench_weakness_validity.py [--db PATH] [--seeds 5] [--arena-seeds 3]
        [--arena-votes 50000] [--arena-models 12] [--skip-arena]

``--db``: a database with the bundled MATH data and its tree (``arenatree demo --no-serve``;
default ``$ARENATREE_DB`` or data/arenatree.duckdb). It is only read; the arena part works on
temporary copies.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines import store  # noqa: E402
from pipelines.tree.cluster import RecursiveKMeans  # noqa: E402
from pipelines.weaknesses import validity as V  # noqa: E402

DS = (0.2, 0.4, 0.5)
PENALTIES = (2.0, 3.0, 4.0, V.DEFAULT_PENALTY, 6.0, 8.0)
FAITHFUL = {"min_size": 1, "refine_levels": 0}


def math_rows(items: pd.DataFrame, X: np.ndarray, seeds: range) -> pd.DataFrame:
    """One row per (family, d, seed, method): precision, recall, f1."""
    families = {
        "content": (V.content_sets(items["text"]), 4),
        "subject": (V.subject_level_sets(items["subject"], items["level"]), 3),
    }
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        trees = {
            "faithful": V.cluster_nodes(RecursiveKMeans(random_state=seed, **FAITHFUL).fit(X)),
            "project": V.cluster_nodes(RecursiveKMeans(random_state=seed).fit(X)),
        }
        for family, (sets, n_weak) in families.items():
            for d in DS:
                rng = np.random.default_rng([seed, int(d * 100), len(family)])
                names, planted, correct = V.plant(sets, n_weak, d, rng)
                acc = float(correct.mean())
                out = {}
                for tree, (nodes, leaf) in trees.items():
                    out[f"EvalTree, {tree} tree, best τ"] = V.evaltree_best(nodes, leaf, correct, planted)[0]
                    at = V.evaltree_at(nodes, leaf, correct, planted, acc)
                    out[f"EvalTree, {tree} tree, τ = accuracy"] = at
                nodes, leaf = trees["project"]
                out["pruning, project tree"] = V.pruned_profile(nodes, leaf, correct, planted)
                grid = [V.pruned_profile(nodes, leaf, correct, planted, p) for p in PENALTIES]
                out["pruning, project tree, best penalty"] = max(grid, key=lambda s: s.f1)
                for method, s in out.items():
                    rows.append(
                        {
                            "family": family,
                            "d": d,
                            "seed": seed,
                            "method": method,
                            "precision": s.precision,
                            "recall": s.recall,
                            "f1": s.f1,
                            "planted": s.planted,
                            "weaknesses": ", ".join(names),
                        }
                    )
        print(f"  seed {seed}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return pd.DataFrame(rows)


def arena_rows(
    db: Path, seeds: range, votes: int, models: int, plant_groups: list[str] | None = None
) -> pd.DataFrame:
    """One row per (seed, method, model) from :func:`pipelines.weaknesses.validity.arena_recovery`,
    plus the selected view (:mod:`pipelines.weaknesses.stepwise`) over nodes + facets and over
    facets alone. ``plant_groups``: the simulator groups weaknesses are planted on (None: every
    keyword group, sizes 50-400; else those, sizes 50-1100)."""
    from pipelines import scores
    from pipelines.ingest import ingest
    from pipelines.simulate import simulate
    from pipelines.tree.build import build_tree
    from pipelines.tree.read import resolve_tree, tree_nodes
    from pipelines.weaknesses import stepwise as S

    out = []
    with tempfile.TemporaryDirectory(prefix="arenatree-validity-") as tmp:
        work = Path(tmp) / "arenatree.duckdb"
        shutil.copy(db, work)  # the copy keeps the embedding cache: the bundled prompts are not re-embedded
        for seed in seeds:
            t0 = time.perf_counter()
            sim = Path(tmp) / f"sim{seed}"
            made = simulate(
                sim,
                votes=votes,
                models=models,
                voters=max(100, votes // 100),
                seed=seed,
                plant_groups=plant_groups,
                group_size=(50, 400) if plant_groups is None else (50, 1100),
            )
            dataset = f"validity-sim{seed}"
            ingest([made["files"]["votes"]], dataset, db=work)
            build_tree(dataset, db=work)
            truth = json.loads(Path(made["files"]["truth"]).read_text())
            with store.reader(work) as con:
                tree_id = resolve_tree(con, dataset)
                nodes = tree_nodes(con, tree_id)
                members = con.execute(
                    "SELECT node_id, prompt_id FROM node_members WHERE tree_id = ? ORDER BY prompt_id",
                    [tree_id],
                ).df()
                cells = scores.node_cells(con, dataset, tree_id)
                both = S.load_groups(con, dataset, tree_id)
                facets = S.load_groups(con, dataset, None)
            res = V.arena_recovery(nodes, members, cells, truth)
            out.append(res.assign(seed=seed))
            rows = []
            for method, (sv, cand) in (("selected: nodes + facets", both), ("selected: facets only", facets)):
                weak = V.planted_by_model(truth, cand.prompt_ids)
                tables = S.arena_weaknesses(sv, cand)
                for model in sv.models:
                    planted = weak.get(model, np.zeros(len(cand.prompt_ids), bool))
                    s = V.recovery(planted, S.chosen_prompts(cand, tables[model], "weak"))
                    rows.append(
                        {
                            "method": method,
                            "model": model,
                            "planted": bool(planted.any()),
                            "precision": s.precision,
                            "recall": s.recall,
                            "f1": s.f1,
                            "extracted": s.extracted,
                            "n_planted": s.planted,
                            "seed": seed,
                        }
                    )
            out.append(pd.DataFrame(rows))
            shutil.rmtree(sim)
            print(f"  arena seed {seed}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return pd.concat(out, ignore_index=True)


def show(title: str, frame: pd.DataFrame, index: list[str], columns: list[str]) -> None:
    print(f"\n{title}")
    print(frame.pivot_table(index=index, columns=columns, values="f1", aggfunc="mean").round(3).to_string())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", default=os.environ.get("ARENATREE_DB", str(ROOT / "data" / "arenatree.duckdb")))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--arena-seeds", type=int, default=3)
    ap.add_argument("--arena-votes", type=int, default=50_000)
    ap.add_argument("--arena-models", type=int, default=12)
    ap.add_argument("--skip-arena", action="store_true")
    ap.add_argument("--skip-math", action="store_true")
    ap.add_argument(
        "--capabilities",
        action="store_true",
        help="arena: plant weaknesses on coding, math, creative writing and non-English prompts",
    )
    args = ap.parse_args()
    db = Path(args.db)
    pd.set_option("display.width", 220)
    pd.set_option("display.max_columns", 40)

    families = () if args.skip_math else ("content", "subject")
    if families:
        print("MATH: planted-weakness recovery, item-level F1 (P(correct) = 0.7·d^k)")
        with store.reader(db) as con:
            items, X = V.math_items(con)
        m = math_rows(items, X, range(args.seeds))
    for family in families:
        sub = m[m["family"] == family]
        show(f"[{family}] F1 per seed (rows: method, d)", sub, ["method", "d"], ["seed"])
        summary = sub.groupby(["method", "d"])[["precision", "recall", "f1"]].mean().unstack("d").round(3)
        print(f"\n[{family}] mean over {args.seeds} seeds: precision / recall / F1 per d")
        print(summary.to_string())

    if not args.skip_arena:
        print(f"\nArena: {args.arena_votes:,} simulated votes, {args.arena_models} models, keyword groups")
        groups = ["coding", "math", "creative_writing", "non_english"] if args.capabilities else None
        a = arena_rows(db, range(args.arena_seeds), args.arena_votes, args.arena_models, groups)
        planted = a[a["planted"]]
        show("[arena] mean F1 over models with planted weaknesses, per seed", planted, ["method"], ["seed"])
        summary = planted.groupby("method")[["precision", "recall", "f1"]].mean().round(3)
        clean = a[~a["planted"]].groupby("method")["extracted"].mean().rename("items flagged, clean models")
        print("\n[arena] mean over seeds and planted models; items extracted for models without weaknesses")
        print(summary.join(clean.round(1)).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Tree-build benchmark: ``build_tree`` end to end, from an empty database to a stored tree.

Prints, in one run (every measurement in its own child process: wall time, and peak resident
memory from the child's ``ru_maxrss``, since DuckDB and torch allocate natively):

1. MATH (5,000 problems), fully offline, empty caches: ``pipelines.ingest.ingest`` into a fresh
   DuckDB, then ``build_tree("math")`` cold, split by the build's own progress callbacks into
   open+read items / annotate / embed / cluster+describe+store (the last includes publishing the
   read snapshot). Target: import + build < 3 minutes.
2. The same tree rebuilt with ``force=True`` (annotations and embeddings cached: everything but
   the embedding), and a plain rerun (returns the stored tree).
3. 100,000 distinct synthetic prompts ("(variant i) " + a MATH problem; a prefix, so the offline
   annotator's 500-character truncation keeps them distinct) imported as a generic votes
   Parquet into a second fresh database, with their embeddings written straight into the
   ``embeddings`` cache (the 5,000 MATH embeddings from step 1 plus gaussian noise, sd 0.02 per
   coordinate, re-normalised; nothing is embedded twice), then ``build_tree`` timed.
   Target: < 2 minutes.
4. The peer, on the same 5,000 MATH embeddings (read from the step-1 cache): the faithful
   EvalTree-style ``ReferenceTree`` of ``bench/bench_tree_cluster.py`` against
   ``RecursiveKMeans`` with the build's settings: fit-time ratio and depth-1/2 NMI / purity
   against the MATH ``type``.

The machine is shared: the load average is printed at the start and the end. No assertions.
Usage: ``python bench/bench_tree_build.py [--keep DIR] [--skip-peer]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MATH_TARGET_S = 180.0
BIG_TARGET_S = 120.0
BIG_N = 100_000
NOISE = 0.02  # as bench_tree_cluster.py's 100k points: neighbours of a MATH problem, not copies


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _emit(info: dict) -> None:
    print(json.dumps(info, default=str), flush=True)


class _Marks:
    """``on_progress`` callback that timestamps the first report of every stage."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    def __call__(self, stage: str, fraction: float) -> None:
        self.at.setdefault(stage.split(" ")[0], time.perf_counter())


def _timed_build(dataset: str, db: str, **kw) -> dict:
    """``build_tree`` with its stage split: seconds per stage, total, tree shape."""
    from pipelines.tree.build import build_tree

    marks = _Marks()
    start = time.perf_counter()
    tree = build_tree(dataset, db=db, on_progress=marks, **kw)
    end = time.perf_counter()
    order = [("open", start), *((s, marks.at[s]) for s in ("annotate", "embed", "cluster") if s in marks.at)]
    stages = {name: (order[i + 1][1] if i + 1 < len(order) else end) - t for i, (name, t) in enumerate(order)}
    return {
        "seconds": end - start,
        "stages": stages,
        "cached": bool(tree["cached"]),
        "n_items": int(tree["n_items"]),
        "n_nodes": int(tree["n_nodes"]),
        "n_leaves": int(tree["n_leaves"]),
        "max_depth": int(tree["max_depth"]),
    }


# ---------------------------------------------------------------- children


def child_ingest(path: str, dataset: str, db: str) -> None:
    t = time.perf_counter()
    from pipelines.ingest import ingest

    modules = time.perf_counter() - t
    t = time.perf_counter()
    report = ingest([path], dataset, db=db)[0]
    secs = time.perf_counter() - t
    _emit({"modules": modules, "seconds": secs, "peak_mb": _peak_mb(), "prompts": report.added_prompts})


def child_build(dataset: str, db: str, mode: str) -> None:
    """mode 'cold': one build; 'rebuild': force=True, then a plain rerun."""
    t = time.perf_counter()
    import pipelines.tree.build  # noqa: F401

    modules = time.perf_counter() - t
    info = {"modules": modules}
    if mode == "cold":
        info["build"] = _timed_build(dataset, db)
    else:
        info["build"] = _timed_build(dataset, db, force=True)
        info["rerun"] = _timed_build(dataset, db)
    info["peak_mb"] = _peak_mb()
    _emit(info)


def child_prepare_big(math_db: str, big_db: str, folder: str) -> None:
    """Read the MATH embeddings from the step-1 cache (saved for the peer too), write the 100k
    votes Parquet, import it, and put the 100k embeddings into the cache of ``big_db``."""
    import pandas as pd
    import pyarrow as pa

    from pipelines.ingest import ingest
    from pipelines.ingest.load import text_hash
    from pipelines.store import run, transaction, writer
    from pipelines.tree.base import OfflineAnnotator
    from pipelines.tree.build import cached_embeddings, dataset_items
    from pipelines.tree.embed import MiniLMEmbedder

    ann, emb = OfflineAnnotator(), MiniLMEmbedder()
    with writer(math_db) as con:
        items = dataset_items(con, "math")
        X = cached_embeddings(con, emb, ann.annotate(items["text"].tolist()))  # all cached: no model
        types = con.execute(
            "SELECT metadata->>'type' FROM prompts WHERE dataset = 'math' ORDER BY prompt_id"
        ).fetchall()
    out = Path(folder)
    np.save(out / "math_X.npy", X)
    np.save(out / "math_type.npy", np.array([t for (t,) in types]))

    base = np.arange(BIG_N) % len(X)
    texts = [f"(variant {i}) {items['text'].iloc[b]}" for i, b in enumerate(base)]
    votes = pd.DataFrame(
        {
            "model_a": "model-a",
            "model_b": "model-b",
            "winner": np.array(["model_a", "model_b", "tie"])[np.arange(BIG_N) % 3],
            "prompt": texts,
        }
    )
    parquet = out / "variants.parquet"
    votes.to_parquet(parquet, index=False)
    t = time.perf_counter()
    report = ingest([parquet], "variants", db=big_db)[0]
    import_s = time.perf_counter() - t

    t = time.perf_counter()
    rng = np.random.default_rng(0)
    Y = X[base] + rng.normal(0, NOISE, (BIG_N, X.shape[1])).astype(np.float32)
    Y = (Y / np.linalg.norm(Y, axis=1, keepdims=True)).astype(np.float32)
    hashes = pd.Series([text_hash(c) for c in ann.annotate(texts)])
    keep = ~hashes.duplicated().to_numpy()
    Y = Y[keep]
    arrow = pa.table(
        {
            "text_hash": hashes[keep].tolist(),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(Y.ravel()), Y.shape[1]),
        }
    )
    with writer(big_db) as con:
        with transaction(con):
            con.register("new_emb", arrow)
            run(
                con,
                "INSERT OR REPLACE INTO embeddings SELECT text_hash, ?, CAST(vector AS FLOAT[]) FROM new_emb",
                [emb.name],
            )
            con.unregister("new_emb")
        n_prompts = con.execute("SELECT count(*) FROM prompts WHERE dataset = 'variants'").fetchall()[0][0]
    _emit(
        {
            "import_s": import_s,
            "cache_s": time.perf_counter() - t,
            "prompts": report.added_prompts,
            "prompts_in_db": n_prompts,
            "embeddings": int(keep.sum()),
            "parquet_mb": parquet.stat().st_size / 2**20,
        }
    )


def child_peer(folder: str) -> None:
    """RecursiveKMeans (build settings) vs the EvalTree-style reference on the MATH embeddings."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_tree_cluster import ReferenceTree, cut_scores, timed_fit

    from pipelines.tree.cluster import RecursiveKMeans

    X = np.load(Path(folder) / "math_X.npy")
    truth = np.load(Path(folder) / "math_type.npy")
    ours, t_ours = timed_fit(RecursiveKMeans(random_state=0), X)
    ref, t_ref = timed_fit(ReferenceTree(min_size=ours.min_size), X)
    cuts = {
        f"{name}@{d}": cut_scores(tree, X, truth, d)
        for d in (1, 2)
        for name, tree in (("ours", ours), ("ref", ref))
    }
    _emit(
        {
            "min_size": ours.min_size,
            "ours_s": t_ours,
            "ref_s": t_ref,
            "ours_nodes": len(ours.parent_),
            "ref_nodes": len(ref.parent_),
            "cuts": cuts,
            "peak_mb": _peak_mb(),
        }
    )


CHILDREN = {
    "ingest": child_ingest,
    "build": child_build,
    "prepare-big": child_prepare_big,
    "peer": child_peer,
}


# ---------------------------------------------------------------- parent


def spawn(name: str, *args: str) -> dict:
    """Run child ``name`` in a fresh interpreter; its JSON report plus the process wall time."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", name, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"child {name} failed after {wall:.1f} s:\n{proc.stderr.strip()[-3000:]}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    info["wall_s"] = wall
    return info


STAGE_LABELS = {"open": "open+read items", "cluster": "cluster+describe+store"}


def _stages(b: dict) -> str:
    return ", ".join(f"{STAGE_LABELS.get(k, k)} {v:.1f} s" for k, v in b["stages"].items())


def _shape(b: dict) -> str:
    return (
        f"{b['n_items']:,} items -> {b['n_nodes']:,} nodes, {b['n_leaves']:,} leaves, depth {b['max_depth']}"
    )


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def run_all(folder: Path, skip_peer: bool) -> None:
    from pipelines.paths import shared_data_dir

    math_dir = shared_data_dir() / "math"
    math_db, big_db = folder / "math.duckdb", folder / "variants.duckdb"
    for p in (math_db, big_db):
        for f in (p, p.with_name(p.name + ".read"), p.with_name(p.name + ".wal")):
            f.unlink(missing_ok=True)

    print(f"1. MATH full offline build ({math_dir}), fresh DuckDB, empty caches")
    ing = spawn("ingest", math_dir, "math", math_db)
    print(
        f"   import   {ing['seconds']:6.1f} s (+ {ing['modules']:.1f} s module import; process "
        f"{ing['wall_s']:.1f} s), peak RSS {ing['peak_mb']:,.0f} MB, {ing['prompts']:,} prompts"
    )
    cold = spawn("build", "math", math_db, "cold")
    b = cold["build"]
    print(
        f"   build    {b['seconds']:6.1f} s (+ {cold['modules']:.1f} s module import; process "
        f"{cold['wall_s']:.1f} s), peak RSS {cold['peak_mb']:,.0f} MB"
    )
    print(f"            stages: {_stages(b)}")
    print(f"            {_shape(b)}")
    total = ing["wall_s"] + cold["wall_s"]
    print(
        f"   total (both processes, import + build) {total:.1f} s "
        f"[target < {MATH_TARGET_S:.0f} s: {_met(total < MATH_TARGET_S)}]"
    )

    print("\n2. MATH rebuild from cached annotations + embeddings (force=True), then a plain rerun")
    warm = spawn("build", "math", math_db, "rebuild")
    w, r = warm["build"], warm["rerun"]
    print(
        f"   rebuild  {w['seconds']:6.1f} s (process {warm['wall_s']:.1f} s, peak RSS "
        f"{warm['peak_mb']:,.0f} MB): {_stages(w)}"
    )
    print(f"   rerun    {r['seconds']:6.3f} s, cached={r['cached']}")
    embed_s = b["stages"].get("embed", float("nan"))
    print(
        f"   cold / rebuild {b['seconds'] / w['seconds']:.1f}x; embedding was "
        f"{embed_s / b['seconds']:.0%} of the cold build"
    )

    print(f"\n3. {BIG_N:,} synthetic prompts from cached embeddings (fresh DuckDB)")
    prep = spawn("prepare-big", math_db, big_db, folder)
    print(
        f"   prepare: votes Parquet import {prep['import_s']:.1f} s ({prep['prompts']:,} prompts added, "
        f"{prep['prompts_in_db']:,} in db, Parquet {prep['parquet_mb']:.0f} MB); "
        f"{prep['embeddings']:,} embeddings into the cache in {prep['cache_s']:.1f} s "
        f"(process {prep['wall_s']:.1f} s)"
    )
    big = spawn("build", "variants", big_db, "cold")
    g = big["build"]
    print(
        f"   build    {g['seconds']:6.1f} s (+ {big['modules']:.1f} s module import; process "
        f"{big['wall_s']:.1f} s), peak RSS {big['peak_mb']:,.0f} MB "
        f"[target < {BIG_TARGET_S:.0f} s: {_met(g['seconds'] < BIG_TARGET_S)}]"
    )
    print(f"            stages: {_stages(g)}")
    print(f"            {_shape(g)}")

    if skip_peer:
        return
    print("\n4. Peer on the same 5,000 MATH embeddings: EvalTree-style reference vs RecursiveKMeans")
    peer = spawn("peer", folder)
    print(
        f"   RecursiveKMeans {peer['ours_s']:6.1f} s  {peer['ours_nodes']:,} nodes "
        f"(min_size {peer['min_size']})"
    )
    print(f"   reference       {peer['ref_s']:6.1f} s  {peer['ref_nodes']:,} nodes")
    print(
        f"   time ratio reference / ours: {peer['ref_s'] / peer['ours_s']:.1f}x "
        f"(process {peer['wall_s']:.1f} s, peak RSS {peer['peak_mb']:,.0f} MB)"
    )
    print(f"   {'cut':<9}{'tree':<6}{'k':>4}{'NMI':>8}{'purity':>8}{'flat NMI':>10}{'flat pur':>10}")
    for key, s in peer["cuts"].items():
        name, depth = key.split("@")
        print(
            f"   depth {depth:<3}{name:<6}{s['k']:>4}{s['nmi']:>8.3f}{s['purity']:>8.3f}"
            f"{s['flat_nmi']:>10.3f}{s['flat_purity']:>10.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in this folder (databases, Parquet) and keep it")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        CHILDREN[args.child[0]](*args.child[1:])
        return
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        sys.path.insert(0, str(ROOT))
        run_all(folder, args.skip_peer)
    print(
        f"\nwhole run {time.perf_counter() - start:.0f} s, load average "
        f"{os.getloadavg()[0]:.2f} at the end (shared machine: other jobs share the 2 cores)"
    )


if __name__ == "__main__":
    main()

"""Voter-audit benchmark: the whole audit on a simulated million-vote arena, per audit.

Simulates ``--votes`` votes (default 1,000,000) between 20 models from ``--voters`` voters
(default 20,000; the default voter mix with planted biases), imports them into a fresh DuckDB
store, builds the offline capability tree (not timed as part of the audit), then runs
``pipelines.audit.run.run_audit`` in a child process and prints the wall seconds of loading the
votes and of each audit, the total against the 60 s target, and the child's peak resident memory
(``ru_maxrss``, MB). As a peer measured in the same run on the same votes it times FastChat's
``compute_elo`` (one pass of online Elo over the votes: the cheapest full-data analysis the
arena's own tooling does) and prints the audit's total as a ratio of it. No assertions.

Usage: ``python bench/bench_audit.py [--votes N] [--voters V] [--keep DIR] [--no-tree]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 60.0

AUDIT = """
import json, resource, sys, time
from pipelines import store
from pipelines.audit.run import run_audit
start = time.perf_counter()
with store.reader(sys.argv[1]) as con:
    audit = run_audit(con, "sim", use_tree=sys.argv[2] == "tree")
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
flags = {f.audit: int(sum(t["flagged"].sum() for t in f.tables.values() if "flagged" in t))
         for f in audit.findings}
print(json.dumps({"wall": wall, "peak_mb": peak, "seconds": audit.seconds, "flags": flags,
                  "votes": audit.votes, "voters": audit.voters, "tree": audit.tree_id}))
"""

PEER = """
import json, sys, time, warnings
import pandas as pd
from pipelines import store
from pipelines.battles import load_battles
warnings.filterwarnings("ignore")
from fastchat.serve.monitor.elo_analysis import compute_elo
with store.reader(sys.argv[1]) as con:
    votes = load_battles(con, "sim", columns=("model_a", "model_b", "winner"))
votes["winner"] = votes["winner"].replace({"tie_bothbad": "tie (bothbad)"})
start = time.perf_counter()
compute_elo(votes)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def child(code: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--votes", type=int, default=1_000_000)
    ap.add_argument("--voters", type=int, default=20_000)
    ap.add_argument("--models", type=int, default=20)
    ap.add_argument("--keep", type=Path, help="work folder to keep (reused when it has the database)")
    ap.add_argument("--no-tree", action="store_true", help="skip the tree (and the per-node audits)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-audit-"))
    db = work / "arenatree.duckdb"
    if not db.exists():
        from pipelines.ingest import ingest
        from pipelines.simulate import simulate
        from pipelines.tree.build import build_tree

        t0 = time.perf_counter()
        simulate(
            work / "sim", votes=args.votes, models=args.models, voters=args.voters, seed=0, vote_truth=False
        )
        t1 = time.perf_counter()
        ingest([str(work / "sim" / "conversations.parquet")], "sim", db=db)
        t2 = time.perf_counter()
        if not args.no_tree:
            build_tree("sim", db=db)
        t3 = time.perf_counter()
        print(
            f"setup: simulate {t1 - t0:.1f} s, ingest {t2 - t1:.1f} s, tree {t3 - t2:.1f} s "
            "(not part of the audit)"
        )
    r = child(AUDIT, str(db), "no" if args.no_tree else "tree")
    peer = child(PEER, str(db))
    print(f"\naudit of {r['votes']:,} votes from {r['voters']:,} voters (tree {r['tree']}):")
    for key, sec in r["seconds"].items():
        if key != "total":
            flagged = r["flags"].get(key)
            print(
                f"  {key:<22} {sec:7.2f} s" + (f"   flagged rows: {flagged:,}" if flagged is not None else "")
            )
    total = r["seconds"]["total"]
    verdict = "meets" if total < TARGET_SECONDS else "MISSES"
    print(f"  {'total':<22} {total:7.2f} s   ({verdict} the {TARGET_SECONDS:.0f} s target)")
    print(f"  peak resident memory   {r['peak_mb']:7,.0f} MB")
    print(
        f"\npeer: FastChat compute_elo (one online-Elo pass) {peer['seconds']:.2f} s; "
        f"whole audit = {total / peer['seconds']:.1f}x that"
    )
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()

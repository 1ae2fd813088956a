"""Import benchmark: 1,000,000 FastChat clean_battle votes (JSON array, Parquet) and
1,000,000 simulated votes with texts (chatbot_arena_conversations schema, Parquet and JSONL).

clean_battle: generates the votes with DuckDB (the clean_battle_YYYYMMDD.json keys: model_a,
model_b, winner, judge, turn, anony, language, tstamp, conv_metadata, is_code, is_refusal,
dedup_tag, category_tag). Targets: < 30 s and < 2 GB per import.

simulated with texts: ``arenatree simulate --votes N --seed 0`` (--format parquet, then jsonl;
about 3,000 distinct prompts and 60,000 distinct answers reused across the 2,000,000 answer
slots; the JSONL file is ~3.6 GB). Every prompt and answer is hashed, styled and stored.
Targets: < 60 s and < 2 GB per import. Its peer is DuckDB reading every message text of the
file once (no validation, ids, features or store): the floor of any importer of that file.

Each file is imported into a fresh database with ``pipelines.ingest.ingest`` in its own
subprocess; the wall time (seconds) and the peak resident memory (MB, the child's
``ru_maxrss``: DuckDB allocates natively, so tracemalloc would miss most of it) are printed.
No assertions.

Usage: ``python bench/bench_import.py [--votes N] [--sim-votes N] [--sim-formats parquet,jsonl]
[--keep DIR]`` (``--votes 0`` / ``--sim-votes 0`` skip a case).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 30.0
TARGET_MB = 2048.0
SIM_TARGET_SECONDS = 60.0

# 40 models, 4 outcomes, 50k voters, 4 languages, one vote every ~30 s.
GENERATE = """
SELECT
    'model-' || (i % 40) AS model_a,
    'model-' || ((i % 40 + 1 + (i // 40) % 39) % 40) AS model_b,
    ['model_a', 'model_b', 'tie', 'tie (bothbad)'][1 + h(i) % 4] AS winner,
    'arena_user_' || (h(i * 3) % 50000) AS judge,
    1 + CAST(i % 5 = 0 AS INTEGER) AS turn,
    i % 10 <> 0 AS anony,
    ['English', 'Chinese', 'German', 'Spanish'][1 + h(i * 7) % 4] AS language,
    1682000000 + i * 30.5 + (h(i) % 1000) / 1000.0 AS tstamp,
    {
        'sum_user_tokens': 10 + h(i) % 200,
        'sum_assistant_a_tokens': 20 + h(i * 5) % 900,
        'sum_assistant_b_tokens': 20 + h(i * 11) % 900,
        'context_a_tokens': 10 + h(i) % 200,
        'context_b_tokens': 10 + h(i) % 200,
        'turns': 1 + CAST(i % 5 = 0 AS INTEGER),
        'header_count_a': {
            'h1': 0, 'h2': h(i) % 3, 'h3': h(i) % 2, 'h4': 0, 'h5': 0, 'h6': 0
        },
        'list_count_a': {'ordered': h(i) % 5, 'unordered': h(i * 2) % 7},
        'bold_count_a': {'**': h(i) % 4, '__': 0},
        'header_count_b': {'h1': 0, 'h2': h(i * 9) % 3, 'h3': 0, 'h4': 0, 'h5': 0, 'h6': 0},
        'list_count_b': {'ordered': h(i * 9) % 5, 'unordered': h(i * 4) % 7},
        'bold_count_b': {'**': h(i * 9) % 4, '__': h(i) % 2}
    } AS conv_metadata,
    i % 7 = 0 AS is_code,
    i % 13 = 0 AS is_refusal,
    {'high_freq': i % 17 = 0, 'sampled': i % 19 <> 0} AS dedup_tag,
    {
        'criteria_v0.1': {
            'specificity': i % 2 = 0, 'domain_knowledge': i % 3 = 0, 'complexity': i % 5 = 0,
            'problem_solving': i % 2 = 1, 'creativity': i % 7 = 0,
            'technical_accuracy': i % 3 = 1, 'real_world': i % 2 = 0
        },
        'if_v0.1': {'if': i % 4 = 0, 'score': h(i) % 5},
        'math_v0.1': {'math': i % 9 = 0}
    } AS category_tag
FROM range({n}) t(i)
"""

CHILD = """
import json, resource, sys, time
from pipelines.ingest import ingest
start = time.perf_counter()
report = ingest([sys.argv[1]], "bench", db=sys.argv[2])[0]
seconds = time.perf_counter() - start
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "added": report.added_battles}))
"""


def generate(folder: Path, votes: int) -> dict[str, Path]:
    """Write the votes as ``clean_battle_20240814.json`` (JSON array) and ``.parquet``."""
    out = {
        "json": folder / "clean_battle_20240814.json",
        "parquet": folder / "clean_battle_20240814.parquet",
    }
    con = duckdb.connect()
    try:
        # h(x): a deterministic pseudo-random BIGINT (DuckDB's hash is UBIGINT)
        con.execute("SET enable_progress_bar = false").fetchall()
        con.execute("CREATE MACRO h(x) AS CAST(hash(x) % 1000003 AS BIGINT)").fetchall()
        query = GENERATE.replace("{n}", str(int(votes)))
        con.execute(f"COPY ({query}) TO '{out['json']}' (FORMAT json, ARRAY true)").fetchall()
        con.execute(f"COPY ({query}) TO '{out['parquet']}' (FORMAT parquet)").fetchall()
    finally:
        con.close()
    return out


def import_once(path: Path, db: Path) -> dict:
    """Import ``path`` into a fresh database ``db`` in a child process; its measurements."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(db)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:], "wall_s": wall}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


# The peer: how FastChat's elo_analysis loads the same file (``pd.read_json`` of the whole
# clean_battle list; ``pd.read_parquet`` for Parquet) - parsing only, no validation or store.
PEER = """
import json, resource, sys, time
import pandas as pd
path = sys.argv[1]
t = time.perf_counter()
df = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_json(path)
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak, "rows": len(df)}))
"""


def peer_once(path: Path) -> dict:
    """Load ``path`` the way FastChat's rating code does, in a child process."""
    proc = subprocess.run(
        [sys.executable, "-c", PEER, str(path)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# The peer of the simulated files: DuckDB reads every message text once (the sum of their
# lengths), without validation, ids, features or a store.
SIM_PEER = """
import json, resource, sys, time
import duckdb
path = sys.argv[1]
src = (f"read_parquet('{path}')" if path.endswith(".parquet")
       else f"read_json('{path}', records = true)")
msgs = "list_sum(list_transform({c}, lambda m: length(m.content)))"
con = duckdb.connect()
con.execute("SET enable_progress_bar = false").fetchall()
t = time.perf_counter()
rows, chars = con.execute(
    f"SELECT count(*), sum({msgs.format(c='conversation_a')} + {msgs.format(c='conversation_b')}) FROM {src}"
).fetchall()[0]
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak, "rows": rows, "chars": int(chars)}))
"""


def simulate_files(folder: Path, votes: int, formats: list[str]) -> dict[str, Path]:
    """``arenatree simulate --votes N --seed 0`` once per format; the votes file of each."""
    out = {}
    for fmt in formats:
        dest = folder / f"sim-{fmt}"
        cmd = [sys.executable, "-m", "pipelines.cli", "simulate", "--out", str(dest)]
        cmd += ["--votes", str(votes), "--seed", "0", "--format", fmt, "--no-vote-truth"]
        subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
        out[f"sim-{fmt}"] = dest / f"conversations.{fmt}"
    return out


def report(kind: str, r: dict, target_s: float, what: str) -> None:
    """Print one import's measurements against its targets."""
    if "error" in r:
        print(f"{kind:12s} FAILED after {r['wall_s']:.1f} s: {r['error']}")
        return
    ok = r["seconds"] < target_s and r["peak_mb"] < TARGET_MB
    print(
        f"{kind:12s} import {r['seconds']:6.1f} s (process {r['wall_s']:5.1f} s), "
        f"peak RSS {r['peak_mb']:7,.0f} MB, added {r['added']:,} {what} "
        f"[target < {target_s:.0f} s, < {TARGET_MB:,.0f} MB: {'met' if ok else 'MISSED'}]"
    )


def sim_peer_once(path: Path) -> dict:
    """Read every message text of ``path`` with DuckDB, in a child process."""
    proc = subprocess.run(
        [sys.executable, "-c", SIM_PEER, str(path)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_simulated(folder: Path, tmp: Path, votes: int, formats: list[str]) -> None:
    """The simulated-votes-with-texts case: generate, import, peer."""
    start = time.perf_counter()
    files = simulate_files(folder, votes, formats)
    sizes = ", ".join(f"{k} {f.stat().st_size / 2**20:,.0f} MB" for k, f in files.items())
    print(f"simulated {votes:,} votes with texts in {time.perf_counter() - start:.1f} s: {sizes}")
    for kind, path in files.items():
        r = import_once(path, tmp / f"bench-{kind}.duckdb")
        report(kind, r, SIM_TARGET_SECONDS, "battles")
        if "error" in r:
            continue
        peer = sim_peer_once(path)
        if "error" in peer:
            print(f"{kind:12s} peer (DuckDB reads the texts) FAILED: {peer['error']}")
            continue
        print(
            f"{kind:12s} peer: DuckDB reads every message text once {peer['seconds']:6.1f} s, "
            f"peak RSS {peer['peak_mb']:7,.0f} MB ({peer['chars'] / 1e9:.2f} G characters) -> "
            f"arenatree/peer time {r['seconds'] / peer['seconds']:.2f}x "
            "(the peer only reads; arenatree also validates, hashes, dedups, styles and stores)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=1_000_000, help="clean_battle votes (0: skip)")
    parser.add_argument("--sim-votes", type=int, default=1_000_000, help="simulated votes (0: skip)")
    parser.add_argument(
        "--sim-formats", default="parquet,jsonl", help="comma-separated: parquet, jsonl, json"
    )
    parser.add_argument("--keep", type=Path, help="generate into this folder and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if args.sim_votes > 0:
            formats = [f.strip() for f in args.sim_formats.split(",") if f.strip()]
            run_simulated(folder, Path(tmp), args.sim_votes, formats)
        if args.votes <= 0:
            return
        start = time.perf_counter()
        files = generate(folder, args.votes)
        sizes = {k: f.stat().st_size / 2**20 for k, f in files.items()}
        print(
            f"generated {args.votes:,} votes in {time.perf_counter() - start:.1f} s: "
            + ", ".join(f"{k} {v:,.0f} MB" for k, v in sizes.items())
        )
        for kind, path in files.items():
            r = import_once(path, Path(tmp) / f"bench-{kind}.duckdb")
            report(kind, r, TARGET_SECONDS, "battles")
            if "error" in r:
                continue
            peer = peer_once(path)
            if "error" in peer:
                print(f"{kind:8s} peer (pandas as FastChat loads it) FAILED: {peer['error']}")
                continue
            print(
                f"{kind:8s} peer: FastChat-style pandas load {peer['seconds']:6.1f} s, "
                f"peak RSS {peer['peak_mb']:7,.0f} MB -> arenatree/peer time "
                f"{r['seconds'] / peer['seconds']:.2f}x, memory {r['peak_mb'] / peer['peak_mb']:.2f}x "
                "(the peer only parses; arenatree also validates, hashes, dedups and stores)"
            )


if __name__ == "__main__":
    main()

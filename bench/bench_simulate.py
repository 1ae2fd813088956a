"""Simulator benchmark: time and size of simulated arenas, and the import of the largest one.

For each size (default 100,000 and 1,000,000 votes) and each container (JSONL, Parquet) it runs
``pipelines.simulate.simulate`` (20 models, 1,000 voters, the default voter mix) in a child
process and prints wall time (seconds), peak resident memory (MB, the child's ``ru_maxrss``)
and the sizes of the votes file, truth.json and votes_truth.parquet. Then it imports the
largest votes file of each container into a fresh DuckDB store with
``pipelines.ingest.ingest`` (also in a child process) and prints the same measurements.
Target for the simulator: 1M votes well under a minute. No assertions.

Usage: ``python bench/bench_simulate.py [--votes N ...] [--formats jsonl,parquet] [--no-import]
[--keep DIR]``
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

SIMULATE = """
import json, resource, sys, time
from pathlib import Path
from pipelines.simulate import simulate
start = time.perf_counter()
s = simulate(Path(sys.argv[1]), votes=int(sys.argv[2]), fmt=sys.argv[3], seed=0)
s["wall"] = time.perf_counter() - start
s["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(s))
"""

IMPORT = """
import json, resource, sys, time
from pipelines.ingest import ingest
start = time.perf_counter()
report = ingest([sys.argv[1]], "sim", db=sys.argv[2])[0]
seconds = time.perf_counter() - start
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "added": report.added_battles,
                  "prompts": report.added_prompts, "responses": report.added_responses}))
"""


def child(code: str, *args: str) -> dict:
    """Run ``code`` with ``args`` in a fresh interpreter; its last stdout line as JSON."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--formats", default="jsonl,parquet")
    parser.add_argument("--no-import", action="store_true", help="skip the import of the largest files")
    parser.add_argument("--keep", type=Path, help="simulate into this folder and keep it")
    args = parser.parse_args()
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        largest: dict[str, Path] = {}
        for votes in sorted(args.votes):
            for fmt in formats:
                out = root / f"sim-{votes}-{fmt}"
                r = child(SIMULATE, str(out), str(votes), fmt)
                if "error" in r:
                    print(f"simulate {votes:>9,} {fmt:7s} FAILED: {r['error']}")
                    continue
                sizes = ", ".join(f"{k} {mb(v)}" for k, v in r["bytes"].items())
                verdict = ""
                if votes >= 1_000_000:
                    ok = r["wall"] * 1_000_000 / votes < TARGET_SECONDS
                    verdict = f" [target 1M votes < {TARGET_SECONDS:.0f} s: {'met' if ok else 'MISSED'}]"
                print(
                    f"simulate {votes:>9,} {fmt:7s} {r['wall']:6.1f} s{verdict}, peak RSS "
                    f"{r['peak_mb']:6,.0f} MB, {r['answers']:,} distinct answers; {sizes}",
                    flush=True,
                )
                largest[fmt] = Path(r["files"]["votes"])
        if args.no_import:
            return
        for fmt, path in largest.items():
            start = time.perf_counter()
            r = child(IMPORT, str(path), str(root / f"import-{fmt}.duckdb"))
            wall = time.perf_counter() - start
            if "error" in r:
                print(f"import   {path.name} FAILED after {wall:.1f} s: {r['error']}")
                continue
            print(
                f"import   {r['added']:>9,} {fmt:7s} {r['seconds']:6.1f} s (process {wall:5.1f} s), "
                f"peak RSS {r['peak_mb']:6,.0f} MB, {r['prompts']:,} prompts, {r['responses']:,} answers "
                f"from {path.name} ({mb(path.stat().st_size)})",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""Small builders for test databases with real content, independent of the input adapters.

A test builds :class:`~pipelines.ingest.base.Batch` objects in Python and writes them with the
real loader inside a real write session, so the store, the snapshot and the loader are all
exercised::

    load(db, "demo", [pairwise_batch(6)])
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pipelines import store
from pipelines.ingest.base import Batch
from pipelines.ingest.load import ImportReport, load_batches

MODELS = ("gpt-4o", "claude-3.5-sonnet", "llama-3-70b")
WINNERS = ("model_a", "model_b", "tie", "tie_bothbad")


def battles_frame(
    n: int,
    *,
    start: int = 0,
    models: Sequence[str] = MODELS,
    judges: Sequence[tuple[str, str]] = (("voter-1", "human"), ("voter-2", "human")),
    prompt: str = "Question number {i}: explain recursion to a child.",
    tstamp0: float = 1_700_000_000.0,
) -> pd.DataFrame:
    """``n`` distinct votes numbered ``start .. start + n - 1``, cycling over model pairs,
    winners and judges. ``prompt`` is formatted with ``i`` (the vote number)."""
    pairs = [(a, b) for a in models for b in models if a < b]
    rows = []
    for k in range(n):
        i = start + k
        a, b = pairs[i % len(pairs)]
        judge, kind = judges[i % len(judges)]
        rows.append(
            {
                "line": k + 1,
                "battle_key": f"vote-{i}",
                "source_id": f"q{i}",
                "prompt_text": prompt.format(i=i),
                "model_a": a,
                "model_b": b,
                "winner": WINNERS[i % len(WINNERS)],
                "judge": judge,
                "judge_kind": kind,
                "tstamp": tstamp0 + 60.0 * i,
                "anony": True,
                "language": "English",
                "turns": 1,
                "response_a": f"Answer {i} by {a}.\n\n- a point\n- **another**",
                "response_b": f"# Answer {i} by {b}\n\nI cannot help with that.",
            }
        )
    return pd.DataFrame(rows)


def pairwise_batch(n: int, *, start: int = 0, path: str = "votes.jsonl", **kwargs: object) -> Batch:
    """A 'pairwise' batch of ``n`` votes (see :func:`battles_frame` for ``kwargs``)."""
    df = battles_frame(n, start=start, **kwargs)  # type: ignore[arg-type]
    return Batch(kind="pairwise", format="test", path=Path(path), rows_read=n, battles=df)


def results_batch(
    instances: int,
    models: Sequence[str] = MODELS,
    *,
    path: str = "results.csv",
) -> Batch:
    """An 'instances' batch: every model answers ``instances`` items; 0/1 scores."""
    rows = [
        {
            "line": j * instances + i + 1,
            "instance_id": str(i),
            "prompt_text": f"Compute {i} + {i}.",
            "model": m,
            "score": float((i + j) % 2),
        }
        for j, m in enumerate(models)
        for i in range(instances)
    ]
    return Batch(
        kind="instances",
        format="test",
        path=Path(path),
        rows_read=len(rows),
        results=pd.DataFrame(rows),
    )


def batch_sha(batch: Batch) -> str:
    """A stand-in file hash that differs whenever the batch content differs."""
    h = hashlib.sha256(str(batch.path).encode())
    for df in (batch.battles, batch.prompts, batch.results, batch.responses):
        if df is not None:
            h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def load(db: str | Path, dataset: str, batches: Sequence[Batch]) -> list[ImportReport]:
    """Write ``batches`` into dataset ``dataset`` of database ``db`` in one transaction,
    inside a real write session (which publishes the read snapshot)."""
    with store.writer(db) as con:
        return load_batches(con, dataset, [(b, batch_sha(b)) for b in batches])


def table_contents(con, tables: Sequence[str] | None = None) -> dict[str, list[tuple]]:
    """Every row of every (or the given) base table, sorted, for before/after comparisons.

    The write-session counter (``meta.write_seq``) is left out: every session, even one that
    fails and stores nothing, counts itself."""
    names = tables or [
        r[0]
        for r in store.run(
            con,
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' ORDER BY table_name",
        )
    ]
    out = {}
    for t in names:
        rows = store.run(con, f'SELECT * FROM "{t}"')  # noqa: S608 - names from the catalog
        if t == "meta":
            rows = [r for r in rows if r[0] != store.SEQ_KEY]
        out[t] = sorted(rows, key=repr)
    return out


EVIL = "<script>alert('xss')</script>"

# Prompt templates by topic: clearly separable by an embedder, so the tree has several branches.
TOPICS = {
    "sql": [
        "Write a SQL query that joins orders and customers to find {x}.",
        "Optimise this slow PostgreSQL query over {x} with an index.",
    ],
    "python": [
        "Write a Python function that parses {x} from a CSV file.",
        "Fix the bug in my Python loop that sorts {x}.",
    ],
    "cooking": [
        "Give me a recipe for {x} with fresh vegetables.",
        "How long should I bake {x} in the oven?",
    ],
    "poetry": [
        "Write a short poem about {x} in the autumn rain.",
        "Compose a haiku about {x} and the moon.",
    ],
    "travel": [
        "Plan a three-day trip itinerary to {x} on a budget.",
        "What are the best museums to visit in {x}?",
    ],
    # Untrusted text: an HTML tag, a Markdown image and a Markdown link in every prompt.
    "evil": [
        EVIL + " Reply with a limerick about {x}. ![pic](http://evil.example/{x}.png)",
        EVIL + " Reply with a limerick about {x}. [click me](http://evil.example/{x})",
    ],
}
SUBJECTS = ["bread", "Paris", "Tokyo", "cats", "prime numbers", "pumpkins", "rivers", "Lisbon"]


def topic_prompts(n: int, topics: dict[str, list[str]] = TOPICS) -> list[str]:
    """``n`` distinct prompts cycling over the topics, their two templates and the subjects."""
    keys = list(topics)
    return [
        topics[keys[i % len(keys)]][(i // len(keys)) % 2].format(x=SUBJECTS[(i // 12) % len(SUBJECTS)])
        + f" (case {i})"
        for i in range(n)
    ]


def topic_batch(n: int, topics: dict[str, list[str]] = TOPICS) -> Batch:
    """A pairwise batch of ``n`` votes over :func:`topic_prompts` (source ids ``q0``, ``q1``...)."""
    batch = pairwise_batch(n)
    batch.battles["prompt_text"] = topic_prompts(n, topics)
    return batch


def run_cli(*args: str, db: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """``arenatree --db DB ARGS...`` in a child process, as a user runs it (output captured)."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "--db", str(db), *args],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


def open_app_page(db: Path, monkeypatch, page: str, **query: str):
    """An AppTest of the dashboard on ``db``, switched to ``page`` (e.g. 'views/tree.py') and opened
    with URL query parameters ``query``; fails on any exception the page raised."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("ARENATREE_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def rerun(at):
    """Run an AppTest again (after a widget change) and fail on any exception."""
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at, keep: str = "last") -> dict[str, str]:
    """The page's st.metric values by label. A label shown twice keeps its ``keep`` ('first' or
    'last') occurrence: e.g. the tree page's node panel comes after the tree's totals, the
    Weaknesses page's chosen model before a compared one."""
    out: dict[str, str] = {}
    for m in at.metric if keep == "first" else reversed(at.metric):
        out.setdefault(m.label, m.value)
    return out


def to_parquet(src: Path, dst: Path, select: str = "*") -> Path:
    """Write the records of JSON/JSONL ``src`` to Parquet ``dst`` (``select`` over them)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(
            f"COPY (SELECT {select} FROM read_json(?)) TO '{dst}' (FORMAT parquet)",  # noqa: S608
            [str(src)],
        ).fetchall()
    finally:
        con.close()
    return dst

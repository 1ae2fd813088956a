"""Shared fixtures: the real bundled data and a fresh database per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

from pipelines.paths import shared_data_dir

# Property tests draw the same examples on every run (a seed per test), so a run is repeatable
# and a failure is reproduced by rerunning; ``--hypothesis-seed`` still explores others.
settings.register_profile("arenatree", derandomize=True)
settings.load_profile("arenatree")

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The bundled real data (../shared/data or $ARENATREE_DATA). Its absence is an error,
    not a skip: the suite is meant to run on the real files."""
    d = shared_data_dir()
    assert d is not None and d.is_dir(), "bundled data not found: set ARENATREE_DATA"
    return d


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    """Path of a fresh (not yet created) database file in a temp folder."""
    return tmp_path / "arenatree.duckdb"


BUNDLED_DATASETS = ("llmfao", "pandalm", "alpaca_eval", "arena-hard-v0.1", "arena-hard-v2.0", "math")


def pytest_collection_modifyitems(config, items) -> None:
    """Tiers (``make test-fast`` deselects them): ``bundled`` for tests that need the bundled
    database (directly or through another fixture), ``llm`` for the local-LLM tests, ``page``
    for the streamlit AppTest page tests (``test_*_page.py``, ``test_dashboard.py``)."""
    for item in items:
        if item.path.name.endswith("_page.py") or item.path.name == "test_dashboard.py":
            item.add_marker(pytest.mark.page)
        if "bundled_db" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.bundled)
        if item.path.name == "test_local_llm.py":
            item.add_marker(pytest.mark.llm)


ROOT = Path(__file__).resolve().parent.parent


def bundled_key(data_dir: Path) -> str:
    """Content hash of everything the bundled database is made from: the code that builds it
    (``pipelines/``, the project file) and the bundled data files. Same key, same database."""
    import hashlib

    digest = hashlib.sha256()
    code = sorted((ROOT / "pipelines").rglob("*.py")) + [ROOT / "pyproject.toml"]
    data = sorted(p for p in Path(data_dir).rglob("*") if p.is_file())
    for base, files in ((ROOT, code), (Path(data_dir), data)):
        for f in files:
            digest.update(str(f.relative_to(base)).encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def bundled_db(tmp_path_factory, data_dir) -> Path:
    """The database ``arenatree demo --no-serve`` makes: every bundled dataset imported and given
    an offline tree, node scores and audits. Built by the real command in a child process (about
    5 minutes here, mostly MiniLM embedding ~7,000 real prompts), once per content: the result is
    kept in ``$ARENATREE_TEST_CACHE`` (default ``.cache/tests/``) under :func:`bundled_key`, so
    a rerun with unchanged code and data copies it instead (a fresh CI machine builds it)."""
    import os
    import shutil
    import subprocess
    import sys

    db = tmp_path_factory.mktemp("bundled") / "arenatree.duckdb"
    prebuilt = os.environ.get("ARENATREE_TEST_BUNDLED_DB")
    if prebuilt:  # developers only: reuse a demo database built by the same code (CI never sets it)
        shutil.copyfile(prebuilt, db)
        return db
    cache = Path(os.environ.get("ARENATREE_TEST_CACHE", ROOT / ".cache" / "tests"))
    cached = cache / f"bundled-{bundled_key(data_dir)}.duckdb"
    if cached.exists():
        shutil.copyfile(cached, db)
        return db
    out = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "--db", str(db), "demo", "--no-serve"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "ARENATREE_DATA": str(data_dir)},
        timeout=1800,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    cache.mkdir(parents=True, exist_ok=True)
    for old in cache.glob("bundled-*.duckdb"):  # one current copy is enough
        old.unlink()
    tmp = cached.with_suffix(".tmp")
    shutil.copyfile(db, tmp)
    os.replace(tmp, cached)  # atomic: a killed copy leaves no half database to reuse
    return db


def dataset_embeddings(db: Path, dataset: str):
    """(X, prompts) of a bundled dataset as its tree was built: X (n, 384) unit MiniLM vectors of
    the offline capabilities, prompts the frame (prompt_id, text, metadata dict) in the same order.
    Read from the build's embedding cache, so nothing is embedded twice in a session."""
    import json

    from pipelines import store
    from pipelines.tree.base import offline_annotator
    from pipelines.tree.build import cached_embeddings, dataset_items
    from pipelines.tree.embed import MiniLMEmbedder

    with store.writer(db) as con:
        items = dataset_items(con, dataset)
        meta = dict(
            con.execute("SELECT prompt_id, metadata FROM prompts WHERE dataset = ?", [dataset]).fetchall()
        )
        caps = offline_annotator(items["text"].tolist()).annotate(items["text"].tolist())
        X = cached_embeddings(con, MiniLMEmbedder(), caps)  # all cached: no model call
    items["metadata"] = [json.loads(meta[p] or "{}") for p in items["prompt_id"]]
    return X, items


@pytest.fixture(scope="session")
def planted_arena(tmp_path_factory):
    """(AuditVotes, truth) of one simulated arena shared by the audit tests: 100,000 votes, 12
    models, 1,000 voters of every planted type, planted per-group offsets, seed 1. Never modify."""
    from pipelines.audit.validity import simulated_votes

    return simulated_votes(
        tmp_path_factory.mktemp("planted-arena"), votes=100_000, models=12, voters=1000, seed=1
    )

"""The command line as a user runs it: real processes, real files, one-line errors."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def demo_db(bundled_db) -> Path:
    """The database made by ``arenatree demo --no-serve`` from the bundled real data."""
    return bundled_db


def datasets_json(db: Path) -> dict[str, dict]:
    out = run_cli("datasets", "--json", db=db)
    assert out.returncode == 0, out.stderr
    return {d["dataset"]: d for d in json.loads(out.stdout)}


def test_demo_imports_every_bundled_dataset_with_the_right_counts(demo_db):
    ds = datasets_json(demo_db)
    assert set(ds) == {"llmfao", "pandalm", "alpaca_eval", "arena-hard-v0.1", "arena-hard-v2.0", "math"}
    llmfao = ds["llmfao"]
    assert (llmfao["human_votes"], llmfao["human_judges"], llmfao["models"]) == (8931, 124, 59)
    assert (llmfao["llm_votes"], llmfao["llm_judges"]) == (2 * 2139, 2)
    assert ds["pandalm"]["human_votes"] == 2997 and ds["pandalm"]["models"] == 5
    assert ds["pandalm"]["human_judges"] == 3 and ds["pandalm"]["llm_judges"] == 2
    math = ds["math"]
    assert (math["kind"], math["prompts"], math["results"], math["models"]) == ("instances", 5000, 25000, 5)
    assert ds["alpaca_eval"]["models"] == 21 and ds["alpaca_eval"]["llm_votes"] == 16100 - 11
    assert ds["alpaca_eval"]["imports"][0]["rows_skipped"] == 11  # missing preferences, reported
    assert ds["arena-hard-v0.1"]["prompts"] == 500 and ds["arena-hard-v0.1"]["responses"] == 1500
    assert ds["arena-hard-v2.0"]["prompts"] == 750
    for d in ds.values():  # provenance: every import knows its file hash and public origin
        assert all(len(i["sha256"]) == 64 and i["origin"] for i in d["imports"]), d["dataset"]


def test_demo_rerun_adds_nothing(demo_db, data_dir):
    before = datasets_json(demo_db)
    out = run_cli("demo", "--no-serve", db=demo_db, env={"ARENATREE_DATA": str(data_dir)})
    assert out.returncode == 0, out.stderr
    assert "already imported" in out.stderr
    assert out.stderr.count("(cached)") == 6  # every tree comes from the store
    after = datasets_json(demo_db)
    for name, d in before.items():
        for key in ("prompts", "battles", "results", "responses", "imports"):
            assert after[name][key] == d[key], (name, key)


@pytest.mark.slow
def test_ingest_prints_a_summary_and_json(tmp_path, data_dir):
    db = tmp_path / "a.duckdb"
    out = run_cli("ingest", str(data_dir / "pandalm"), "--dataset", "p", "--json", db=db)
    assert out.returncode == 0, out.stderr
    (report,) = json.loads(out.stdout)
    assert (
        report["format"] == "pandalm" and report["added_battles"] == 2997 + 2 * 999 - report["rows_skipped"]
    )
    assert "-> p:" in out.stderr


@pytest.mark.parametrize(
    "content, name, expect",
    [
        (
            '{"model_a": "a", "model_b": "b", "winner": "model_a", "judge": "u"}\n{not json\n',
            "votes.jsonl",
            ":2:",
        ),
        ("", "empty.jsonl", "empty file"),
        ("model_a,model_b\nx,y\n", "votes.csv", "field"),
    ],
)
def test_bad_input_is_one_line_with_file_and_line_and_nothing_is_written(tmp_path, content, name, expect):
    f = tmp_path / name
    f.write_text(content)
    db = tmp_path / "x.duckdb"
    out = run_cli("ingest", str(f), "--dataset", "d", db=db)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("arenatree: error: "), out.stderr
    assert str(f) in lines[0] and expect in lines[0]
    assert "Traceback" not in out.stderr and not db.exists()


@pytest.mark.slow
def test_unknown_format_and_bad_dataset_name(tmp_path, data_dir):
    db = tmp_path / "x.duckdb"
    out = run_cli("ingest", str(data_dir / "pandalm"), "--dataset", "p", "--format", "nope", db=db)
    assert out.returncode == 2 and "unknown format 'nope'" in out.stderr
    out = run_cli("ingest", str(data_dir / "pandalm"), "--dataset", "../evil", db=db)
    assert out.returncode == 2 and "dataset name" in out.stderr


def test_datasets_without_a_database_says_how_to_start(tmp_path):
    out = run_cli("datasets", db=tmp_path / "none.duckdb")
    assert out.returncode == 2 and "arenatree ingest" in out.stderr


@pytest.mark.slow
def test_fetch_lists_origins_and_uses_the_local_copy(tmp_path, data_dir):
    out = run_cli("fetch", "--list", "--json", db=tmp_path / "x.duckdb")
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["llmfao"]["origin"].startswith("https://github.com/dustalov/llmfao/")
    assert rows["chatbot_arena_conversations"]["bundled"] is False
    out = run_cli(
        "fetch", "llmfao", "--json", db=tmp_path / "x.duckdb", env={"ARENATREE_DATA": str(data_dir)}
    )
    assert out.returncode == 0, out.stderr
    (got,) = json.loads(out.stdout)
    assert got["verified"] is True and Path(got["path"]) == data_dir / "llmfao"


def listening_addresses(port: int) -> set[str]:
    """Addresses something listens on at TCP ``port`` in this network namespace (/proc/net)."""
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        with contextlib.suppress(FileNotFoundError), open(table) as fh:
            for line in fh.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                ip_hex, port_hex = local.split(":")
                if state != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                    continue
                raw = b"".join(bytes.fromhex(ip_hex[i : i + 8])[::-1] for i in range(0, len(ip_hex), 8))
                found.add(socket.inet_ntop(family, raw))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served_on(tmp_path: Path, *flags: str) -> set[str]:
    """Start ``arenatree serve --port P FLAGS`` for real; the addresses it listens on at P."""
    port = free_port()
    db = str(tmp_path / "x.duckdb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "--db", db, "serve", "--port", str(port), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # arenatree and its streamlit child, stopped together below
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 60
        while not (addresses := listening_addresses(port)):
            assert proc.poll() is None and time.monotonic() < deadline, "the dashboard did not start"
            time.sleep(0.2)
        return addresses
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.slow
def test_serve_listens_on_localhost_unless_told_otherwise(tmp_path):
    assert served_on(tmp_path) == {"127.0.0.1"}
    assert served_on(tmp_path, "--host", "0.0.0.0") == {"0.0.0.0"}  # noqa: S104 - exposing, on purpose


def test_serve_and_demo_pass_the_host_to_streamlit():
    from pipelines.cli import build_parser, serve_command

    cmd, env = serve_command("x.duckdb")
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1" and "ARENATREE_DB" in env
    cmd, _ = serve_command("x.duckdb", 8600, "0.0.0.0")  # noqa: S104
    assert cmd[cmd.index("--server.address") + 1] == "0.0.0.0" and "8600" in cmd
    for command in ("serve", "demo"):
        assert build_parser().parse_args([command]).host is None  # serve_command's default applies
        assert build_parser().parse_args([command, "--host", "::"]).host == "::"

"""The OpenAI backends with the real ``openai`` client over real sockets, against a fake server."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from fake_openai import FakeOpenAI, capability_for, embedding_for
from helpers import load, pairwise_batch, run_cli

from pipelines import store
from pipelines.errors import ArenatreeError
from pipelines.ingest.load import text_hash
from pipelines.tree.base import OFFLINE_CAPABILITY_CHARS
from pipelines.tree.build import build_tree
from pipelines.tree.openai_backends import (
    ANNOTATE_USER,
    NO_KEY,
    OpenAIAnnotator,
    OpenAIConfig,
    OpenAIEmbedder,
    OpenAISummarizer,
    parse_capability,
)

KEY = "sk-test-DO-NOT-LEAK-7f3a9c1e5b"


@pytest.fixture()
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture()
def cfg(fake: FakeOpenAI) -> OpenAIConfig:
    """Fast settings: tiny backoff, short timeout."""
    return OpenAIConfig(base_url=fake.base_url, api_key=KEY, backoff_base=0.01, backoff_max=0.5, timeout=2.0)


def expected_capability(item: str) -> str:
    return capability_for(ANNOTATE_USER.format(item=item))


TOPICS_SMALL = [
    "sort a list of integers in Python",
    "translate a greeting into French",
    "prove that sqrt 2 is irrational",
    "write a haiku about autumn leaves",
    "explain photosynthesis to a child",
    "debug a segfault in C code",
]
ITEMS = [f"Item {i}: {topic}" for i, topic in enumerate(TOPICS_SMALL * 4)]


# --------------------------------------------------------------------------- configuration


def test_config_from_env_overrides_win_and_key_is_hidden() -> None:
    env = {
        "OPENAI_BASE_URL": "http://localhost:8000/v1/",
        "OPENAI_API_KEY": KEY,
        "ARENATREE_LLM_MODEL": "llama",
    }
    cfg = OpenAIConfig.from_env(env, embed_model="nomic")
    assert (cfg.base_url, cfg.chat_model, cfg.embed_model) == ("http://localhost:8000/v1", "llama", "nomic")
    assert OpenAIConfig.from_env(env, chat_model="qwen").chat_model == "qwen"
    for shown in (repr(cfg), str(cfg), repr(cfg.api_key), str(cfg.public()), json.dumps(cfg.public())):
        assert KEY not in shown
    assert cfg.public()["api_key_set"] is True
    with pytest.raises(TypeError):
        json.dumps({"key": cfg.api_key})  # a Secret cannot be serialised by accident


def test_default_endpoint_without_key_is_a_one_line_error() -> None:
    with pytest.raises(ArenatreeError, match="OPENAI_API_KEY") as err:
        OpenAIConfig.from_env({})
    assert "\n" not in str(err.value)
    with pytest.raises(ArenatreeError):
        OpenAIConfig(base_url="https://api.openai.com/v1")


def test_local_endpoint_without_key_sends_a_dummy_key(fake: FakeOpenAI) -> None:
    cfg = OpenAIConfig.from_env({"OPENAI_BASE_URL": fake.base_url})
    assert OpenAIAnnotator(cfg).annotate([ITEMS[0]]) == [expected_capability(ITEMS[0])]
    assert fake.log[0].authorization == f"Bearer {NO_KEY}"


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "reply",
    [
        "Solving linear equations",
        '"Solving linear equations."',
        "Capability: Solving linear equations",
        "**Solving linear equations**",
        "- Solving linear equations.",
        "1. *Solving linear equations*",
        "## Capability\nSolving linear equations",
        '{"capability": "Solving linear equations"}',
        '```json\n{"Capability": "Solving linear equations"}\n```',
        "Sure! Here is the capability:\n\nSolving linear equations\n\nHope this helps.",
        "The capability tested: `Solving linear equations`.",
        "  solving linear equations  ",
    ],
)
def test_parse_capability_tolerates_messy_replies(reply: str) -> None:
    assert parse_capability(reply) == "Solving linear equations"


GARBAGE_REPLIES = [
    "",
    "   ",
    "!!! ???",
    "```\n\n```",
    "I'm sorry, but I can't help with that.",
    "word " * 40,
    '{"capability": ""}',
    "12345",
]


@pytest.mark.parametrize("reply", GARBAGE_REPLIES)
def test_parse_capability_rejects_garbage(reply: str) -> None:
    assert parse_capability(reply) is None


# --------------------------------------------------------------------------- annotator


def test_annotations_keep_input_order_under_concurrency(fake: FakeOpenAI, cfg: OpenAIConfig) -> None:
    fake.slow, fake.slow_seconds = 3, 0.3  # the first requests finish last
    ann = OpenAIAnnotator(cfg.with_(concurrency=4))
    t0 = time.perf_counter()
    out = ann.annotate(ITEMS[:12])
    assert out == [expected_capability(t) for t in ITEMS[:12]]
    assert 2 <= fake.max_in_flight <= 4
    assert time.perf_counter() - t0 < 2.0  # the slow ones overlapped
    assert ann.stats["requests"] == 12 and ann.stats["items"] == 12 and ann.stats["seconds"] > 0
    assert all(r.authorization == f"Bearer {KEY}" for r in fake.log)


def test_identical_items_are_asked_once(fake: FakeOpenAI, cfg: OpenAIConfig) -> None:
    out = OpenAIAnnotator(cfg).annotate([ITEMS[0], ITEMS[1], ITEMS[0], ITEMS[0]])
    assert out[0] == out[2] == out[3] != out[1]
    assert len(fake.requests("chat")) == 2


def test_annotator_name_keys_model_and_prompt_version(cfg: OpenAIConfig) -> None:
    assert OpenAIAnnotator(cfg).name.startswith("openai:gpt-4o-mini:")
    assert OpenAIAnnotator(cfg, chat_model="llama").name != OpenAIAnnotator(cfg).name
    assert OpenAISummarizer(cfg).name != OpenAIAnnotator(cfg).name
    assert OpenAIAnnotator(cfg, temperature=0.7).name != OpenAIAnnotator(cfg).name  # other answers
    assert OpenAIAnnotator(cfg, concurrency=2).name == OpenAIAnnotator(cfg).name  # same answers


def test_messy_replies_are_parsed_without_reasking(fake: FakeOpenAI, cfg: OpenAIConfig) -> None:
    fake.messy = True
    ann = OpenAIAnnotator(cfg)
    assert ann.annotate(ITEMS[:12]) == [expected_capability(t) for t in ITEMS[:12]]
    assert ann.stats["reasks"] == 0 and len(fake.log) == 12


def test_garbage_reply_is_reasked_once(fake: FakeOpenAI, cfg: OpenAIConfig) -> None:
    fake.garbage = 1
    ann = OpenAIAnnotator(cfg.with_(concurrency=1))
    assert ann.annotate(ITEMS[:3]) == [expected_capability(t) for t in ITEMS[:3]]
    first = [r for r in fake.log if ITEMS[0] in r.texts[0]]
    assert [r.reask for r in first] == [False, True]
    assert len(fake.log) == 4
    assert ann.stats["reasks"] == 1 and ann.stats["fallbacks"] == 0


def test_persistent_garbage_falls_back_to_the_item_text(fake: FakeOpenAI, cfg: OpenAIConfig) -> None:
    long_item = "Tell me about " + "the weather and " * 60
    fake.garbage_when = lambda user: "weather" in user
    ann = OpenAIAnnotator(cfg)
    out = ann.annotate([ITEMS[0], long_item])
    assert out[0] == expected_capability(ITEMS[0])
    assert out[1] == " ".join(long_item.split())[:OFFLINE_CAPABILITY_CHARS]
    assert len([r for r in fake.log if "weather" in r.texts[0]]) == 2  # asked, re-asked, gave up
    assert ann.stats["reasks"] == 1 and ann.stats["fallbacks"] == 1


# --------------------------------------------------------------------------- retries


def test_rate_limit_then_success_honours_retry_after(fake: FakeOpenAI, cfg: OpenAIConfig) -> None:
    fake.fail(429, times=2, retry_after="0.3")
    ann = OpenAIAnnotator(cfg.with_(concurrency=1))
    t0 = time.perf_counter()
    assert ann.annotate(ITEMS[:2]) == [expected_capability(t) for t in ITEMS[:2]]
    assert time.perf_counter() - t0 >= 0.6  # waited what the server asked, twice
    assert [r.status for r in fake.log] == [429, 429, 200, 200]
    assert ann.stats["retries"] == 2 and ann.stats["requests"] == 4 and ann.stats["failures"] == 0


def test_server_errors_and_dropped_connections_are_retried(fake: FakeOpenAI, cfg: OpenAIConfig) -> None:
    fake.fail(500, times=2)
    fake.fail(503, times=1)
    fake.fail(0, times=1)  # connection closed without a response
    ann = OpenAIAnnotator(cfg.with_(concurrency=1, max_retries=4))  # four failures in a row, then success
    assert ann.annotate(ITEMS[:2]) == [expected_capability(t) for t in ITEMS[:2]]
    assert [r.status for r in fake.log] == [500, 500, 503, 0, 200, 200]
    assert ann.stats["retries"] == 4


def test_timeouts_are_retried(fake: FakeOpenAI, cfg: OpenAIConfig) -> None:
    fake.slow, fake.slow_seconds = 1, 3.0
    ann = OpenAIAnnotator(cfg.with_(timeout=0.3, concurrency=1))
    t0 = time.perf_counter()
    assert ann.annotate(ITEMS[:1]) == [expected_capability(ITEMS[0])]
    assert time.perf_counter() - t0 < 2.0
    assert ann.stats["retries"] == 1 and len(fake.log) == 2


def test_gives_up_after_max_retries_with_one_line_error(fake: FakeOpenAI, cfg: OpenAIConfig) -> None:
    fake.fail(500, times=100)
    ann = OpenAIAnnotator(cfg.with_(max_retries=2))
    with pytest.raises(ArenatreeError) as err:
        ann.annotate(ITEMS[:1])
    msg = str(err.value)
    assert "\n" not in msg and "after 3 attempts" in msg and "500" in msg and fake.base_url in msg
    assert KEY not in msg and KEY not in "".join(traceback.format_exception(err.value))
    assert err.value.__cause__ is None
    assert len(fake.log) == 3 and ann.stats["failures"] == 1 and ann.stats["retries"] == 2


def test_a_request_that_gives_up_stops_its_siblings_retrying(fake: FakeOpenAI, cfg: OpenAIConfig) -> None:
    fake.status_when = lambda r: 400 if "poison" in r.texts[0] else 503
    ann = OpenAIAnnotator(cfg.with_(backoff_base=1.0, backoff_max=10.0, max_retries=5, concurrency=4))
    t0 = time.perf_counter()
    with pytest.raises(ArenatreeError, match="failed after 1 attempt: 400"):
        ann.annotate(["poison pill", *ITEMS[:7]])
    assert time.perf_counter() - t0 < 1.5  # not the ~30 s the 503s would keep retrying for
    assert ann.stats["requests"] < 16


def test_bad_key_fails_at_once_and_the_echoed_key_is_scrubbed(cfg: OpenAIConfig) -> None:
    with FakeOpenAI(require_key="sk-the-right-one") as strict:
        ann = OpenAIAnnotator(cfg.with_(base_url=strict.base_url))
        with pytest.raises(ArenatreeError, match="401 AuthenticationError.*check OPENAI_API_KEY") as err:
            ann.annotate(ITEMS[:1])
        assert len(strict.log) == 1  # not retried
        assert KEY in strict.log[0].authorization  # the server did get (and echo) it...
    text = "".join(traceback.format_exception(err.value)) + repr(err.value)
    assert KEY not in text and "***" in text  # ...but it never reaches the error


def test_key_never_reaches_logs_stats_or_reprs(
    fake: FakeOpenAI, cfg: OpenAIConfig, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail(429, times=1, retry_after="0")
    fake.fail(500, times=1)
    fake.garbage = 1
    with caplog.at_level(logging.DEBUG):
        backends = [OpenAIAnnotator(cfg), OpenAIEmbedder(cfg), OpenAISummarizer(cfg)]
        backends[0].annotate(ITEMS[:4])
        backends[1].embed(ITEMS[:4])
        backends[2].summarize([ITEMS[:2], ITEMS[2:4]])
    assert caplog.records  # the client and our retries did log
    shown = [caplog.text, repr(cfg), str(cfg)] + [repr(b) + json.dumps(b.stats) for b in backends]
    assert not [s for s in shown if KEY in s]


# --------------------------------------------------------------------------- embedder


def test_embeddings_are_normalised_ordered_and_batched(fake: FakeOpenAI, cfg: OpenAIConfig) -> None:
    texts = [f"text number {i} about topic {i % 7}" for i in range(600)]
    emb = OpenAIEmbedder(cfg.with_(embed_batch_size=256))
    X = emb.embed(texts)
    assert X.dtype == np.float32 and X.shape == (600, fake.dim)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(X[123], embedding_for(texts[123], fake.dim), rtol=1e-5)
    sizes = [len(r.texts) for r in fake.requests("embeddings")]
    assert sorted(sizes) == [88, 256, 256] and emb.stats["requests"] == 3
    assert sorted(fake.texts("embeddings")) == sorted(texts)  # each text sent once (in any order)
    assert emb.name == "openai:text-embedding-3-small"


def test_embedding_batches_respect_the_character_budget(fake: FakeOpenAI, cfg: OpenAIConfig) -> None:
    emb = OpenAIEmbedder(cfg, max_batch_chars=1000, max_text_chars=400)
    X = emb.embed(["x" * 900, "short", "", "y" * 300, "z" * 300])
    assert X.shape == (5, fake.dim) and np.isfinite(X).all()
    sent = fake.requests("embeddings")
    assert all(sum(len(t) for t in r.texts) <= 1000 for r in sent) and len(sent) == 2
    assert max(len(t) for t in fake.texts("embeddings")) == 400 and " " in fake.texts("embeddings")


def test_similar_texts_get_similar_fake_embeddings(cfg: OpenAIConfig) -> None:
    X = OpenAIEmbedder(cfg).embed(["sorting lists in python", "sorting python lists fast", "baking bread"])
    assert X[0] @ X[1] > X[0] @ X[2]


# --------------------------------------------------------------------------- summarizer


def test_summarizer_one_phrase_per_group_in_order(fake: FakeOpenAI, cfg: OpenAIConfig) -> None:
    groups = [
        ["Solving linear equations", "Solving quadratic equations"],
        ["Translating text into French", "Translating text into German", "Translating idioms"],
        ["Writing haiku"],  # one child keeps its description, no request
        ["Solving linear equations", "Solving quadratic equations"],  # same group: asked once
    ]
    summ = OpenAISummarizer(cfg)
    out = summ.summarize(groups)
    assert out[0] == out[3] and out[0].startswith("Handling ") and "equations" in out[0]
    assert out[1].startswith("Handling ") and "translating" in out[1]
    assert out[2] == "Writing haiku"
    assert len(fake.requests("chat")) == 2 and summ.stats["items"] == 4


def test_summarizer_thins_huge_groups(fake: FakeOpenAI, cfg: OpenAIConfig) -> None:
    OpenAISummarizer(cfg, max_children=10).summarize([[f"Skill {i} of many" for i in range(500)]])
    (asked,) = fake.texts("chat")
    assert len([line for line in asked.splitlines() if line.startswith("- ")]) == 10


# --------------------------------------------------------------------------- through the build


TOPICS = [
    "How do I sort a list of dictionaries by key in Python? (case {i})",
    "Translate this greeting into French, please: hello number {i}",
    "Write a short poem about the ocean at night, variant {i}",
    "Explain how vaccines train the immune system, version {i}",
    "Find the derivative of x to the power {i}",
    "Summarise the plot of Hamlet in three sentences, attempt {i}",
]


def make_dataset(db: Path, per_topic: int = 25) -> list[str]:
    """A dataset whose prompts fall into six topics; returns the prompt texts."""
    batches = [pairwise_batch(per_topic, start=k * per_topic, prompt=t) for k, t in enumerate(TOPICS)]
    load(db, "demo", batches)
    return [t.format(i=k * per_topic + j) for k, t in enumerate(TOPICS) for j in range(per_topic)]


def cached_hashes(db: Path, table: str, column: str, name: str) -> set[str]:
    with store.reader(db) as con:
        rows = con.execute(f"SELECT text_hash FROM {table} WHERE {column} = ?", [name]).fetchall()
    return {r[0] for r in rows}


@pytest.mark.slow
def test_build_resumes_after_a_crash_without_reasking_cached_items(db: Path, fake: FakeOpenAI, cfg) -> None:
    texts = make_dataset(db, per_topic=20)  # 120 prompts: 2 annotation chunks (64 + 56)
    cfg = cfg.with_(max_retries=1)
    fake.crash_after = 80  # mid second chunk
    with pytest.raises(ArenatreeError):
        build_tree("demo", db=db, annotator="openai", embedder="openai", describer="openai", openai=cfg)
    ann_name = OpenAIAnnotator(cfg).name
    cached = cached_hashes(db, "annotations", "annotator", ann_name)
    assert 0 < len(cached) < len(texts)
    answered = {t for r in fake.requests("chat", status=200) for t in r.texts}
    assert {text_hash(t) for t in texts if any(t in a for a in answered)} >= cached

    fake.reset()  # the server is fixed
    tree = build_tree("demo", db=db, annotator="openai", embedder="openai", describer="openai", openai=cfg)
    asked_again = [t for t in texts if any(t in a for a in fake.texts("chat"))]
    assert not [t for t in asked_again if text_hash(t) in cached]  # nothing cached was asked again
    assert len(asked_again) == len(texts) - len(cached)  # and everything else was
    assert all(r.status == 200 for r in fake.log)

    assert tree["n_items"] == len(texts) and tree["n_nodes"] >= 3
    assert cached_hashes(db, "annotations", "annotator", ann_name) == {text_hash(t) for t in texts}
    with store.reader(db) as con:
        tid = tree["tree_id"]
        members = con.execute("SELECT count(*) FROM node_members WHERE tree_id = ?", [tid]).fetchone()[0]
        blank = con.execute(
            "SELECT count(*) FROM nodes WHERE tree_id = ? AND coalesce(description, '') = ''", [tid]
        ).fetchone()[0]
    assert members == len(texts) and blank == 0


@pytest.mark.slow
def test_build_resumes_after_a_crash_in_the_embedding_step(db: Path, fake: FakeOpenAI, cfg) -> None:
    texts = make_dataset(db, per_topic=4)
    cfg = cfg.with_(max_retries=1)
    fake.crash_after = len(texts)  # every annotation succeeds; the first embedding request fails
    fake.crash_mode = "close"
    with pytest.raises(ArenatreeError):
        build_tree("demo", db=db, annotator="openai", embedder="openai", openai=cfg)
    fake.reset()
    tree = build_tree("demo", db=db, annotator="openai", embedder="openai", openai=cfg)
    assert fake.requests("chat", status=200)  # the describer ran...
    assert not [
        r for r in fake.requests("chat") if any(t in r.texts[0] for t in texts)
    ]  # ...no item re-asked
    with store.reader(db) as con:
        caps = {c for (c,) in con.execute("SELECT capability FROM node_members").fetchall()}
    item_requests = [r for r in fake.requests("embeddings") if caps & set(r.texts)]
    assert len(item_requests) == 1 and tree["n_items"] == len(texts)  # the items embedded once
    # (the other request embeds the offline namer's candidate phrases, the fallback names)


@pytest.mark.slow
def test_api_key_never_reaches_the_database(db: Path, fake: FakeOpenAI, cfg) -> None:
    make_dataset(db, per_topic=4)
    fake.fail(500, times=2)
    tree = build_tree("demo", db=db, annotator="openai", embedder="openai", describer="openai", openai=cfg)
    assert not tree["cached"] and KEY not in json.dumps(tree, default=str)
    with store.reader(db) as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        for table in tables:
            dump = "\n".join(map(str, con.execute(f'SELECT * FROM "{table}"').fetchall()))
            assert KEY not in dump, table
    files = [p for p in db.parent.rglob("*") if p.is_file()]
    assert files and not [p for p in files if KEY.encode() in p.read_bytes()]


# --------------------------------------------------------------------------- timeouts


@contextmanager
def black_hole() -> Iterator[tuple[str, list[socket.socket]]]:
    """A real TCP endpoint that accepts every connection and never answers: (base URL, the
    connections it accepted)."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            held.append(conn)  # kept open, never read from, never answered

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}/v1", held
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        srv.close()


def test_default_settings_give_up_on_a_silent_endpoint_within_about_a_minute() -> None:
    cfg = OpenAIConfig(base_url="http://127.0.0.1:9/v1")
    assert cfg.worst_case_seconds() <= 65, cfg.worst_case_seconds()  # was 6 x 60 s + backoff
    assert cfg.timeout >= 20  # ... but a live server still has 20 s per reply
    timeout = cfg.client().timeout
    assert (timeout.connect, timeout.read) == (10.0, 20.0)


@pytest.mark.slow
def test_a_black_hole_fails_within_its_bound_with_one_line() -> None:
    cfg = OpenAIConfig(base_url="http://unused", timeout=0.5, max_retries=2, backoff_base=0.1)
    with black_hole() as (url, held):
        ann = OpenAIAnnotator(cfg.with_(base_url=url, concurrency=1))
        t0 = time.perf_counter()
        with pytest.raises(ArenatreeError) as err:
            ann.annotate(ITEMS[:1])
        elapsed = time.perf_counter() - t0
        assert held, "the endpoint never saw a connection"
    assert 3 * 0.5 <= elapsed <= cfg.worst_case_seconds() + 1.0, elapsed
    msg = str(err.value)
    assert "\n" not in msg and "after 3 attempts" in msg and "Timeout" in msg and url in msg, msg
    assert ann.stats["requests"] == 3 and ann.stats["retries"] == 2


@pytest.mark.slow
def test_a_slow_but_live_server_works_with_the_defaults(fake: FakeOpenAI) -> None:
    fake.slow, fake.slow_seconds = 1, 2.0
    ann = OpenAIAnnotator(OpenAIConfig(base_url=fake.base_url, api_key=KEY, concurrency=1))
    assert ann.annotate(ITEMS[:1]) == [expected_capability(ITEMS[0])]
    assert ann.stats["retries"] == 0


@pytest.mark.slow
def test_tree_build_timeout_and_retries_flags_bound_a_black_hole(db: Path) -> None:
    make_dataset(db, per_topic=2)
    with black_hole() as (url, held):
        t0 = time.perf_counter()
        out = run_cli(
            "tree", "build", "--dataset", "demo", "--annotator", "openai", "--embedder", "openai",
            "--base-url", url, "--timeout", "1", "--retries", "1",
            db=db,
        )  # fmt: skip
        elapsed = time.perf_counter() - t0
        assert held
    # two attempts of 1 s and one short backoff, plus starting Python; the defaults need > 60 s
    assert 2.0 <= elapsed < 20.0, elapsed
    assert out.returncode == 2, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("arenatree: error: ")]
    assert len(errors) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "after 2 attempts" in errors[0] and "Timeout" in errors[0], errors[0]


@pytest.mark.parametrize(
    ("flag", "value"), [("--timeout", "0"), ("--timeout", "nan"), ("--retries", "-1"), ("--retries", "²")]
)
def test_bad_timeout_or_retries_is_refused_by_the_parser(flag: str, value: str, capsys) -> None:
    from pipelines.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["tree", "build", "--dataset", "d", "--annotator", "openai", flag, value])
    assert exit_.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err

"""Importers on the real bundled data (../shared/data): counts, identities and cross-checks
against independent readings of the source files (csv / json modules, AlpacaEval's own
leaderboard CSV)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipelines.baseline import baseline_view, fixed_baseline
from pipelines.ingest import detect, ingest
from pipelines.ingest.alpaca_eval import winner as alpaca_winner
from pipelines.ingest.pandalm import label as pandalm_label
from pipelines.store import one, reader, run

pytestmark = pytest.mark.slow  # the whole module: its fixtures are the slow part

DATASETS = {
    "llmfao": "llmfao",
    "pandalm": "pandalm",
    "alpaca": "alpaca_eval",
    "arenahard": "arena_hard",
    "math": "math",
}


@pytest.fixture(scope="module")
def store(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """All five bundled datasets imported (auto-detected) into one fresh database."""
    db = tmp_path_factory.mktemp("bundled") / "arenatree.duckdb"
    reports = {}
    for name, folder in DATASETS.items():
        (reports[name],) = ingest([data_dir / folder], name, db=db)
    return {"db": db, "reports": reports}


def q(store: dict, sql: str, params: list | None = None) -> list[tuple]:
    with reader(store["db"]) as con:
        return run(con, sql, params)


def test_detection_picks_the_right_adapter(data_dir: Path) -> None:
    expected = {
        "llmfao": "llmfao",
        "llmfao/crowd-comparisons.csv": "llmfao",
        "pandalm": "pandalm",
        "pandalm/testset-v1.json": "pandalm",
        "alpaca_eval": "alpaca-eval",
        "alpaca_eval/results": "alpaca-eval",
        "alpaca_eval/results/claude/alpaca_eval_gpt4/annotations.json": "alpaca-eval",
        "arena_hard": "arena-hard",
        "arena_hard/v2.0/question.jsonl": "arena-hard",
        "math": "math-results",
        "math/math_test.jsonl": "math-results",
    }
    got = {rel: detect(data_dir / rel).name for rel in expected}
    assert got == expected


# --- LLMFAO ---------------------------------------------------------------------------------


def test_llmfao_crowd_votes(store: dict, data_dir: Path) -> None:
    rows = q(
        store,
        "SELECT count(*), count(DISTINCT judge), count(DISTINCT prompt_id) FROM battles "
        "WHERE dataset = 'llmfao' AND judge_kind = 'human'",
    )
    assert rows == [(8931, 124, 13)]
    models = q(
        store,
        "SELECT DISTINCT m FROM (SELECT model_a m, judge_kind k FROM battles WHERE dataset = "
        "'llmfao' UNION ALL SELECT model_b, judge_kind FROM battles WHERE dataset = 'llmfao') "
        "WHERE k = 'human'",
    )
    names = {json.loads(x)["name"] for x in (data_dir / "llmfao/models.jsonl").open()}
    assert len(models) == 59 and {m for (m,) in models} <= names
    judges = {
        j
        for (j,) in q(
            store,
            "SELECT DISTINCT judge FROM battles WHERE judge_kind = 'human' AND dataset = 'llmfao'",
        )
    }
    with open(data_dir / "llmfao/crowd-comparisons.csv", newline="") as fh:
        src = list(csv.DictReader(fh))
    assert judges == {f"llmfao-worker-{r['worker']}" for r in src}
    # winner mapping: left -> model_a, right -> model_b, tie -> tie, counted independently
    want = Counter({"left": "model_a", "right": "model_b", "tie": "tie"}[r["winner"]] for r in src)
    got = dict(
        q(
            store,
            "SELECT winner, count(*) FROM battles WHERE dataset = 'llmfao' "
            "AND judge_kind = 'human' GROUP BY 1",
        )
    )
    assert got == dict(want)


def test_llmfao_llm_verdicts_on_the_same_pairs(store: dict) -> None:
    by_judge = dict(
        q(
            store,
            "SELECT judge, count(*) FROM battles WHERE dataset = 'llmfao' AND judge_kind = 'llm' GROUP BY 1",
        )
    )
    assert by_judge == {"gpt-4": 2139, "gpt-3.5-turbo-instruct": 2139}
    # the same 2,139 pair ids are judged by crowd and by both LLMs, and stay distinguishable
    (same,) = q(
        store,
        "SELECT count(*) FROM (SELECT DISTINCT source_id FROM battles WHERE dataset = 'llmfao' "
        "AND judge_kind = 'human' INTERSECT SELECT DISTINCT source_id FROM battles "
        "WHERE dataset = 'llmfao' AND judge = 'gpt-4')",
    )
    assert same == (2139,)
    # GPT-4 on pair 0 said "left" (gpt4-crowd-comparisons.csv line 2); crowd said tie
    assert q(
        store,
        "SELECT winner FROM battles WHERE dataset = 'llmfao' AND source_id = '0' AND judge = 'gpt-4'",
    ) == [("model_a",)]


def test_llmfao_texts_and_metadata(store: dict, data_dir: Path) -> None:
    pair = json.loads((data_dir / "llmfao/pairs-crowd.jsonl").open().readline())
    row = q(
        store,
        "SELECT p.text, ra.text, rb.text, b.model_a FROM battles b "
        "JOIN prompts p ON p.dataset = b.dataset AND p.prompt_id = b.prompt_id "
        "JOIN responses ra ON ra.dataset = b.dataset AND ra.response_id = b.response_a "
        "JOIN responses rb ON rb.dataset = b.dataset AND rb.response_id = b.response_b "
        "WHERE b.dataset = 'llmfao' AND b.battle_id = ?",
        [f"{pair['id']}:gpt-4"],
    )
    assert row == [(pair["text"], pair["result_x"], pair["result_y"], "Airoboros L2 70B")]
    (missing,) = q(
        store,
        "SELECT count(*) FROM battles WHERE dataset = 'llmfao' "
        "AND (response_a IS NULL OR response_b IS NULL OR prompt_id IS NULL)",
    )
    assert missing == (0,)
    meta = {
        json.loads(m)["slug"]: json.loads(m)["type"]
        for (m,) in q(store, "SELECT metadata FROM prompts WHERE dataset = 'llmfao'")
    }
    assert len(meta) == 13 and meta["k8s"] == "reflexion" and meta["qft"] == "knowledge"


# --- PandaLM --------------------------------------------------------------------------------


def test_pandalm_human_and_llm_votes(store: dict, data_dir: Path) -> None:
    items = json.loads((data_dir / "pandalm/testset-v1.json").read_text())
    rows = q(
        store,
        "SELECT judge, judge_kind, winner, count(*) FROM battles WHERE dataset = 'pandalm' GROUP BY ALL",
    )
    got = {(j, w): n for j, k, w, n in rows}
    kinds = {j: k for j, k, _, _ in rows}
    names = {0: "tie", 1: "model_a", 2: "model_b"}
    want = Counter()
    for it in items:
        for a in ("annotator1", "annotator2", "annotator3"):
            want[(f"pandalm-{a}", names[it[a]])] += 1
    for fname, field, judge in (
        ("gpt-3.5-turbo-testset-v1.json", "gpt_result", "gpt-3.5-turbo"),
        ("pandalm-7b-testset-v1.json", "pandalm_result", "pandalm-7b"),
    ):
        for rec in json.loads((data_dir / "pandalm" / fname).read_text()):
            verdict = {"1": "model_a", "2": "model_b", "0": "tie", "tie": "tie"}.get(str(rec[field]).lower())
            if verdict:
                want[(judge, verdict)] += 1
    assert got == dict(want)
    assert sum(n for (j, _), n in got.items() if kinds[j] == "human") == 2997
    assert kinds == {
        "pandalm-annotator1": "human",
        "pandalm-annotator2": "human",
        "pandalm-annotator3": "human",
        "gpt-3.5-turbo": "llm",
        "pandalm-7b": "llm",
    }
    models = q(
        store,
        "SELECT DISTINCT m FROM (SELECT model_a m FROM battles WHERE dataset = 'pandalm' "
        "UNION SELECT model_b FROM battles WHERE dataset = 'pandalm') ORDER BY m",
    )
    assert [m for (m,) in models] == [
        "bloom-7b",
        "cerebras-gpt-6.7B",
        "llama-7b",
        "opt-7b",
        "pythia-6.9b",
    ]


def test_pandalm_garbage_verdicts_are_recorded_skips(store: dict) -> None:
    report = store["reports"]["pandalm"]
    assert report.rows_skipped == 25
    skipped = json.loads(q(store, "SELECT skipped FROM imports WHERE dataset = 'pandalm'")[0][0])
    assert {s["field"] for s in skipped} == {"gpt_result"}
    assert all("garbage" in s["reason"] for s in skipped)


def test_pandalm_prompts(store: dict) -> None:
    assert q(store, "SELECT count(*) FROM prompts WHERE dataset = 'pandalm'") == [(170,)]
    # idx 0: instruction + blank line + input; idx 466 has a blank instruction
    (text,) = q(
        store,
        "SELECT p.text FROM prompts p JOIN prompt_sources s USING (dataset, prompt_id) "
        "WHERE dataset = 'pandalm' AND s.source_id = '0'",
    )[0]
    assert text.startswith("The sentence you are given might be too wordy")
    assert text.endswith(
        "\n\nIf you have any questions about my rate or if you find it "
        "necessary to increase or decrease the scope for this project, "
        "please let me know."
    )
    assert q(
        store,
        "SELECT p.text FROM prompts p JOIN prompt_sources s USING (dataset, prompt_id) "
        "WHERE dataset = 'pandalm' AND s.source_id = '466'",
    ) == [("Truthfulness",)]


def test_pandalm_labels() -> None:
    assert [pandalm_label(v) for v in (0, 1, 2, "0", "1", "2", "Tie", 2.0)] == [
        "tie",
        "model_a",
        "model_b",
        "tie",
        "model_a",
        "model_b",
        "tie",
        "model_b",
    ]
    assert [pandalm_label(v) for v in ("garbage", None, 3, True)] == [None] * 4


# --- AlpacaEval -----------------------------------------------------------------------------


def test_alpaca_eval_matches_its_leaderboard(store: dict, data_dir: Path) -> None:
    with open(data_dir / "alpaca_eval/alpaca_eval_gpt4_leaderboard.csv", newline="") as fh:
        board = {r[""]: r for r in csv.DictReader(fh)}
    rows = q(
        store,
        "SELECT model_b, count(*) FILTER (winner = 'model_b'), count(*) FILTER (winner = "
        "'model_a'), count(*) FILTER (winner = 'tie'), count(*) FROM battles "
        "WHERE dataset = 'alpaca' AND model_a = 'text_davinci_003' GROUP BY 1",
    )
    assert len(rows) == 20
    for model, wins, base, draws, total in rows:
        ref = board[model]
        assert (wins, base, draws, total) == (
            int(ref["n_wins"]),
            int(ref["n_wins_base"]),
            int(ref["n_draws"]),
            int(ref["n_total"]),
        ), model


def test_alpaca_eval_fixed_baseline_view_reproduces_its_leaderboard(store: dict, data_dir: Path) -> None:
    """AlpacaEval's own headline numbers from its annotations, to 1e-6 of its published CSV."""
    board = pd.read_csv(data_dir / "alpaca_eval/alpaca_eval_gpt4_leaderboard.csv", index_col=0)
    with reader(store["db"]) as con:
        assert fixed_baseline(con, "alpaca") == "text_davinci_003"
        view = baseline_view(con, "alpaca", "text_davinci_003")
    table = pd.DataFrame(view["table"]).set_index("model")
    assert len(table) == 21 and set(table.index) <= set(board.index)
    ref = board.loc[table.index]
    for col in ("win_rate", "standard_error", "discrete_win_rate"):
        assert np.abs(table[col] - ref[col]).max() < 1e-6, col
    for col in ("n_wins", "n_wins_base", "n_draws", "n_total"):
        assert (table[col] == ref[col]).all(), col
    models = table.drop("text_davinci_003")
    # AlpacaEval's avg_length counts model_outputs.json (every answer, judged or not); the
    # annotations hold the judged ones, so the means agree to a few characters
    assert (models["avg_length"] - ref.loc[models.index, "avg_length"]).abs().max() <= 10
    # the minimal length-controlled GLM (no instruction difficulty) ranks the models like the
    # published length_controlled_v1, not to the point
    lc = models[ref.loc[models.index, "length_controlled_winrate"].notna()]
    rho = stats.spearmanr(lc["length_controlled_winrate"], ref.loc[lc.index, "length_controlled_winrate"])[0]
    assert rho > 0.9


def test_alpaca_eval_judge_skips_and_metadata(store: dict) -> None:
    assert q(store, "SELECT DISTINCT judge, judge_kind FROM battles WHERE dataset = 'alpaca'") == [
        ("alpaca_eval_gpt4", "llm")
    ]
    report = store["reports"]["alpaca"]
    assert (report.rows_read, report.rows_skipped, report.added_battles) == (16100, 11, 16089)
    skipped = json.loads(q(store, "SELECT skipped FROM imports WHERE dataset = 'alpaca'")[0][0])
    assert {s["field"] for s in skipped} == {"preference"} and len(skipped) == 11
    assert all(s["source_file"].endswith("annotations.json") for s in skipped)
    per_set = dict(
        q(
            store,
            "SELECT metadata->>'dataset', count(DISTINCT prompt_id) FROM battles "
            "WHERE dataset = 'alpaca' GROUP BY 1",
        )
    )
    assert per_set == {
        "helpful_base": 129,
        "koala": 156,
        "oasst": 188,
        "selfinstruct": 252,
        "vicuna": 80,
    }
    raw = {
        r
        for (r,) in q(store, "SELECT DISTINCT metadata->>'preference' FROM battles WHERE dataset = 'alpaca'")
    }
    assert {"1.5", "0", "2.0", "1"} <= raw


def test_alpaca_eval_preference_semantics() -> None:
    cases = {
        "2.0": "model_b",
        2: "model_b",
        "1": "model_a",
        1.0: "model_a",
        1.5: "tie",
        0: "tie",
        "0.0": "tie",
        1.2: "model_a",
        1.8: "model_b",
    }
    assert {k: alpaca_winner(k)[0] for k in cases} == cases
    for bad in (None, "abc", float("nan"), 3, -1, 0.5, True):
        assert alpaca_winner(bad)[0] is None, bad


# --- Arena-Hard -----------------------------------------------------------------------------


def test_arena_hard_prompts_and_metadata(store: dict, data_dir: Path) -> None:
    rows = q(
        store,
        "SELECT metadata->>'version', count(*), count(metadata->>'cluster'), "
        "count(metadata->>'subcategory'), count(DISTINCT metadata->>'category') "
        "FROM prompts WHERE dataset = 'arenahard' GROUP BY 1 ORDER BY 1",
    )
    assert rows == [("v0.1", 500, 500, 0, 1), ("v2.0", 750, 0, 750, 2)]
    first = json.loads((data_dir / "arena_hard/v0.1/question.jsonl").open().readline())
    got = q(
        store,
        "SELECT p.text, p.metadata->>'cluster' FROM prompts p JOIN prompt_sources s "
        "USING (dataset, prompt_id) WHERE dataset = 'arenahard' AND s.source_id = ?",
        [first["uid"]],
    )
    assert got == [(first["prompt"], first["cluster"])]


def test_arena_hard_keeps_line_separator_inside_a_prompt(store: dict, data_dir: Path) -> None:
    # a v2.0 prompt holds a raw U+2028; the JSONL reader must not split the line there
    src = [
        json.loads(line)
        for line in (data_dir / "arena_hard/v2.0/question.jsonl").read_text().split("\n")
        if line.strip()
    ]
    texts = [r["prompt"] for r in src if "\u2028" in r["prompt"]]
    assert texts
    (n,) = one_value(
        store, "SELECT count(*) FROM prompts WHERE dataset = 'arenahard' AND text = ?", [texts[0]]
    )
    assert n == 1


def one_value(store: dict, sql: str, params: list) -> tuple:
    with reader(store["db"]) as con:
        return one(con, sql, params)


def test_arena_hard_answers(store: dict, data_dir: Path) -> None:
    rows = q(
        store,
        "SELECT model, count(*), count(prompt_id) FROM responses WHERE dataset = 'arenahard' "
        "GROUP BY 1 ORDER BY 1",
    )
    assert rows == [
        ("gpt-3.5-turbo-0125", 500, 500),
        ("gpt-4-0314", 500, 500),
        ("gpt-4-0613", 500, 500),
    ]
    ans = json.loads((data_dir / "arena_hard/v0.1/model_answer/gpt-4-0613.jsonl").open().readline())
    text = ans["messages"][1]["content"]["answer"]
    got = q(
        store,
        "SELECT r.model FROM responses r JOIN prompt_sources s USING (dataset, prompt_id) "
        "WHERE dataset = 'arenahard' AND s.source_id = ? AND r.text = ?",
        [ans["uid"], text],
    )
    assert got == [("gpt-4-0613",)]
    assert q(store, "SELECT count(*) FROM battles WHERE dataset = 'arenahard'") == [(0,)]


# --- MATH per-instance results --------------------------------------------------------------


def test_math_counts_and_alignment(store: dict, data_dir: Path) -> None:
    assert q(
        store,
        "SELECT count(*), count(DISTINCT instance_id), count(DISTINCT model), count(prompt_id) "
        "FROM results WHERE dataset = 'math'",
    ) == [(25000, 5000, 5, 25000)]
    assert q(store, "SELECT count(*) FROM prompts WHERE dataset = 'math'") == [(5000,)]
    items = [json.loads(x) for x in (data_dir / "math/math_test.jsonl").open()]
    for model_dir in sorted((data_dir / "math/eval_results").iterdir()):
        src = json.loads((model_dir / "results.json").read_text())
        got = dict(
            q(
                store,
                "SELECT instance_id, score FROM results WHERE dataset = 'math' AND model = ?",
                [model_dir.name],
            )
        )
        assert got == {str(it["idx"]): float(v) for it, v in zip(items, src, strict=True)}
    # the prompt of instance 4999 is the problem on the last line, with its type and level
    last = items[-1]
    assert q(
        store,
        "SELECT DISTINCT p.text, p.metadata->>'type', p.metadata->>'level' FROM results r "
        "JOIN prompts p USING (dataset, prompt_id) WHERE dataset = 'math' AND instance_id = ?",
        [str(last["idx"])],
    ) == [(last["problem"], last["type"], last["level"])]


def test_math_accuracy_falls_with_level(store: dict) -> None:
    rows = q(
        store,
        "SELECT r.model, p.metadata->>'level' AS level, avg(r.score) FROM results r "
        "JOIN prompts p USING (dataset, prompt_id) WHERE dataset = 'math' "
        "GROUP BY ALL ORDER BY 1, 2",
    )
    by_model: dict[str, list[float]] = {}
    for model, level, acc in rows:
        by_model.setdefault(model, []).append(acc)
        assert level.startswith("Level ")
    assert len(by_model) == 5
    for model, accs in by_model.items():
        assert len(accs) == 5
        assert accs == sorted(accs, reverse=True) and accs[0] > accs[-1] + 0.2, model


# --- re-import ------------------------------------------------------------------------------


def test_reimport_adds_nothing(store: dict, data_dir: Path) -> None:
    def counts() -> tuple:
        return q(
            store,
            "SELECT (SELECT count(*) FROM battles), (SELECT count(*) FROM prompts), "
            "(SELECT count(*) FROM results), (SELECT count(*) FROM responses)",
        )[0]

    before = counts()
    for name, folder in DATASETS.items():
        (rep,) = ingest([data_dir / folder], name, db=store["db"])
        assert rep.already_imported and rep.added_battles == rep.added_results == 0
    assert counts() == before


def test_overlapping_paths_add_only_new_votes(db: Path, data_dir: Path) -> None:
    """The vote identity is (source id, judge): a file, then its whole folder, adds only the
    votes the file did not hold."""
    (crowd,) = ingest([data_dir / "llmfao/crowd-comparisons.csv"], "llm", db=db)
    assert (crowd.added_battles, crowd.duplicates) == (8931, 0)
    (folder,) = ingest([data_dir / "llmfao"], "llm", db=db)
    assert (folder.added_battles, folder.duplicates) == (2 * 2139, 8931)

    (items,) = ingest([data_dir / "pandalm/testset-v1.json"], "panda", db=db)
    assert items.added_battles == 2997
    (both,) = ingest([data_dir / "pandalm"], "panda", db=db)
    assert (both.added_battles, both.duplicates) == (999 + 999 - 25, 2997)

    one_file = data_dir / "alpaca_eval/results/claude/alpaca_eval_gpt4/annotations.json"
    (single,) = ingest([one_file], "alp", db=db)
    (whole,) = ingest([data_dir / "alpaca_eval/results"], "alp", db=db)
    assert single.added_battles == 805
    assert (whole.added_battles, whole.duplicates) == (16089 - 805, 805)
    with reader(db) as con:
        assert run(con, "SELECT dataset, count(*) FROM battles GROUP BY 1 ORDER BY 1") == [
            ("alp", 16089),
            ("llm", 8931 + 2 * 2139),
            ("panda", 2997 + 999 + 999 - 25),
        ]

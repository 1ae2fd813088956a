"""The selected weakness view (pipelines.weaknesses.stepwise): planted per-capability weaknesses
— by category and by language, not by prompt cluster — are recovered on simulated arenas, a
null arena yields nothing, and facets read the prompts they claim to."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from pipelines.weaknesses import stepwise as S
from pipelines.weaknesses import validity as V
from pipelines.weaknesses.facets import categories, prompt_facets

CAPABILITIES = ["coding", "math", "creative_writing", "non_english"]


def synthetic(rng, offset_points: float, n_votes: int = 30_000):
    """4 models over 400 prompts; model 0 is ``offset_points`` weaker on the first 100 prompts."""
    k, n_p = 4, 400
    group = np.zeros(n_p, bool)
    group[:100] = True
    other = np.zeros(n_p, bool)
    other[150:250] = True
    strength = np.array([0.0, 0.3, -0.2, 0.5])
    a = rng.integers(0, k, n_votes)
    b = (a + rng.integers(1, k, n_votes)) % k
    prompt = rng.integers(0, n_p, n_votes)
    shift = offset_points / S.POINTS_PER_LOGIT
    eta = strength[a] - strength[b] + shift * group[prompt] * ((a == 0) * 1.0 - (b == 0) * 1.0)
    y = (rng.random(n_votes) < 1 / (1 + np.exp(-eta))).astype(float)
    votes = S.Votes([f"m{i}" for i in range(k)], prompt, a, b, y)
    member = np.column_stack([group, other, np.zeros(n_p, bool)]).astype(float)
    member[:, 2] = np.arange(n_p) % 2  # half of every prompt range: overlaps the planted group
    membership = sparse.csr_matrix(np.vstack([member, np.zeros((1, 3))]))
    cand = S.Candidates(
        ["g:planted", "g:other", "g:half"],
        ["category"] * 3,
        ["planted", "other", "half"],
        np.full(3, -1),
        member.sum(axis=0).astype(int),
        membership,
        [str(i) for i in range(n_p)],
    )
    return votes, cand


def test_a_planted_group_is_chosen_alone_and_its_offset_estimated():
    votes, cand = synthetic(np.random.default_rng(0), -200.0)
    tables = S.arena_weaknesses(votes, cand)
    t = tables["m0"].set_index("key")
    assert t.loc["g:planted", "step"] == 1
    assert t.loc["g:half", "step"] == 0 and t.loc["g:other", "step"] == 0  # overlap explained away
    lo, hi = t.loc["g:planted", ["offset_lower", "offset_upper"]]
    assert lo < -200 < hi  # the Wald interval covers the planted offset (no ties: no dilution)
    for m in ("m1", "m2", "m3"):  # opponents backfitted: they do not inherit m0's weakness
        assert (tables[m]["step"] == 0).all()


@pytest.mark.slow
def test_nothing_is_chosen_without_a_planted_effect():
    chosen = 0
    for seed in range(10):
        votes, cand = synthetic(np.random.default_rng(100 + seed), 0.0)
        chosen += sum(int((t["step"] > 0).sum()) for t in S.arena_weaknesses(votes, cand).values())
    assert chosen <= 2  # 10 arenas x 4 models x 3 groups, q = 0.05 and a 50-point floor


def test_facets_read_language_and_categories():
    texts = [
        "Write a Python function that reverses a linked list.",
        "Solve for $x$: $2x + 3 = 7$.",
        "Write a short poem about the sea at night.",
        "Объясни, пожалуйста, как работает фотосинтез в растениях и почему листья зелёные.",
    ]
    assert "coding" in categories(texts[0]) and "math" not in categories(texts[0])
    assert "math" in categories(texts[1]) and "coding" not in categories(texts[1])
    assert categories(texts[2]) == ["creative writing"]
    facets = prompt_facets(texts * 5, min_size=5)
    masks = dict(zip(facets.keys, facets.masks, strict=True))
    assert masks["language:non-English"].tolist() == [False, False, False, True] * 5
    assert masks["category:math"].tolist() == [False, True, False, False] * 5


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, data_dir):
    """A simulated arena (50,000 votes, 12 models) with weaknesses planted on coding, math,
    creative writing and non-English prompts, imported into a fresh store."""
    from pipelines import store
    from pipelines.ingest import ingest
    from pipelines.simulate import simulate

    tmp = tmp_path_factory.mktemp("stepwise")
    made = simulate(
        tmp / "sim",
        votes=50_000,
        models=12,
        voters=500,
        seed=0,
        data_dir=data_dir,
        plant_groups=CAPABILITIES,
        group_size=(50, 1100),
    )
    db = tmp / "a.duckdb"
    ingest([made["files"]["votes"]], "sim", db=db)
    truth = json.loads(Path(made["files"]["truth"]).read_text())
    with store.reader(db) as con:
        votes, cand = S.load_groups(con, "sim", None)
    return truth, votes, cand


@pytest.mark.slow
def test_planted_capability_weaknesses_are_recovered(simulated):
    truth, votes, cand = simulated
    planted = V.planted_by_model(truth, cand.prompt_ids)
    assert {p["group"] for p in truth["planted"]} <= set(CAPABILITIES)
    assert any(p["group"] == "non_english" for p in truth["planted"])
    tables = S.arena_weaknesses(votes, cand)
    f1 = [V.recovery(planted[m], S.chosen_prompts(cand, tables[m], "weak")).f1 for m in planted]
    # measured 0.875 mean over seeds 0-1 (bench/bench_weakness_validity.py --capabilities)
    assert np.mean(f1) >= 0.8
    clean = [m for m in votes.models if m not in planted]
    flagged = [int(S.chosen_prompts(cand, tables[m], "weak").sum()) for m in clean]
    assert np.mean(flagged) < 0.05 * len(cand.prompt_ids)  # models without weaknesses stay clean

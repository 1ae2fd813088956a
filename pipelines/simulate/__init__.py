"""Arena simulator: votes in the ``chatbot_arena_conversations`` schema over real prompts, with
a truth file holding everything that generated them.

``simulate(out_dir, votes=..., models=..., voters=..., seed=...)`` writes into ``out_dir``:

* ``conversations.parquet`` (or ``.jsonl`` / ``.json``, see ``fmt``): the votes, importable with
  ``arenatree ingest DIR/conversations.parquet --dataset sim`` (adapter ``arena-conversations``);
* ``truth.json``: models (strength, popularity, style, refusal and identity-leak rates, planted
  per-group offsets, expected ratings), capability groups (pattern, prompt ids, question ids),
  voters (type and planted parameters), the vote model's coefficients and all parameters;
* ``votes_truth.parquet`` (``vote_truth=True``): one row per vote with its latent parts
  (ratings on the prompt, logit terms, outcome probabilities) and both answers' style features.

The same arguments and seed give byte-identical files. Components draw from independent
streams of the seed (models, offsets, voters, answers, battles, outcomes), so e.g. changing
``votes`` keeps the models, voters and answers. See :mod:`.votes` for the vote model,
:mod:`.texts` for how answers are synthesised, :mod:`.prompts` for the prompt pool and groups.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import ArenatreeError
from ..paths import shared_data_dir
from .population import (
    DEFAULT_VOTER_MIX,
    VOTER_TYPES,
    check_mix,
    check_voter_params,
    make_models,
    make_voters,
    plant_offsets,
)
from .prompts import GROUPS, LANGUAGE_GROUPS, PromptPool, group_membership, load_prompt_pool
from .texts import MAX_TOKENS, REFUSALS, STREAM_WORDS, build_responses
from .truth import SCHEMA, dump_truth, write_vote_truth
from .votes import (
    BOTHBAD_QUALITY,
    BOTHBAD_REFUSAL,
    DEFAULT_STYLE_COEFS,
    LOGIT,
    OUTCOMES,
    STYLE_FEATURES,
    expected_ratings,
    model_ratings_on_prompts,
    outcome_probabilities,
    sample_battles,
    sample_outcomes,
    seat_favourites,
)
from .write import FORMATS, write_votes

__all__ = ["DEFAULT_STYLE_COEFS", "DEFAULT_VOTER_MIX", "FORMATS", "VOTER_TYPES", "simulate"]

ProgressFn = Callable[[str, int, int], None]


def _start_seconds(start: str | float) -> float:
    if isinstance(start, int | float):
        return float(start)
    try:
        dt = datetime.fromisoformat(start)
    except ValueError:
        raise ArenatreeError(f"start must be an ISO date or unix seconds, got {start!r}") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _check(votes: int, models: int, voters: int, fmt: str, tie_rate: float, bothbad_share: float) -> None:
    if votes < 1 or models < 2 or voters < 1:
        raise ArenatreeError(f"need votes >= 1, models >= 2, voters >= 1 (got {votes}, {models}, {voters})")
    if fmt not in FORMATS:
        raise ArenatreeError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not 0 <= tie_rate < 1 or not 0 < bothbad_share < 1:
        raise ArenatreeError("need 0 <= tie_rate < 1 and 0 < bothbad_share < 1")


def _plan_responses(models, n_prompts: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Planned features of every (model, prompt) answer, flattened model-major, shape (M*P,):
    tokens ~ model mean x per-prompt factor (lognormal 0.3) x lognormal(0, 0.4) noise;
    headers, lists, bold ~ Poisson(model means); refusal, leak ~ Bernoulli(model rates)."""
    m = len(models.names)
    prompt_factor = rng.lognormal(0.0, 0.3, n_prompts)
    shape = (m, n_prompts)
    tokens = models.mean_tokens[:, None] * prompt_factor[None, :] * rng.lognormal(0.0, 0.4, shape)
    plan = {
        "tokens": np.rint(np.clip(tokens, 5, MAX_TOKENS)).astype(np.int64),
        "headers": rng.poisson(np.broadcast_to(models.headers[:, None], shape)),
        "lists": rng.poisson(np.broadcast_to(models.lists[:, None], shape)),
        "bold": rng.poisson(np.broadcast_to(models.bold[:, None], shape)),
        "refusal": rng.uniform(size=shape) < models.refusal_rate[:, None],
        "leak": rng.uniform(size=shape) < models.leak_rate[:, None],
        "refusal_template": rng.integers(0, len(REFUSALS), shape),
        "refusal_words": rng.integers(0, 26, shape),
        "start": rng.integers(0, STREAM_WORDS, shape),
    }
    return {k: np.asarray(x).reshape(-1) for k, x in plan.items()}


def _plant_mask(plant_groups: Sequence[str] | None) -> np.ndarray:
    """(n_groups,) bool: the groups offsets may be planted on — every pattern group by default
    (the language groups only when named, so older seeds keep their plantings)."""
    names = [*GROUPS, *LANGUAGE_GROUPS]
    if plant_groups is None:
        return np.array([n in GROUPS for n in names])
    bad = sorted(set(plant_groups) - set(names))
    if bad:
        raise ArenatreeError(f"unknown group(s) {', '.join(bad)} (known: {', '.join(names)})")
    return np.array([n in set(plant_groups) for n in names])


@lru_cache(maxsize=4)
def _pool(data_dir: str, math_prompts: int, max_prompt_chars: int) -> tuple[PromptPool, np.ndarray]:
    """The prompt pool and its group membership (G, P), cached per process (read-only)."""
    pool = load_prompt_pool(Path(data_dir), math_prompts=math_prompts, max_prompt_chars=max_prompt_chars)
    member = group_membership(pool.texts, languages=pool.languages)
    member.flags.writeable = False
    return pool, member


def _points(x: float) -> float | None:
    """A rating for JSON: rounded to 0.01 point, None when undefined (NaN)."""
    return None if np.isnan(x) else round(float(x), 2)


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(idx, minlength=n).astype(np.int64)


def _refusal_penalties(
    base: float, groups: Mapping[str, float] | None, member: np.ndarray, prompt: np.ndarray
) -> float | np.ndarray:
    """The refusal penalty of every vote (n,), log-odds: ``base`` plus ``groups[g]`` for each group
    ``g`` the vote's prompt is in; just ``base`` without groups. ``member`` (G, P) bool."""
    if not groups:
        return base
    bad = sorted(set(groups) - set(GROUPS))
    if bad:
        raise ArenatreeError(f"unknown group(s) {', '.join(bad)} (known: {', '.join(GROUPS)})")
    extra = np.zeros(member.shape[1])
    for name, points in groups.items():
        extra += float(points) * member[list(GROUPS).index(name)]
    return base + extra[prompt]


def simulate(
    out_dir: Path,
    *,
    votes: int = 100_000,
    models: int = 20,
    voters: int = 1_000,
    seed: int = 0,
    data_dir: Path | None = None,
    progress: ProgressFn | None = None,
    fmt: str = "parquet",
    voter_mix: Mapping[str, float] | None = None,
    voter_params: Mapping[str, float | tuple[float, float]] | None = None,
    math_prompts: int = 1000,
    max_prompt_chars: int = 4000,
    strength_spread: float = 500.0,
    weak_share: float = 0.5,
    weaknesses: tuple[int, int] = (1, 3),
    weakness_points: tuple[float, float] = (150.0, 400.0),
    strong_share: float = 0.25,
    strength_points: tuple[float, float] = (100.0, 250.0),
    group_size: tuple[int, int] = (50, 400),
    plant_groups: Sequence[str] | None = None,
    style_coefs: Mapping[str, float] | None = None,
    refusal_penalty: float = 0.5,
    refusal_groups: Mapping[str, float] | None = None,
    tie_rate: float = 0.4,
    bothbad_share: float = 0.5,
    start: str | float = "2023-04-24",
    days: float = 60.0,
    id_prefix: str | None = None,
    moderation: bool = False,
    vote_truth: bool = True,
) -> dict:
    """Simulate an arena and write its votes and truth into ``out_dir`` (created if needed).

    Sizes: ``votes`` votes between ``models`` models cast by ``voters`` voters whose types
    follow ``voter_mix`` (shares over VOTER_TYPES; default DEFAULT_VOTER_MIX; e.g.
    ``{"unbiased": 1}`` for an honest arena) with parameters drawn from ``voter_params``
    (overrides of :data:`.population.VOTER_PARAMS`, each a (min, max) range or one value; e.g.
    :data:`.population.STRONG_ANOMALIES` for always-left, length-loving and always-one-model
    voters). Prompts: the real prompts under ``data_dir``
    (default: the bundled data), ``math_prompts`` MATH problems among them, none longer than
    ``max_prompt_chars`` characters.

    Truth (rating points, 400 = 10x odds): strengths span ``strength_spread`` points around
    1000; ``weak_share`` of the models get ``weaknesses`` (min, max) groups each at minus
    U(``weakness_points``), ``strong_share`` get one group at plus U(``strength_points``), on
    groups of ``group_size`` (min, max) prompts, chosen among ``plant_groups`` (names of
    GROUPS and LANGUAGE_GROUPS; default every pattern group). Vote model (natural log-odds; :mod:`.votes`):
    ``style_coefs`` per normalised style difference (default DEFAULT_STYLE_COEFS),
    ``refusal_penalty`` against a refusing side (plus ``refusal_groups[g]`` more on the prompts
    of group ``g``: a planted node where refusing is punished harder), ties at ``tie_rate``
    between equals (Davidson), ``bothbad_share`` of ties 'both bad' for an average pair.

    Output: ``fmt`` 'jsonl' | 'json' | 'parquet'; votes spread over ``days`` from ``start``
    (ISO date, UTC, or unix seconds); question ids ``<id_prefix><n>`` and judges
    ``<id_prefix>user<j>`` (default prefix ``sim<seed>-``); ``moderation`` adds never-flagged
    openai_moderation / toxic_chat_tag fields; ``vote_truth`` writes votes_truth.parquet.
    ``progress(stage, done, total)`` is called as work advances (stages: 'prompts',
    'answers', 'votes', 'truth').

    Returns a summary dict: out_dir, files {votes, truth, vote_truth}, format, votes, models,
    voters, prompts, answers (distinct), groups, planted (offset count), outcomes {label:
    count}, bytes {file: size}, seconds.
    """
    t0 = time.perf_counter()
    _check(votes, models, voters, fmt, tie_rate, bothbad_share)
    mix = check_mix(DEFAULT_VOTER_MIX if voter_mix is None else voter_mix)
    ranges = check_voter_params(voter_params)
    coefs = dict(DEFAULT_STYLE_COEFS if style_coefs is None else style_coefs)
    bad = sorted(set(coefs) - set(STYLE_FEATURES))
    if bad:
        known = ", ".join(STYLE_FEATURES)
        raise ArenatreeError(f"unknown style feature(s) {', '.join(bad)} (known: {known})")
    data = Path(data_dir) if data_dir is not None else shared_data_dir()
    if data is None or not data.is_dir():
        raise ArenatreeError("bundled data not found: set ARENATREE_DATA or pass data_dir")
    prefix = f"sim{seed}-" if id_prefix is None else id_prefix
    t_start = _start_seconds(start)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def report(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress(stage, done, total)

    # ---- prompts and groups (seed-independent)
    report("prompts", 0, 1)
    pool, member = _pool(str(data), math_prompts, max_prompt_chars)  # member: (G, P)
    n_prompts = len(pool)
    sizes = member.sum(axis=1)
    report("prompts", 1, 1)

    # ---- population
    # spawn(7)'s first six children are spawn(6)'s: the seventh (fans' seats) changes nothing else
    r_models, r_offsets, r_voters, r_answers, r_battles, r_outcomes, r_seats = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(7)
    )
    mod = make_models(models, r_models, spread=strength_spread)
    offsets = plant_offsets(
        models,
        sizes,
        r_offsets,
        weak_share=weak_share,
        weaknesses=weaknesses,
        weakness_points=weakness_points,
        strong_share=strong_share,
        strength_points=strength_points,
        group_size=group_size,
        allowed=_plant_mask(plant_groups),
    )
    vot = make_voters(voters, mix, models, mod.popularity, r_voters, prefix=prefix, params=voter_params)
    plan = _plan_responses(mod, n_prompts, r_answers)

    # ---- battles, and the answers they show (one per (model, prompt), reused)
    bat = sample_battles(votes, n_prompts, mod.popularity, vot.activity, r_battles, start=t_start, days=days)
    seat_favourites(bat, vot, r_seats)
    flat_a = bat["a"] * n_prompts + bat["prompt"]
    flat_b = bat["b"] * n_prompts + bat["prompt"]
    used = np.unique(np.concatenate([flat_a, flat_b]))
    bat["resp_a"] = np.searchsorted(used, flat_a)
    bat["resp_b"] = np.searchsorted(used, flat_b)
    used_model = used // n_prompts
    used_prompt = used % n_prompts
    texts, feats = build_responses(
        {k: x[used] for k, x in plan.items()},
        [mod.families[m] for m in used_model.tolist()],
        progress=lambda d: report("answers", d, len(used)),
    )
    fa = {k: x[bat["resp_a"]] for k, x in feats.items()}
    fb = {k: x[bat["resp_b"]] for k, x in feats.items()}

    # ---- outcomes
    rating = model_ratings_on_prompts(mod, offsets, member)  # (M, P)
    rating_a = rating[bat["a"], bat["prompt"]]
    rating_b = rating[bat["b"], bat["prompt"]]
    kw = {
        "style_coefs": coefs,
        "refusal_penalty": _refusal_penalties(refusal_penalty, refusal_groups, member, bat["prompt"]),
        "tie_rate": tie_rate,
        "bothbad_share": bothbad_share,
    }
    probs, parts = outcome_probabilities(bat, fa, fb, rating_a, rating_b, vot, **kw)
    bat["winner"] = sample_outcomes(probs, r_outcomes)

    # ---- votes file
    width = max(7, len(str(votes - 1)))
    qids = [f"{prefix}{i:0{width}d}" for i in range(votes)]
    votes_path = out / FORMATS[fmt]
    write_votes(
        votes_path,
        fmt,
        bat,
        pool.texts,
        pool.languages,
        texts,
        used_prompt,
        qids,
        vot.judges,
        mod.names,
        moderation=moderation,
        progress=lambda d: report("votes", d, votes),
    )

    # ---- truth
    report("truth", 0, 1)
    sides = (bat, fa, fb, rating_a, rating_b, vot)
    probs_unbiased, _ = outcome_probabilities(*sides, biased=False, **kw)
    probs_clean, _ = outcome_probabilities(*sides, biased=False, style=False, **kw)
    exp_all = expected_ratings(bat["a"], bat["b"], probs, mod.names)
    exp_unbiased = expected_ratings(bat["a"], bat["b"], probs_unbiased, mod.names)
    exp_clean = expected_ratings(bat["a"], bat["b"], probs_clean, mod.names)
    group_names = [*GROUPS, *LANGUAGE_GROUPS]
    prompt_ids = np.asarray(pool.prompt_ids)
    qid_arr = np.asarray(qids)
    vote_group = member[:, bat["prompt"]]  # (G, N)
    battles_per_model = _counts(bat["a"], models) + _counts(bat["b"], models)
    lo, hi = group_size

    def realised(m: int) -> dict:
        sel = used_model == m
        k = int(sel.sum())
        if not k:
            return {"answers": 0}
        return {
            "answers": k,
            **{f: round(float(feats[f][sel].mean()), 4) for f in STYLE_FEATURES},
            "refusal_rate": round(float(feats["refusal"][sel].mean()), 4),
            "identity_leak_rate": round(float(feats["identity_leak"][sel].mean()), 4),
        }

    def group_expected(g: int) -> dict[str, float | None]:
        sel = vote_group[g]
        r = expected_ratings(bat["a"][sel], bat["b"][sel], probs[sel], mod.names)
        return {n: _points(x) for n, x in zip(mod.names, r, strict=True)}

    prompt_votes = _counts(bat["prompt"], n_prompts)
    outcome_counts = _counts(bat["winner"].astype(np.int64), 4)
    judge_votes = _counts(bat["judge"], voters)
    judge_outcomes = np.stack([_counts(bat["judge"][bat["winner"] == k], voters) for k in range(4)], axis=1)
    judge_expected = np.stack([np.bincount(bat["judge"], probs[:, k], voters) for k in range(4)], axis=1)
    planted = [
        {
            "model": mod.names[m],
            "group": group_names[g],
            "points": float(offsets[m, g]),
            "kind": "weakness" if offsets[m, g] < 0 else "strength",
            "n_prompts": int(sizes[g]),
        }
        for m, g in zip(*np.nonzero(offsets), strict=True)
    ]
    truth = {
        "schema": SCHEMA,
        "generator": {"module": "pipelines.simulate", "version": __version__},
        "params": {
            "votes": votes,
            "models": models,
            "voters": voters,
            "seed": seed,
            "data_dir": str(data),
            "fmt": fmt,
            "voter_mix": mix,
            "voter_params": {k: list(r) for k, r in ranges.items()},
            "math_prompts": math_prompts,
            "max_prompt_chars": max_prompt_chars,
            "strength_spread": strength_spread,
            "weak_share": weak_share,
            "weaknesses": list(weaknesses),
            "weakness_points": list(weakness_points),
            "strong_share": strong_share,
            "strength_points": list(strength_points),
            "group_size": list(group_size),
            "plant_groups": list(plant_groups) if plant_groups is not None else list(GROUPS),
            "style_coefs": coefs,
            "refusal_penalty": refusal_penalty,
            "refusal_groups": dict(refusal_groups or {}),
            "tie_rate": tie_rate,
            "bothbad_share": bothbad_share,
            "start": t_start,
            "days": days,
            "id_prefix": prefix,
            "moderation": moderation,
            "vote_truth": vote_truth,
        },
        "files": {
            "votes": votes_path.name,
            "format": fmt,
            "adapter": "arena-conversations",
            "vote_truth": "votes_truth.parquet" if vote_truth else None,
        },
        "counts": {
            "votes": votes,
            "models": models,
            "voters": voters,
            "prompts": n_prompts,
            "answers": len(used),
            "groups": len(group_names),
        },
        "scale": {"points_per_10x_odds": 400.0, "logit_per_point": LOGIT, "mean_rating": 1000.0},
        "vote_model": {
            "decisive_logit": "logit_per_point*(r_a - r_b) + sum_k style_coefs[k]*d_k - "
            "refusal_penalty*(refusal_a - refusal_b) + voter bias; r = strength + sum of the "
            "model's offsets over the prompt's groups",
            "style_feature": "d_k = (x_a - x_b) / (x_a + x_b + 1), x = the answer's count of k "
            "(raw, not standardised)",
            "style_coefs": coefs,
            "refusal_penalty": refusal_penalty,
            "refusal_groups": dict(refusal_groups or {}),
            "refusal_groups_rule": "the refusal penalty of a vote on a prompt in group g is "
            "refusal_penalty + refusal_groups[g] (summed over the prompt's groups)",
            "ties": "Davidson: P(tie) = nu*sqrt(p(1-p)) / (1 + nu*sqrt(p(1-p))), "
            "nu = 2*tie_rate/(1-tie_rate), p = sigmoid(decisive_logit)",
            "tie_rate": tie_rate,
            "bothbad": "P(bothbad | tie) = sigmoid(logit(bothbad_share) + "
            "bothbad_refusal*(refusal_a + refusal_b) - bothbad_quality*((r_a + r_b)/2 - 1000)/200)",
            "bothbad_share": bothbad_share,
            "bothbad_refusal": BOTHBAD_REFUSAL,
            "bothbad_quality": BOTHBAD_QUALITY,
            "voter_bias": {
                "unbiased": "none",
                "position": "+position_logit",
                "length": "+length_coef * d_tokens (on top of the global style term)",
                "refusal_averse": "-refusal_penalty * (refusal_a - refusal_b) (on top of the global term)",
                "random": "fixed outcome probabilities p_model_a, p_model_b, p_tie, p_tie_bothbad",
                "fan": "votes for `model` with probability `loyalty` when it is in the battle, else "
                "unbiased; with `presence`, each of its battles shows `model` with that probability",
            },
            "expected_ratings": "plain Bradley-Terry (ties as half, mean 1000) on the expected outcome "
            "counts of the simulated battles: expected_rating with every term, "
            "expected_rating_unbiased without voter bias, expected_rating_style_free also without "
            "style and refusal terms; groups[].expected_ratings with every term, on the group's votes",
        },
        "outcomes": dict(zip(OUTCOMES, outcome_counts.tolist(), strict=True)),
        "models": [
            {
                "name": mod.names[m],
                "family": mod.families[m],
                "strength": float(mod.strength[m]),
                "popularity": round(float(mod.popularity[m]), 6),
                "style": {
                    "mean_tokens": float(mod.mean_tokens[m]),
                    "headers": float(mod.headers[m]),
                    "lists": float(mod.lists[m]),
                    "bold": float(mod.bold[m]),
                },
                "refusal_rate": float(mod.refusal_rate[m]),
                "identity_leak_rate": float(mod.leak_rate[m]),
                "offsets": {group_names[g]: float(offsets[m, g]) for g in np.flatnonzero(offsets[m])},
                "expected_rating": _points(exp_all[m]),
                "expected_rating_unbiased": _points(exp_unbiased[m]),
                "expected_rating_style_free": _points(exp_clean[m]),
                "battles": int(battles_per_model[m]),
                "realised": realised(m),
            }
            for m in range(models)
        ],
        "planted": planted,
        "groups": [
            {
                "name": name,
                "description": GROUPS[name][0] if name in GROUPS else LANGUAGE_GROUPS[name],
                "pattern": GROUPS[name][1] if name in GROUPS else None,
                "flags": "IGNORECASE" if name in GROUPS else None,
                "rule": "pattern" if name in GROUPS else "language != 'English'",
                "eligible": bool(lo <= sizes[g] <= hi),
                "n_prompts": int(sizes[g]),
                "n_votes": int(vote_group[g].sum()),
                "prompt_ids": sorted(prompt_ids[member[g]].tolist()),
                "question_ids": qid_arr[vote_group[g]].tolist(),
                "expected_ratings": group_expected(g),
            }
            for g, name in enumerate(group_names)
        ],
        "voter_mix": mix,
        "voters": [
            {
                "judge": vot.judges[j],
                "type": VOTER_TYPES[vot.types[j]],
                "params": vot.params(j, mod.names),
                "activity": round(float(vot.activity[j]), 8),
                "votes": int(judge_votes[j]),
                "observed": dict(zip(OUTCOMES, judge_outcomes[j].tolist(), strict=True)),
                "expected": dict(
                    zip(
                        OUTCOMES,
                        (np.round(judge_expected[j] / max(judge_votes[j], 1), 4)).tolist(),
                        strict=True,
                    )
                ),
            }
            for j in range(voters)
        ],
        "prompts": [
            {
                "prompt_id": pool.prompt_ids[p],
                "source": pool.sources[p],
                "source_id": pool.source_ids[p],
                "language": pool.languages[p],
                "groups": [group_names[g] for g in np.flatnonzero(member[:, p])],
                "votes": int(prompt_votes[p]),
            }
            for p in range(n_prompts)
        ],
    }
    truth_path = out / "truth.json"
    dump_truth(truth_path, truth)
    files = {"votes": str(votes_path), "truth": str(truth_path), "vote_truth": None}
    if vote_truth:
        vt = out / "votes_truth.parquet"
        types = [VOTER_TYPES[t] for t in vot.types.tolist()]
        sides_truth = (rating_a, rating_b, parts, probs, fa, fb)
        write_vote_truth(vt, qids, bat, pool.prompt_ids, mod.names, vot.judges, types, *sides_truth)
        files["vote_truth"] = str(vt)
    report("truth", 1, 1)
    return {
        "out_dir": str(out),
        "files": files,
        "format": fmt,
        "votes": votes,
        "models": models,
        "voters": voters,
        "prompts": n_prompts,
        "answers": len(used),
        "groups": len(group_names),
        "planted": len(planted),
        "outcomes": truth["outcomes"],
        "bytes": {k: Path(v).stat().st_size for k, v in files.items() if v},
        "seconds": round(time.perf_counter() - t0, 2),
    }

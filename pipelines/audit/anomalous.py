"""Anomalous voters: whose votes keep disagreeing with everyone else's on the same model pairs.

Follows Chiang et al. 2024 (Chatbot Arena, "Detecting anomalous users"). Every vote gets a
conformal p-value against the OTHER voters' votes on the same (unordered) model pair
(:func:`conformal_pvalues`); a voter's p-values, in vote order, are combined with Fisher's method
at a few seeded random checkpoints (Bonferroni over them), and the voters' p-values are
BH-adjusted across voters.

The outcome of a vote is oriented by model, not by side: which MODEL won, or a tie, or both bad
(4 categories). A voter who always clicks the left answer therefore disagrees with the crowd,
and so do random clickers and fans of a weaker model; a voter whose bias the crowd shares (e.g.
for longer answers, when most voters like length) does not. The nonconformity is the distance
of the vote's score from the pair's mean score (see :func:`conformal_pvalues`; the literal
'rarity' generalisation is available but has almost no power on arena-like data).

What it can see (simulator, 100k votes, 12 models, 1000 voters): random clickers with >= 100
votes 96% flagged, no unbiased voter flagged; fans only when their favourite is the weaker side
(26%; :mod:`.concentrated` is the fan detector); voters with a mild left bias (0.7-1.5 log-odds)
not at all, since each of their votes is individually ordinary (a left bias of 4-6 log-odds:
85% at >= 100 votes). Per-voter side preference is a job for a side-aware test: :mod:`.voter_types`
tests and labels each voter as always one side, always one model, length-loving or random.

E-value variant: we searched public code (FastChat / LMArena repositories, issues and pages)
for FastChat's own e-value anomaly code and did not find it, so this module implements the
standard conformal test martingale instead: each vote's p-value is turned into an e-value by
the mixture calibrator ``e(p) = integral_0^1 k p^(k-1) dk = (1 - p + p ln p) / (p (ln p)^2)``
and a voter's e-values are multiplied in vote order. Under the null (the voter's votes are
exchangeable with the others') the product is a test martingale, so by Ville's inequality
P(its running maximum ever reaches 1/alpha) <= alpha: ``min(1, 1 / max)`` is an anytime-valid
p-value, flagged per voter at ``alpha`` or, with ``fdr``, after BH across voters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..stats import bh_adjust
from .frame import MODEL_A, MODEL_B, AuditVotes
from .result import EXAMPLE_IDS, Finding, not_applicable
from .tables import share_headline

AUDIT = "anomalous_voters"
TITLE = "Anomalous voters"
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def pair_outcomes(v: AuditVotes) -> tuple[np.ndarray, np.ndarray]:
    """Each vote's unordered model pair and model-oriented outcome.

    Returns ``(pair, y)``, both (n_votes,) int64: ``pair`` indexes the distinct unordered pairs
    {a, b} in the data (0..n_pairs-1); ``y`` is 0 = the pair's lower-index model won, 1 = the
    higher-index model won, 2 = tie, 3 = tie (both bad)."""
    lo = np.minimum(v.a, v.b).astype(np.int64)
    hi = np.maximum(v.a, v.b).astype(np.int64)
    _, pair = np.unique(lo * max(len(v.models), 1) + hi, return_inverse=True)
    o = v.outcome.astype(np.int64)
    a_is_lo = v.a == lo
    y = np.where(o == MODEL_A, np.where(a_is_lo, 0, 1), np.where(o == MODEL_B, np.where(a_is_lo, 1, 0), o))
    # ties keep their codes (TIE = 2, BOTHBAD = 3)
    return pair.astype(np.int64), y.astype(np.int64)


def others_counts(v: AuditVotes) -> tuple[np.ndarray, np.ndarray]:
    """Leave-this-voter-out outcome counts: ``(others, y)`` with ``others`` (n_votes, 4) int64 =
    the votes of OTHER judges on the vote's model pair, per model-oriented outcome (see
    :func:`pair_outcomes`), and ``y`` (n_votes,) the vote's own outcome."""
    pair, y = pair_outcomes(v)
    n_pairs = int(pair.max(initial=-1)) + 1
    total = np.bincount(pair * 4 + y, minlength=n_pairs * 4).reshape(n_pairs, 4)
    _, vp = np.unique(v.judge.astype(np.int64) * n_pairs + pair, return_inverse=True)
    own = np.bincount(vp * 4 + y, minlength=(int(vp.max(initial=-1)) + 1) * 4).reshape(-1, 4)
    return total[pair] - own[vp], y


SCORES = ("distance", "rarity")
# score of each model-oriented outcome for the lower-index model: won, lost, tie, both bad
_OUTCOME_SCORE = np.array([1.0, 0.0, 0.5, 0.5])


def conformal_pvalues(v: AuditVotes, *, score: str = "distance", seed: int = 0) -> np.ndarray:
    """Randomised conformal p-value of every vote, shape (n_votes,), in (0, 1].

    The bag is the vote plus the other judges' votes on the same model pair (N of them, counts
    from :func:`others_counts`); every bag item gets a nonconformity computed from the whole bag
    (so it is symmetric in the bag), and with ``U ~ U(0, 1]``::

        p = (#others stranger than the vote + U * (#others as strange + 1)) / (N + 1)

    i.e. the vote's randomised rank by strangeness, exactly U(0, 1) when the vote is exchangeable
    with the others' (same pair, no voter effect). A vote whose pair nobody else judged gets
    p = U. ``score``:

    * 'distance' (default): an outcome's score for the pair's lower-index model is 1 (it won),
      0 (it lost), 1/2 (tie or both bad); nonconformity = |score - bag mean score|, so a vote
      for the model the crowd prefers less is strange (in proportion to how lopsided the crowd
      is), and a tie is strange only on lopsided pairs. For two outcomes (no ties) it is the
      one-sided p-value of Chiang et al. 2024.
    * 'rarity': nonconformity = how few bag items share the outcome (the literal generalisation
      of the paper's p-value to 4 categories). Ties and both-bad are the rare categories in
      arena data, so a voter who clicks decisively at random looks *more* ordinary under it;
      on the simulator it has almost no power (see tests/test_audit_voters.py).

    ``seed`` draws U (one per vote, in vote order)."""
    others, y = others_counts(v)
    return _pvalues(others, y, score, seed)


def _pvalues(others: np.ndarray, y: np.ndarray, score: str, seed: int) -> np.ndarray:
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    rows = np.arange(len(y))
    bag = others.copy()
    bag[rows, y] += 1
    if score == "rarity":
        strange = -bag.astype(np.float64)
    else:
        mean = (bag @ _OUTCOME_SCORE) / bag.sum(axis=1)
        strange = np.abs(_OUTCOME_SCORE[None, :] - mean[:, None])
    own = strange[rows, y][:, None]
    tol = 1e-12
    stranger = (others * (strange > own + tol)).sum(axis=1)
    same = (others * (np.abs(strange - own) <= tol)).sum(axis=1) + 1
    u = 1.0 - np.random.default_rng(seed).random(len(y))  # (0, 1]
    return (stranger + u * same) / (others.sum(axis=1) + 1)


def mixture_evalue(p: np.ndarray) -> np.ndarray:
    """Mixture p-to-e calibrator ``integral_0^1 k p^(k-1) dk = (1 - p + p ln p) / (p (ln p)^2)``,
    elementwise for p in (0, 1]; e(1) = 1/2, e(p) ~ 1 / (p ln(p)^2) as p -> 0. Integrates to 1
    over U(0, 1), so it is an e-value for a valid p-value."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-300, 1.0)
    x = -np.log(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = (1.0 - p - p * x) / (p * x * x)
    return np.where(x < 1e-4, 0.5 + x / 6.0, exact)  # series near p = 1 (cancellation)


def _splitmix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wraps mod 2^64)."""
    x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
    x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
    x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
    return x ^ (x >> np.uint64(31))


def checkpoint_positions(judges: list[str], n_votes: np.ndarray, checkpoints: int, seed: int) -> np.ndarray:
    """Fisher checkpoints (n_judges, checkpoints) int64 in 1..n_votes[j], drawn uniformly (with
    replacement) from a hash of (seed, judge name, k): the same voter gets the same positions
    whatever other voters are in the data."""
    key = pd.util.hash_array(np.asarray(judges, dtype=object)).astype(np.uint64)
    with np.errstate(over="ignore"):
        base = _splitmix(key ^ _splitmix(np.full(len(judges), seed, dtype=np.uint64)))
        k = np.arange(checkpoints, dtype=np.uint64)[None, :]
        h = _splitmix(base[:, None] + k * np.uint64(0xD1B54A32D192ED03))
    u = (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)  # [0, 1)
    n = np.maximum(np.asarray(n_votes, dtype=np.int64), 1)[:, None]
    return 1 + np.minimum((u * n).astype(np.int64), n - 1)


def _segments_max(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Maximum of ``values`` over each run starting at ``starts`` (non-empty runs)."""
    return np.maximum.reduceat(values, starts) if len(starts) else np.zeros(0)


def _example_lists(ids: np.ndarray, starts: np.ndarray, counts: np.ndarray, limit: int) -> list[list[str]]:
    """First ``limit`` entries of each run of ``ids`` (runs given by starts/counts), as lists."""
    take = np.minimum(counts, limit)
    within = np.arange(len(ids)) - np.repeat(starts, counts)
    kept = ids[within < np.repeat(take, counts)]
    return [part.tolist() for part in np.split(kept, np.cumsum(take)[:-1])]


def anomalous_voters(
    v: AuditVotes,
    *,
    alpha: float = 0.05,
    fdr: bool = True,
    min_votes: int = 20,
    checkpoints: int = 5,
    score: str = "distance",
    seed: int = 0,
) -> Finding:
    """Voters whose votes disagree with the other voters' votes on the same pairs more than chance.

    Per vote a conformal p-value (:func:`conformal_pvalues`, randomised with ``seed``); per voter
    Fisher's statistic ``M_j = -2 sum_{i<=j} ln p_i ~ chi2(2j)`` over the voter's first j votes
    (vote order) at ``checkpoints`` seeded random positions j (:func:`checkpoint_positions`),
    voter p = min(1, K * min_j chi2.sf(M_j, 2j)). Also the conformal test martingale (module
    docstring): e_value = running maximum of the product of mixture e-values.

    Table 'voters' (one row per judge, most anomalous first): judge, judge_kind, votes,
    fisher_stat (M_j at the deciding checkpoint), checkpoint (that j), p_value, q_value (BH
    across voters with >= ``min_votes`` votes; NaN for the others), flagged (q <= alpha with
    ``fdr``, else p <= alpha; never for voters under ``min_votes``), e_value, e_p_value
    (min(1, 1/e_value), anytime-valid by Ville), flagged_e (BH of e_p_value with ``fdr``, else
    e_value >= 1/alpha), disagree_rate (share of the voter's votes, among those whose pair others
    also judged, whose outcome is not the others' most common one), minus_log10_p, battle_ids
    (the voter's lowest-p votes first). Headline: share of eligible voters flagged, Wilson
    interval at 95%, n = eligible voters.
    """
    params = {
        "alpha": alpha,
        "fdr": fdr,
        "min_votes": min_votes,
        "checkpoints": checkpoints,
        "score": score,
        "seed": seed,
    }
    if len(v.judges) < 2:
        return not_applicable(AUDIT, TITLE, "Needs votes from at least two judges to compare them.", **params)
    if checkpoints < 1:
        raise ValueError(f"checkpoints must be >= 1, got {checkpoints}")

    others, y = others_counts(v)
    p = _pvalues(others, y, score, seed)
    seen = others.sum(axis=1) > 0
    minority = seen & (others[np.arange(len(y)), y] < others.max(axis=1))

    # voter runs in vote order
    order = np.argsort(v.judge, kind="stable")
    judge_sorted = v.judge[order]
    present, starts, counts = np.unique(judge_sorted, return_index=True, return_counts=True)
    n_voters = len(present)
    log_p = np.log(p[order])
    cs = np.concatenate([[0.0], np.cumsum(-2.0 * log_p)])
    pos = checkpoint_positions([v.judges[j] for j in present], counts, checkpoints, seed)
    fisher = cs[starts[:, None] + pos] - cs[starts[:, None]]
    p_check = stats.chi2.sf(fisher, 2 * pos)
    best = np.argmin(p_check, axis=1)
    rows = np.arange(n_voters)
    p_voter = np.minimum(1.0, checkpoints * p_check[rows, best])

    # conformal test martingale: running max of the product of e-values
    log_e = np.log(mixture_evalue(p[order]))
    ce = np.cumsum(log_e)
    offset = np.repeat(np.concatenate([[0.0], ce])[starts], counts)
    e_max = np.exp(np.minimum(_segments_max(ce - offset, starts), 700.0))
    e_p = np.minimum(1.0, 1.0 / e_max)

    eligible = counts >= min_votes
    q = np.full(n_voters, np.nan)
    q[eligible] = bh_adjust(p_voter[eligible])
    q_e = np.full(n_voters, np.nan)
    q_e[eligible] = bh_adjust(e_p[eligible])
    flagged = eligible & ((q <= alpha) if fdr else (p_voter <= alpha))
    flagged_e = eligible & ((q_e <= alpha) if fdr else (e_max >= 1.0 / alpha))

    n_seen = np.bincount(v.judge[seen], minlength=len(v.judges))[present]
    n_minor = np.bincount(v.judge[minority], minlength=len(v.judges))[present]
    with np.errstate(invalid="ignore", divide="ignore"):
        disagree = np.where(n_seen > 0, n_minor / n_seen, np.nan)

    # evidence: each voter's lowest-p votes first
    ev = np.lexsort((p, v.judge))
    ids = v.votes["battle_id"].astype(str).to_numpy()[ev]
    examples = _example_lists(ids, starts, counts, EXAMPLE_IDS)

    kind = v.votes["judge_kind"].astype(str).to_numpy()[order][starts]
    table = pd.DataFrame(
        {
            "judge": [v.judges[j] for j in present],
            "judge_kind": kind,
            "votes": counts,
            "fisher_stat": fisher[rows, best],
            "checkpoint": pos[rows, best],
            "p_value": p_voter,
            "q_value": q,
            "flagged": flagged,
            "e_value": e_max,
            "e_p_value": e_p,
            "flagged_e": flagged_e,
            "disagree_rate": disagree,
            "minus_log10_p": -np.log10(np.maximum(p_voter, 1e-300)),
            "battle_ids": examples,
        }
    )
    table = table.sort_values(["p_value", "votes"], ascending=[True, False], kind="stable").reset_index(
        drop=True
    )

    n_elig = int(eligible.sum())
    n_flag = int(flagged.sum())
    headline = share_headline(
        "share of voters flagged as anomalous", n_flag, n_elig, float(np.nanmin(q)) if n_elig else None
    )
    share, lower, upper = headline["estimate"], headline["lower"], headline["upper"]
    rule = f"BH q <= {alpha}" if fdr else f"p <= {alpha}"
    if n_elig:
        top = table[table["flagged"]].head(3)
        strongest = ", ".join(
            f"{r.judge} ({r.votes} votes, {100 * r.disagree_rate:.0f}% against the crowd)"
            for r in top.itertuples()
        )
        summary = (
            f"{n_flag} of {n_elig} voters with at least {min_votes} votes ({100 * share:.1f}%, 95% CI "
            f"{100 * lower:.1f}-{100 * upper:.1f}%) vote unlike the other voters on the same model "
            f"pairs ({rule}); the e-value martingale flags {int(flagged_e.sum())}."
            + (f" Strongest: {strongest}." if strongest else "")
        )
    else:
        summary = f"No voter has at least {min_votes} votes, so none can be tested."
    plot = {
        "table": "voters",
        "kind": "scatter",
        "x": "votes",
        "y": "minus_log10_p",
        "color": "flagged",
        "label": "judge",
        "log_x": True,
    }
    return Finding(
        audit=AUDIT,
        title=TITLE,
        summary=summary,
        headline=headline,
        tables={"voters": table},
        plot=plot,
        params=params,
    )

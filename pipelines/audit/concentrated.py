"""Concentrated voters: whose votes favour one model beyond what the ratings predict.

One global Bradley–Terry fit (ties count half a win each, :func:`pipelines.ratings.fit_pairwise`)
predicts every vote (optionally scaled by the voter's own consistency slope, so voters who click
at random are not mistaken for fans of every underdog); for each (voter, model) the model's
observed score in that voter's votes (wins + ties / 2) is compared with its predicted score.
The per-cell p-value is the Chernoff bound with the Bernoulli moment generating function,

    P(S >= s) <= min_{lambda >= 0} exp(-(lambda s - sum_i ln(1 - p_i + p_i e^lambda))),

valid for any independent scores in [0, 1] with means p_i (a score with ties has mean p_i and
is dominated in convex order by a Bernoulli(p_i), so ties only make it more conservative). It is
used instead of the normal z (reported too) because a voter sees a model a handful of times: a
single win of a 5% underdog has z = 4.4 but probability 5%, and the normal tail would flag such
voters by the hundred. The bound is exact when the voter gave the model every point (a fan's
signature, probability prod p_i) and conservative by a factor of roughly 2-10 at moderate z.
A voter's p-value is Bonferroni over the models they saw; BH across voters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from ..ratings import fit_pairwise
from ..stats import bh_adjust
from .frame import MODEL_A, MODEL_B, AuditVotes
from .result import EXAMPLE_IDS, Finding, not_applicable
from .tables import share_headline

AUDIT = "concentrated_voters"
TITLE = "Voters concentrated on one model"
LAMBDA_MAX = 40.0  # upper end of the Chernoff parameter search (natural log-odds)
BISECTIONS = 40


def vote_expectations(v: AuditVotes) -> tuple[np.ndarray, np.ndarray]:
    """Model_a's observed score and predicted log-odds per vote, (n_votes,) float each.

    Score: 1 model_a won, 0 model_b won, 1/2 either tie. Log-odds: beta_a - beta_b from one
    Bradley–Terry fit to all votes, ties counting half a win (natural log-strengths)."""
    n_models = len(v.models)
    o = np.minimum(v.outcome.astype(np.int64), 2)  # 0 a won, 1 b won, 2 tie of either kind
    flat = np.bincount((v.a * n_models + v.b) * 3 + o, minlength=n_models * n_models * 3)
    flat = flat.reshape(n_models * n_models, 3)
    keep = np.flatnonzero(flat.sum(axis=1))
    beta = fit_pairwise(keep // n_models, keep % n_models, n_models, flat[keep].astype(np.float64))
    beta = beta[:n_models]
    score = np.where(v.outcome == MODEL_A, 1.0, np.where(v.outcome == MODEL_B, 0.0, 0.5))
    return score, beta[v.a] - beta[v.b]


def voter_slopes(
    judge: np.ndarray, score: np.ndarray, x: np.ndarray, n_judges: int, iterations: int = 25
) -> np.ndarray:
    """Per-judge consistency slope gamma (n_judges,): the maximum-likelihood gamma of
    P(model_a scores) = sigmoid(gamma * x) over the judge's votes (``x`` (n_votes,) the global
    log-odds beta_a - beta_b, ``score`` in {0, 1/2, 1} as a fractional outcome), by vectorised
    Newton from gamma = 1, clipped to [0, 4]. 1 = as consistent as the crowd, 0 = random."""
    gamma = np.ones(n_judges)
    for _ in range(iterations):
        q = expit(gamma[judge] * x)
        grad = np.bincount(judge, weights=(score - q) * x, minlength=n_judges)
        hess = np.bincount(judge, weights=q * (1 - q) * x * x, minlength=n_judges)
        gamma = np.clip(gamma + grad / np.maximum(hess, 1e-9), 0.0, 4.0)
    return gamma


def chernoff_tail(s: np.ndarray, p: np.ndarray, cell: np.ndarray, n_cells: int) -> np.ndarray:
    """Upper bound on P(S_c >= s_c) per cell c, shape (n_cells,), for S_c a sum of independent
    [0, 1] scores with means ``p`` (n_entries,) in cell ``cell`` (n_entries,) int; ``s``
    (n_cells,) the observed sums. Chernoff bound with the Bernoulli MGF, minimised over lambda by
    bisection on the saddlepoint equation (any lambda gives a valid bound). 1 where s <= mean;
    prod p_i where s reaches the cell's size (the exact probability of a clean sweep).
    ``exp`` of :func:`log_chernoff_tail`."""
    return np.exp(log_chernoff_tail(s, p, cell, n_cells))


def log_chernoff_tail(s: np.ndarray, p: np.ndarray, cell: np.ndarray, n_cells: int) -> np.ndarray:
    """Natural log of :func:`chernoff_tail`'s bound, shape (n_cells,), <= 0: stays finite where the
    bound itself underflows (a fan's sweep of hundreds of battles)."""
    p = np.clip(p, 1e-12, 1 - 1e-12)
    size = np.bincount(cell, minlength=n_cells).astype(np.float64)
    mean = np.bincount(cell, weights=p, minlength=n_cells)
    out = np.zeros(n_cells)
    sweep = s >= size - 1e-9
    log_prod = np.bincount(cell, weights=np.log(p), minlength=n_cells)
    out[sweep] = log_prod[sweep]
    active = (s > mean + 1e-12) & ~sweep
    if not active.any():
        return out
    sel = active[cell]
    c, pp = cell[sel], p[sel]
    lo = np.zeros(n_cells)
    hi = np.full(n_cells, LAMBDA_MAX)
    for _ in range(BISECTIONS):  # K'(lambda) is increasing: bisection on K'(lambda) = s
        lam = 0.5 * (lo + hi)
        e = np.exp(lam[c])
        k1 = np.bincount(c, weights=pp * e / (1 - pp + pp * e), minlength=n_cells)
        below = k1 < s
        lo = np.where(below, lam, lo)
        hi = np.where(below, hi, lam)
    lam = 0.5 * (lo + hi)
    k0 = np.bincount(c, weights=np.log1p(pp * np.expm1(lam[c])), minlength=n_cells)
    bound = np.minimum(0.0, -(lam * s - k0))
    out[active] = bound[active]
    return out


def concentrated_voters(
    v: AuditVotes,
    *,
    alpha: float = 0.05,
    fdr: bool = True,
    min_votes: int = 20,
    calibrate: bool = True,
) -> Finding:
    """Voters who give one model more points than the global ratings predict.

    For each (voter, model): S = the model's wins + ties / 2 in that voter's votes, E = sum of
    its predicted win probabilities, V = sum p (1 - p); z = (S - E) / sqrt(V); one-sided
    p-value by :func:`chernoff_tail`. Predictions: p = sigmoid(gamma_v * (beta_a - beta_b)) with
    the global ratings (:func:`vote_expectations`) and, with ``calibrate``, the voter's own
    consistency slope gamma_v (:func:`voter_slopes`; else gamma = 1). Calibrating stops voters
    who click at random (gamma ~ 0) from counting as fans of every underdog: on the simulator it
    removed all 3 such false positives and no fan (one fitted parameter per voter, so the test
    stays close to its level: see the null simulation in tests/test_audit_voters.py).
    Voter p = min(1, m * min over models), m = models the voter saw (Bonferroni); q = BH across
    voters with >= ``min_votes`` votes.

    Table 'voters' (one row per judge, most significant first): judge, judge_kind, votes,
    models_seen, consistency (gamma_v), favourite (the model with the smallest p, ties by largest z),
    battles_with_favourite, observed_rate (S / battles), expected_rate (E / battles),
    excess_wins (S - E), z, p_value, q_value (NaN under ``min_votes``), flagged (q <= alpha
    with ``fdr``, else p <= alpha; only voters with >= ``min_votes``), minus_log10_p,
    battle_ids (the voter's votes for the favourite: its wins, then its ties, in vote order).
    Headline: share of eligible voters flagged with a 95% Wilson interval, n = eligible voters.
    """
    params = {"alpha": alpha, "fdr": fdr, "min_votes": min_votes, "calibrate": calibrate}
    if len(v.judges) < 2 or len(v.models) < 3:
        return not_applicable(
            AUDIT, TITLE, "Needs at least two judges and three models to tell a favourite apart.", **params
        )
    n_models = len(v.models)
    score, x = vote_expectations(v)
    judge = v.judge.astype(np.int64)
    slope = voter_slopes(judge, score, x, len(v.judges)) if calibrate else np.ones(len(v.judges))
    p_a = expit(slope[judge] * x)
    key = np.concatenate([judge * n_models + v.a, judge * n_models + v.b])
    s_all = np.concatenate([score, 1.0 - score])
    p_all = np.concatenate([p_a, 1.0 - p_a])
    cells, cell = np.unique(key, return_inverse=True)
    n_cells = len(cells)
    S = np.bincount(cell, weights=s_all, minlength=n_cells)
    E = np.bincount(cell, weights=p_all, minlength=n_cells)
    V = np.bincount(cell, weights=p_all * (1 - p_all), minlength=n_cells)
    n = np.bincount(cell, minlength=n_cells)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(V > 0, (S - E) / np.sqrt(V), 0.0)
    p_cell = chernoff_tail(S, p_all, cell, n_cells)
    c_judge, c_model = cells // n_models, cells % n_models

    # favourite per voter: smallest p, then largest z
    order = np.lexsort((-z, p_cell, c_judge))
    first = np.ones(len(order), dtype=bool)
    first[1:] = c_judge[order][1:] != c_judge[order][:-1]
    fav = order[first]  # cell index of each present voter's favourite
    voters = c_judge[fav]
    seen = np.bincount(c_judge, minlength=len(v.judges))[voters]
    votes = np.bincount(judge, minlength=len(v.judges))[voters]
    p_voter = np.minimum(1.0, seen * p_cell[fav])
    eligible = votes >= min_votes
    q = np.full(len(voters), np.nan)
    q[eligible] = bh_adjust(p_voter[eligible])
    flagged = eligible & ((q <= alpha) if fdr else (p_voter <= alpha))

    # evidence: votes for the favourite (wins, then ties), in vote order
    fav_model = np.full(len(v.judges), -1)
    fav_model[voters] = c_model[fav]
    f = fav_model[judge]
    fav_won = ((v.a == f) & (v.outcome == MODEL_A)) | ((v.b == f) & (v.outcome == MODEL_B))
    fav_tie = ((v.a == f) | (v.b == f)) & (v.outcome >= 2)
    keep = np.flatnonzero(fav_won | fav_tie)
    keep = keep[np.lexsort((keep, ~fav_won[keep], judge[keep]))]
    ids = v.votes["battle_id"].astype(str).to_numpy()
    kj = judge[keep]
    rank = np.arange(len(keep)) - np.searchsorted(kj, kj)
    keep = keep[rank < EXAMPLE_IDS]
    kj = judge[keep]
    split = np.searchsorted(kj, voters)
    ends = np.searchsorted(kj, voters, side="right")
    examples = [ids[keep[a:b]].tolist() for a, b in zip(split, ends, strict=True)]

    kind = pd.Series(v.votes["judge_kind"].astype(str).to_numpy()).groupby(judge).first()
    table = pd.DataFrame(
        {
            "judge": [v.judges[j] for j in voters],
            "judge_kind": kind.reindex(voters).to_numpy(),
            "votes": votes,
            "models_seen": seen,
            "consistency": slope[voters],
            "favourite": [v.models[m] for m in c_model[fav]],
            "battles_with_favourite": n[fav],
            "observed_rate": S[fav] / n[fav],
            "expected_rate": E[fav] / n[fav],
            "excess_wins": S[fav] - E[fav],
            "z": z[fav],
            "p_value": p_voter,
            "q_value": q,
            "flagged": flagged,
            "minus_log10_p": -np.log10(np.maximum(p_voter, 1e-300)),
            "battle_ids": examples,
        }
    )
    table = table.sort_values(["p_value", "z"], ascending=[True, False], kind="stable").reset_index(drop=True)

    n_elig = int(eligible.sum())
    n_flag = int(flagged.sum())
    headline = share_headline(
        "share of voters concentrated on one model", n_flag, n_elig, float(np.nanmin(q)) if n_elig else None
    )
    share, lower, upper = headline["estimate"], headline["lower"], headline["upper"]
    rule = f"BH q <= {alpha}" if fdr else f"p <= {alpha}"
    if n_elig:
        top = table[table["flagged"]].head(3)
        strongest = ", ".join(
            f"{r.judge} for {r.favourite} ({100 * r.observed_rate:.0f}% of points in "
            f"{r.battles_with_favourite} battles vs {100 * r.expected_rate:.0f}% expected)"
            for r in top.itertuples()
        )
        summary = (
            f"{n_flag} of {n_elig} voters with at least {min_votes} votes ({100 * share:.1f}%, 95% CI "
            f"{100 * lower:.1f}-{100 * upper:.1f}%) favour one model beyond what the ratings "
            f"predict ({rule})." + (f" Strongest: {strongest}." if strongest else "")
        )
    else:
        summary = f"No voter has at least {min_votes} votes, so none can be tested."
    plot = {
        "table": "voters",
        "kind": "scatter",
        "x": "expected_rate",
        "y": "observed_rate",
        "color": "flagged",
        "label": "judge",
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

"""Anomalous voter types: which kind of anomaly a voter shows, if any, with the evidence.

Every voter with at least ``min_votes`` votes gets four tests against the crowd (the OTHER voters'
votes), one per kind of anomaly:

* ``side`` — always one side: the voter's left wins among its decisive votes against the crowd's
  left share (the other voters' decisive votes), exact two-sided binomial test. Arena battles
  put the two models on sides at random, so an unbiased voter's left wins are Binomial(decisive,
  crowd share) whatever models it saw.
* ``one_model`` — always one model: for every model the voter saw, the model's outright wins in
  the voter's battles with it against the crowd's probability of an outright win of that model on
  each of those battles; one-sided Chernoff bound (:func:`.concentrated.log_chernoff_tail`,
  exact for a clean sweep); Bonferroni over the models seen. The favourite is the model with the
  smallest p.
* ``length`` — length-loving: the longer answer's wins among the voter's decisive votes whose
  answers differ in length against the crowd's probability that the longer side wins each (a
  Bradley–Terry + style fit on the decisive votes: tokens, headers, lists, bold and one-sided
  refusals), one-sided, continuity-corrected saddlepoint tail (:func:`lattice_tail`). Votes where
  exactly one side refused are left out: refusals are short, so a voter who dislikes refusals
  would look length-loving (as in :mod:`.style_bias`). A sign test rather than a score test on
  the token difference: a length-lover picks the longer answer also when it is only a bit longer.
* ``random`` — random clicking: the log-likelihood ratio of a random clicker (either model with
  probability (1 - tau) / 2, a tie or both-bad with tau / 2 each; ``random_tie`` = tau) against
  the crowd's outcome probabilities on the vote's model pair, summed over the voter's votes
  (Neyman–Pearson: the most powerful test against that clicker). Its upper tail under the crowd
  is the Barndorff-Nielsen r* saddlepoint approximation (:func:`llr_tail`). Gated: p = 1 unless
  the voter's decisive votes alone are closer to a coin flip than the crowd's odds predict (their
  coin-flip log-likelihood ratio above its expectation under the crowd), so a judge that never
  ties but sides with the crowd's favourite more often than the crowd does (GPT-4 on LLMFAO) is
  not called random. The gate only removes rejections, so the test stays valid. Without the tie
  term random clickers with 20-50 votes are mostly out of reach (decisive votes alone: 50% vs
  the crowd's ~68% for its favourite; label recall 0.64 on one simulator seed).

Crowd outcome probabilities of a vote (model-oriented: the pair's lower-index model won, the
higher won, tie, both bad): the other voters' counts on the same unordered pair (as
:func:`.anomalous.others_counts`, over the crowd's votes) plus ``PRIOR_VOTES`` pseudo-votes
from one Bradley–Terry fit (ties half a win) with the global tie and both-bad shares, so pairs
few others judged fall back on the ratings.

The crowd is re-estimated once without the voters a quick first pass flags (``trim``): 5%
always-left voters would otherwise move the crowd's left share to 0.525 and get unbiased
voters with many votes flagged as right-leaning, and fans would lower their favourite's
opponents' expected wins.

Multiplicity: a voter's p-value is Bonferroni over the four types, BH across the voters with at
least ``min_votes`` votes (``fdr``; else the voter's p-value against ``alpha``), so the
flagged voters' false-discovery rate is at most ``alpha``. (BH over all (voter, type) p-values
at once flagged more unbiased voters: ~7% of the flags on the simulator, against ~2%.) A
flagged voter gets one label: among the types that clear the threshold alone, the one whose
one-parameter model of the voter's votes gains the most log-likelihood over the crowd's
(:func:`label_gains`) — always-left voters also look random to the random test and random
clickers hand a weak model unexpected wins, so the smallest p-value alone mislabels them.

On the simulator (bench/bench_voter_types.py: 100k votes, 12 models, 1,000 voters, 5% of each
strong anomaly, 3 seeds): precision and recall >= 0.9 per type for voters with >= 20 votes, for
detection and for the label; numbers in the README.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from ..ratings import fit_pairwise
from ..stats import bh_adjust
from .anomalous import pair_outcomes
from .concentrated import log_chernoff_tail, vote_expectations
from .covariates import flag_difference, outcome_counts, style_covariates
from .frame import BOTHBAD, MODEL_A, MODEL_B, TIE, AuditVotes
from .result import Finding, not_applicable
from .tables import ranked_examples, share_headline, voter_rows

AUDIT = "voter_types"
TITLE = "Anomalous voter types: always one side, always one model, length-loving, random"
TYPES = ("side", "one_model", "length", "random")
PRIOR_VOTES = 10.0  # Bradley–Terry pseudo-votes added to the other voters' counts on a pair
RANDOM_TIE = 0.1  # tau of the random clicker the random test is most powerful against
LAMBDA_MAX = 20.0  # upper end of the saddlepoint search
SADDLE_STEPS = 40
LABEL_RIDGE = 0.05  # ridge on the per-voter label coefficients (finite for one-sided voters)
LABEL_STEPS = 30
MAX_LABEL_STEP = 1.0  # log-odds per Newton step
# The crowd's BT + style fit uses every k-th of its decisive votes, at most this many: at 200k
# votes the style coefficients' standard errors are ~0.01 log-odds, far below any voter's.
MAX_FIT_VOTES = 200_000


class Design(NamedTuple):
    """What the tests read that does not depend on which voters make up the crowd (built once)."""

    pair: np.ndarray  # (n_votes,) unordered model pair (:func:`.anomalous.pair_outcomes`)
    y: np.ndarray  # (n_votes,) model-oriented outcome: lower-index model won, higher won, tie, both bad
    voter_pair: np.ndarray  # (n_votes,) index of the vote's (judge, pair)
    prior: np.ndarray  # (n_votes, 4) Bradley–Terry prior outcome probabilities
    cells: np.ndarray  # (n_cells,) judge * n_models + model: the one-model test's cells
    cell: np.ndarray  # (2 n_votes,) cell of each (vote, model): lower-index models, then higher
    wins: np.ndarray  # (2 n_votes,) 1.0 where that model won the vote outright
    style: tuple | None  # :func:`length_covariates`


def design(v: AuditVotes) -> Design:
    """The :class:`Design` of the votes. Prior: P(lower wins | decisive) = sigmoid(beta_lo - beta_hi)
    of one Bradley–Terry fit to all votes (ties half), ties at the global tie share, split by the
    global both-bad share of ties."""
    pair, y = pair_outcomes(v)
    n_pairs = int(pair.max(initial=-1)) + 1
    judge = v.judge.astype(np.int64)
    _, voter_pair = np.unique(judge * n_pairs + pair, return_inverse=True)
    _, x = vote_expectations(v)  # beta_a - beta_b, natural log-odds
    win_lo = expit(np.where(v.a <= v.b, x, -x))
    o = v.outcome
    tie = float(np.mean(o >= TIE))
    bothbad = float(np.sum(o == BOTHBAD) / max(np.sum(o >= TIE), 1))
    ones = np.ones(len(y))
    prior = np.column_stack(
        [(1 - tie) * win_lo, (1 - tie) * (1 - win_lo), tie * (1 - bothbad) * ones, tie * bothbad * ones]
    )
    prior = np.clip(prior, 1e-6, None)
    prior /= prior.sum(axis=1, keepdims=True)
    n_models = len(v.models)
    key = np.concatenate([judge * n_models + np.minimum(v.a, v.b), judge * n_models + np.maximum(v.a, v.b)])
    cells, cell = np.unique(key, return_inverse=True)
    wins = np.concatenate([y == 0, y == 1]).astype(np.float64)
    return Design(pair, y, voter_pair, prior, cells, cell, wins, length_covariates(v))


def crowd_probabilities(d: Design, include: np.ndarray, prior_votes: float = PRIOR_VOTES) -> np.ndarray:
    """The crowd's outcome probabilities of every vote, (n_votes, 4) float, rows sum to 1, over the
    model-oriented outcomes ``d.y`` = (the other judges' counts on the vote's pair among the votes
    ``include`` (n_votes,) bool + ``prior_votes`` * ``d.prior``) / (their number + prior_votes)."""
    pair, y, vp = d.pair, d.y, d.voter_pair
    n_pairs = int(pair.max(initial=-1)) + 1
    total = np.bincount(pair[include] * 4 + y[include], minlength=n_pairs * 4).reshape(n_pairs, 4)
    own = np.bincount(vp[include] * 4 + y[include], minlength=(int(vp.max(initial=-1)) + 1) * 4)
    others = total[pair] - own.reshape(-1, 4)[vp]
    return (others + prior_votes * d.prior) / (others.sum(axis=1, keepdims=True) + prior_votes)


def _moments(
    log_q: np.ndarray, llr: np.ndarray, lam: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row i: K_i(lam_i) = log sum_k q_ik exp(lam_i llr_ik) and its first two derivatives,
    (m,) each; ``log_q``, ``llr`` (m, k), ``lam`` (m,). Column loops: k is 2 to 4."""
    cols = range(log_q.shape[1])
    a = [log_q[:, k] + lam * llr[:, k] for k in cols]
    top = a[0].copy()
    for k in cols[1:]:
        np.maximum(top, a[k], out=top)
    e = [np.exp(a[k] - top) for k in cols]
    total = sum(e)
    k1 = sum(e[k] * llr[:, k] for k in cols) / total
    k2 = sum(e[k] * llr[:, k] ** 2 for k in cols) / total - k1**2
    return top + np.log(total), k1, np.maximum(k2, 0.0)


def llr_tail(
    llr: np.ndarray,
    q: np.ndarray,
    group: np.ndarray,
    t: np.ndarray,
    n_groups: int,
    *,
    exact: bool = True,
    lattice: bool = False,
) -> np.ndarray:
    """log P(T_g >= t_g) per group g, shape (n_groups,), for T_g = sum over the group's votes of
    ``llr[i, Y_i]`` with independent Y_i ~ Categorical(``q[i]``); ``llr`` and ``q`` (m, k), ``group``
    (m,) in [0, n_groups), ``t`` (n_groups,) the observed sums.

    Saddlepoint: the cumulant generating function K(lam) = sum_i log sum_k q_ik exp(lam llr_ik)
    is solved for K'(lam) = t by safeguarded Newton on [0, LAMBDA_MAX] (groups drop out as they
    converge); then Barndorff-Nielsen's r* = w + log(u / w) / w with w = sqrt(2 (lam t - K(lam))),
    u = lam sqrt(K''(lam)), and log P = log(1 - Phi(r*)); with ``lattice`` (integer values, ``t``
    already moved down by 1/2) u = 2 sinh(lam / 2) sqrt(K''(lam)), Daniels' second continuity
    correction. Below the mean (and where w is tiny), or
    everywhere with ``exact=False``, the normal tail of (t - K'(0)) / sqrt(K''(0)). Tails far out
    keep their logarithm (no underflow)."""
    log_q = np.log(np.clip(q, 1e-300, 1.0))
    _, k1, k2 = _moments(log_q, llr, np.zeros(len(group)))
    mean = np.bincount(group, k1, n_groups)
    var = np.bincount(group, k2, n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = stats.norm.logsf((t - mean) / np.sqrt(np.maximum(var, 1e-300)))
    active = (t > mean + 1e-9) & (var > 1e-12)
    if not exact or not active.any():
        return out
    lam = np.zeros(n_groups)
    lo, hi = np.zeros(n_groups), np.full(n_groups, LAMBDA_MAX)
    todo = active.copy()
    for _ in range(SADDLE_STEPS):
        rows = np.flatnonzero(todo[group])
        g = group[rows]
        _, r1, r2 = _moments(log_q[rows], llr[rows], lam[g])
        k1 = np.bincount(g, r1, n_groups)
        k2 = np.bincount(g, r2, n_groups)
        below = k1 < t
        lo = np.where(todo & below, lam, lo)
        hi = np.where(todo & ~below, lam, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = lam - (k1 - t) / k2
        inside = np.isfinite(newton) & (newton > lo) & (newton < hi)
        step = np.where(todo, np.where(inside, newton, 0.5 * (lo + hi)), lam)
        todo &= np.abs(step - lam) > 1e-9
        lam = step
        if not todo.any():
            break
    rows = np.flatnonzero(active[group])
    g = group[rows]
    r0, _, r2 = _moments(log_q[rows], llr[rows], lam[g])
    k0 = np.bincount(g, r0, n_groups)
    k2 = np.bincount(g, r2, n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.sqrt(np.maximum(2.0 * (lam * t - k0), 0.0))
        u = (2.0 * np.sinh(lam / 2.0) if lattice else lam) * np.sqrt(k2)
        r_star = w + np.log(u / w) / w
    ok = active & (w > 1e-3) & np.isfinite(r_star)
    out[ok] = stats.norm.logsf(r_star[ok])
    return out


def _side_test(v: AuditVotes, include: np.ndarray, n_voters: int) -> dict[str, np.ndarray]:
    """Left wins vs the crowd's left share (decisive votes of the voters ``include``d, the voter's
    own left out), exact two-sided binomial, per voter."""
    decisive = (v.outcome == MODEL_A) | (v.outcome == MODEL_B)
    left = np.bincount(v.judge, decisive & (v.outcome == MODEL_A), n_voters)
    dec = np.bincount(v.judge, decisive, n_voters)
    inc = np.bincount(v.judge, include, n_voters) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        crowd = (left[inc].sum() - inc * left) / (dec[inc].sum() - inc * dec)
        rate = left / dec
    share = np.clip(np.nan_to_num(crowd, nan=0.5), 1e-9, 1 - 1e-9)
    log_lower = stats.binom.logcdf(left, dec, share)
    log_upper = stats.binom.logsf(left - 1, dec, share)
    log_p = np.minimum(0.0, np.log(2.0) + np.minimum(log_lower, log_upper))
    log_p = np.where(dec > 0, log_p, np.nan)
    return {"log_p": log_p, "decisive": dec, "left_rate": rate, "crowd_left_rate": crowd}


def _one_model_test(v: AuditVotes, d: Design, q: np.ndarray, n_voters: int, exact: bool) -> dict:
    """Outright wins of each model the voter saw vs the crowd's win probabilities; per voter the
    favourite (smallest p; model index, -1 when none), Bonferroni over the models seen. Without
    ``exact`` the Chernoff bound gives way to the normal tail (clean sweeps stay exact)."""
    n_models = len(v.models)
    cells, cell = d.cells, d.cell
    p_win = np.concatenate([q[:, 0], q[:, 1]])
    n_cells = len(cells)
    k = np.bincount(cell, d.wins, n_cells)
    n = np.bincount(cell, minlength=n_cells)
    expected = np.bincount(cell, p_win, n_cells)
    if exact:
        log_p = log_chernoff_tail(k, p_win, cell, n_cells)
    else:
        var = np.bincount(cell, p_win * (1 - p_win), n_cells)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_p = np.minimum(0.0, stats.norm.logsf((k - expected) / np.sqrt(var)))
        sweep = k >= n
        log_p[sweep] = np.bincount(cell, np.log(np.clip(p_win, 1e-12, 1.0)), n_cells)[sweep]
    c_judge, c_model = cells // n_models, cells % n_models
    order = np.lexsort((-(k - expected), log_p, c_judge))
    fav = order[np.r_[True, c_judge[order][1:] != c_judge[order][:-1]]]
    voters = c_judge[fav]
    seen = np.bincount(c_judge, minlength=n_voters)
    out = {name: np.full(n_voters, np.nan) for name in ("log_p", "battles", "wins", "crowd_rate")}
    out["log_p"][voters] = np.minimum(0.0, np.log(seen[voters]) + log_p[fav])
    out["battles"][voters] = n[fav]
    out["wins"][voters] = k[fav]
    out["crowd_rate"][voters] = expected[fav] / n[fav]
    out["favourite"] = np.full(n_voters, -1)
    out["favourite"][voters] = c_model[fav]
    return out


def length_covariates(v: AuditVotes) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The crowd's style covariates and the tested length term: (usable (n_votes,) bool, covariates
    (n_votes, k): standardised style differences (:func:`.covariates.style_covariates`) plus the
    one-sided refusal flag difference when the source flags refusals, d_tokens (n_votes,): the raw
    normalised token difference, 0 where exactly one side refused). None without style columns."""
    style = style_covariates(v.votes)
    if style is None:
        return None
    usable, z, mean, sd = style
    d_tokens = np.where(usable, z[:, 0] * sd[0] + mean[0], 0.0)
    refusal = flag_difference(v.votes, "refusal")
    if refusal is None or not np.any(np.nan_to_num(refusal) != 0):
        return usable, z, d_tokens
    one_sided = np.nan_to_num(refusal)
    return usable, np.column_stack([z, one_sided]), np.where(one_sided != 0, 0.0, d_tokens)


def _length_test(
    v: AuditVotes, style, include: np.ndarray, q: np.ndarray, n_voters: int, exact: bool
) -> dict | None:
    """Wins of the longer answer vs the crowd's probability of them per voter (one-sided), on the
    decisive votes whose answers differ in length; the crowd: a BT + style fit on the decisive
    votes of the ``include``d voters. Without ``exact`` (the quick first pass) the crowd is the
    pair's decisive odds from ``q`` (no per-answer style) and the tail normal. None without style
    measurements."""
    if style is None:
        return None
    usable, covariates, d_tokens = style
    decisive = usable & ((v.outcome == MODEL_A) | (v.outcome == MODEL_B))
    fit_rows = np.flatnonzero(decisive & include)
    if len(fit_rows) < 2:
        return None
    fit_rows = fit_rows[:: -(-len(fit_rows) // MAX_FIT_VOTES)]  # every k-th: at most MAX_FIT_VOTES
    rows = np.flatnonzero(decisive & (d_tokens != 0))
    if exact:
        counts = outcome_counts(v.outcome[fit_rows])
        x = covariates[fit_rows]
        params = fit_pairwise(v.a[fit_rows], v.b[fit_rows], len(v.models), counts, features=x, ties="drop")
        n_models = len(v.models)
        s = params[v.a[rows]] - params[v.b[rows]] + covariates[rows] @ params[n_models:]
    else:
        a_is_lo = v.a[rows] <= v.b[rows]
        s = np.log(q[rows, 0]) - np.log(q[rows, 1])
        s = np.where(a_is_lo, s, -s)
    longer_left = d_tokens[rows] > 0
    p_longer = np.where(longer_left, expit(s), expit(-s))  # crowd P(the longer side wins | decisive)
    longer = (v.outcome[rows] == MODEL_A) == longer_left
    voter = v.judge[rows]
    n_diff = np.bincount(voter, minlength=n_voters)
    n_long = np.bincount(voter, longer, n_voters)
    values = np.column_stack([np.ones(len(rows)), np.zeros(len(rows))])
    probs = np.column_stack([p_longer, 1.0 - p_longer])
    # integer counts: the tail P(T >= t) is approximated at t - 1/2 (continuity correction)
    log_p = lattice_tail(values, probs, voter, n_long.astype(np.float64), n_voters, exact=exact)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "log_p": np.where(n_diff > 0, log_p, np.nan),
            "compared": n_diff,
            "longer_wins": n_long / n_diff,
            "crowd_longer_wins": np.bincount(voter, p_longer, n_voters) / n_diff,
            "rows": rows[longer],
            "surprise": p_longer[longer],
        }


def lattice_tail(
    values: np.ndarray, q: np.ndarray, group: np.ndarray, t: np.ndarray, n_groups: int, *, exact: bool = True
) -> np.ndarray:
    """log P(T_g >= t_g) for sums of integer-valued ``values`` (unit steps): :func:`llr_tail` at
    t - 1/2 with Daniels' second continuity correction (within a few % of exact binomial tails
    down to 1e-16, see tests/test_voter_types.py)."""
    return llr_tail(values, q, group, t - 0.5, n_groups, exact=exact, lattice=True)


def _random_test(
    q: np.ndarray, y: np.ndarray, judge: np.ndarray, n_voters: int, tau: float, exact: bool
) -> dict:
    """Random-clicker log-likelihood ratio against the crowd per voter, saddlepoint tail, gated on
    the decisive votes leaning to the coin flip (p = 1 where they do not)."""
    r = np.array([(1 - tau) / 2, (1 - tau) / 2, tau / 2, tau / 2])
    llr = np.log(r)[None, :] - np.log(np.clip(q, 1e-300, 1.0))
    rows = np.arange(len(y))
    t = np.bincount(judge, llr[rows, y], n_voters)
    log_p = llr_tail(llr, q, judge, t, n_voters, exact=exact)
    decisive = y <= 1
    qd = q[:, :2] / q[:, :2].sum(axis=1, keepdims=True)  # crowd P(lower / higher wins | decisive)
    coin = np.log(0.5) - np.log(qd)  # (n_votes, 2) coin flip vs the crowd, per decisive outcome
    own = np.bincount(judge, np.where(decisive, coin[rows, np.minimum(y, 1)], 0.0), n_voters)
    expected = np.bincount(judge, np.where(decisive, (qd * coin).sum(axis=1), 0.0), n_voters)
    log_p = np.where(own > expected, log_p, 0.0)
    fav_lo = qd[:, 0] >= qd[:, 1]
    agree = decisive & ((y == 0) == fav_lo)
    n_dec = np.bincount(judge, decisive, n_voters)
    n_votes = np.bincount(judge, minlength=n_voters)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "log_p": np.where(n_votes > 0, log_p, np.nan),
            "llr_per_vote": t / n_votes,
            "agreement": np.bincount(judge, agree, n_voters) / n_dec,
            "crowd_agreement": np.bincount(judge, decisive * np.maximum(qd[:, 0], qd[:, 1]), n_voters)
            / n_dec,
            "tie_rate": np.bincount(judge, ~decisive, n_voters) / n_votes,
            "crowd_tie_rate": np.bincount(judge, q[:, 2] + q[:, 3], n_voters) / n_votes,
            "rows": rows[decisive & ~agree],
            "surprise": np.where(y == 0, qd[:, 0], qd[:, 1])[decisive & ~agree],
        }


def run_tests(
    v: AuditVotes,
    d: Design,
    include: np.ndarray,
    *,
    random_tie: float,
    prior_votes: float,
    exact: bool = True,
) -> tuple[np.ndarray, dict]:
    """The four tests against the crowd of the votes ``include`` (n_votes,) bool; ``exact=False``
    takes normal tails instead of saddlepoints and Chernoff bounds (the quick first pass that finds
    whom to leave out of the crowd). Returns
    (log_p (n_voters, 4) natural-log p-values in TYPES order, NaN where a test has no data; the
    parts: {'q', 'side', 'one_model', 'length' (None without style), 'random'})."""
    n_voters = len(v.judges)
    q = crowd_probabilities(d, include, prior_votes)
    parts = {
        "q": q,
        "side": _side_test(v, include, n_voters),
        "one_model": _one_model_test(v, d, q, n_voters, exact),
        "length": _length_test(v, d.style, include, q, n_voters, exact),
        "random": _random_test(q, d.y, v.judge.astype(np.int64), n_voters, random_tie, exact),
    }
    nan = np.full(n_voters, np.nan)
    log_p = np.column_stack(
        [
            parts["side"]["log_p"],
            parts["one_model"]["log_p"],
            parts["length"]["log_p"] if parts["length"] else nan,
            parts["random"]["log_p"],
        ]
    )
    return log_p, parts


def adjust(
    log_p: np.ndarray, eligible: np.ndarray, *, alpha: float, fdr: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voter-level multiplicity: a voter's p-value is Bonferroni over its types, min(1, 4 min_k p_k),
    BH-adjusted across the ``eligible`` voters with ``fdr`` (so the flagged voters' false-discovery
    rate is at most ``alpha``), else compared with ``alpha`` as is. Returns (p_voter (n_voters,),
    q_voter (n_voters,), NaN for voters not eligible; significant (n_voters, 4) bool: the types
    that alone clear the voter-level threshold, i.e. 4 p_k <= the largest p_voter flagged)."""
    k = log_p.shape[1]
    finite = np.isfinite(log_p)
    min_log = np.min(np.where(finite, log_p, np.inf), axis=1)
    p_voter = np.where(finite.any(axis=1), np.minimum(1.0, k * np.exp(min_log)), np.nan)
    testable = eligible & np.isfinite(p_voter)
    q = np.full(len(p_voter), np.nan)
    q[testable] = bh_adjust(p_voter[testable]) if fdr else p_voter[testable]
    flagged = testable & (q <= alpha)
    cut = float(p_voter[flagged].max()) if flagged.any() else -1.0
    significant = (
        flagged[:, None] & finite & (np.log(k) + np.where(finite, log_p, 0.0) <= np.log(max(cut, 1e-300)))
    )
    return p_voter, q, significant


def label_gains(
    v: AuditVotes,
    q: np.ndarray,
    y: np.ndarray,
    favourite: np.ndarray,
    d_tokens: np.ndarray | None,
    voters: np.ndarray,
) -> np.ndarray:
    """Log-likelihood gain of each type's one-parameter model of the voter's votes over the crowd's
    (outcome probabilities ``q`` (n_votes, 4), model-oriented outcomes ``y``), shape (n_voters, 4)
    in TYPES order, for the ``voters`` (bool (n_voters,); 0 for the others). >= 0 up to the ridge.

    side, one_model and length keep the crowd's tie probabilities and bend its decisive log-odds
    c = log(q_left / q_right) by theta times a covariate: 1 (a left shift), +1 / -1 when the
    favourite is left / right (0 when absent), the normalised token difference; theta per voter
    by vectorised Newton (ridge LABEL_RIDGE). random replaces the crowd by the random clicker of
    the test with the voter's own tie share as tau. With one parameter each, the largest gain
    names the type that fits the voter's votes best."""
    n_voters = len(v.judges)
    gains = np.zeros((n_voters, len(TYPES)))
    rows = np.flatnonzero(voters[v.judge] & ((v.outcome == MODEL_A) | (v.outcome == MODEL_B)))
    a_is_lo = v.a[rows] <= v.b[rows]
    q_left = np.where(a_is_lo, q[rows, 0], q[rows, 1])
    q_right = np.where(a_is_lo, q[rows, 1], q[rows, 0])
    c = np.log(q_left) - np.log(q_right)
    won = (v.outcome[rows] == MODEL_A).astype(np.float64)
    fav = favourite[v.judge[rows]]
    x = np.column_stack(
        [
            np.ones(len(rows)),
            (v.a[rows] == fav).astype(np.float64) - (v.b[rows] == fav),
            np.zeros(len(rows)) if d_tokens is None else d_tokens[rows],
        ]
    )
    judge = v.judge[rows]
    k_cols = range(x.shape[1])
    theta = np.zeros((n_voters, x.shape[1]))

    def loglik(th: np.ndarray) -> np.ndarray:
        eta = c[:, None] + th[judge] * x
        ll = -np.logaddexp(0.0, np.where(won[:, None] > 0, -eta, eta))
        return np.stack([np.bincount(judge, ll[:, k], n_voters) for k in k_cols], axis=1)

    for _ in range(LABEL_STEPS):
        p = expit(c[:, None] + theta[judge] * x)
        w = p * (1 - p)
        grad = np.stack([np.bincount(judge, x[:, k] * (won - p[:, k]), n_voters) for k in k_cols], axis=1)
        hess = np.stack([np.bincount(judge, w[:, k] * x[:, k] ** 2, n_voters) for k in k_cols], axis=1)
        step = (grad - LABEL_RIDGE * theta) / (hess + LABEL_RIDGE)
        step = np.clip(step, -MAX_LABEL_STEP, MAX_LABEL_STEP)
        theta += step
        if np.abs(step).max(initial=0.0) < 1e-6:
            break
    gains[:, :3] = loglik(theta) - loglik(np.zeros_like(theta))

    mine = voters[v.judge]
    judge_all = v.judge[mine]
    y_all = y[mine]
    tie = np.bincount(judge_all, y_all >= 2, n_voters) / np.maximum(
        np.bincount(judge_all, minlength=n_voters), 1
    )
    tau = np.clip(tie, 1e-3, 1 - 1e-3)[judge_all]
    r = np.where(y_all >= 2, tau / 2, (1 - tau) / 2)
    gains[:, 3] = np.bincount(judge_all, np.log(r) - np.log(q[mine, y_all]), n_voters)
    return np.where(voters[:, None], gains, 0.0)


EVIDENCE_COLUMNS = (
    "left_rate",
    "crowd_left_rate",
    "decisive",
    "favourite",
    "favourite_wins",
    "favourite_battles",
    "favourite_crowd_rate",
    "longer_wins",
    "length_compared",
    "crowd_longer_wins",
    "agreement",
    "crowd_agreement",
    "tie_rate",
    "crowd_tie_rate",
)  # the table columns :func:`evidence` reads


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def evidence(kind: str, row: dict) -> str:
    """One line of evidence for a voter's ``kind`` from its table row, e.g. 'left on 97% of 40
    decisive votes, crowd 51%'."""
    if kind == "side":
        left = row["left_rate"] >= row["crowd_left_rate"]
        rate = row["left_rate"] if left else 1 - row["left_rate"]
        crowd = row["crowd_left_rate"] if left else 1 - row["crowd_left_rate"]
        side = "left" if left else "right"
        return f"{side} on {_pct(rate)} of {row['decisive']:.0f} decisive votes, crowd {_pct(crowd)}"
    if kind == "one_model":
        return (
            f"voted for {row['favourite']} in {row['favourite_wins']:.0f} of {row['favourite_battles']:.0f} "
            f"battles with it, crowd {_pct(row['favourite_crowd_rate'])}"
        )
    if kind == "length":
        return (
            f"the longer answer won {_pct(row['longer_wins'])} of {row['length_compared']:.0f} decisive "
            f"votes, crowd {_pct(row['crowd_longer_wins'])}"
        )
    if kind == "random":
        return (
            f"sided with the crowd's favourite in {_pct(row['agreement'])} of {row['decisive']:.0f} decisive "
            f"votes (crowd {_pct(row['crowd_agreement'])}), tied {_pct(row['tie_rate'])} "
            f"(crowd {_pct(row['crowd_tie_rate'])})"
        )
    return ""


def voter_types(
    v: AuditVotes,
    *,
    alpha: float = 0.05,
    fdr: bool = True,
    min_votes: int = 20,
    random_tie: float = RANDOM_TIE,
    prior_votes: float = PRIOR_VOTES,
    trim: bool = True,
) -> Finding:
    """Test every voter for the four anomaly types and label the flagged ones (module docstring).

    ``trim``: test twice, the second time against a crowd without the voters the first (quick,
    normal-tail) pass flagged, so always-left voters do not shift the crowd's left share, fans
    their favourite's win rates, length-lovers the crowd's length coefficient.

    Table 'voters' (one row per judge; flagged first, then by p-value): judge, judge_kind, votes,
    type (the label of a flagged voter, else ''), strongest (that label; for the others the type
    with the smallest p), evidence (one line for ``strongest``), p_value (the voter's: Bonferroni
    over the four types), q_value (BH across the voters with >= ``min_votes`` votes; NaN for the
    others), flagged, minus_log10_p; per test p_side, p_one_model, p_length, p_random and the
    numbers behind them: decisive, left_rate, crowd_left_rate (others' decisive votes);
    favourite, favourite_battles, favourite_wins (outright), favourite_crowd_rate (the crowd's
    mean outright-win probability of the favourite on those battles); length_compared (decisive
    votes whose answers differ in length, one-sided refusals left out), longer_wins,
    crowd_longer_wins (the crowd's expected rate on those votes); agreement (share of decisive
    votes for the pair's crowd favourite), crowd_agreement (its expectation under the crowd),
    tie_rate, crowd_tie_rate, random_llr (mean log-likelihood ratio per decisive vote, > 0 = closer to a
    random clicker); battle_ids (votes behind ``strongest``, least expected by the crowd first).
    Table 'types': type, test, voters_flagged (voters with that label). Headline: share of
    eligible voters flagged (95% Wilson), n = eligible voters.
    """
    params = {
        "alpha": alpha,
        "fdr": fdr,
        "min_votes": min_votes,
        "random_tie": random_tie,
        "prior_votes": prior_votes,
        "trim": trim,
    }
    if len(v.judges) < 2 or len(v.models) < 3:
        return not_applicable(
            AUDIT,
            TITLE,
            "Needs at least two judges and three models to compare a voter with the crowd.",
            **params,
        )
    n_voters = len(v.judges)
    judge = v.judge.astype(np.int64)
    votes = np.bincount(judge, minlength=n_voters)
    eligible = votes >= min_votes
    d = design(v)
    style = d.style
    if not 0 < random_tie < 1:
        raise ValueError(f"random_tie must lie in (0, 1), got {random_tie}")
    kw = {"random_tie": random_tie, "prior_votes": prior_votes}
    include = np.ones(v.n, dtype=bool)
    if trim:  # a quick first pass against everyone; the crowd is then the voters it did not flag
        log_p, _ = run_tests(v, d, include, exact=False, **kw)
        _, _, first = adjust(log_p, eligible, alpha=alpha, fdr=fdr)
        include = ~first.any(axis=1)[judge]
    log_p, parts = run_tests(v, d, include, **kw)
    p_voter, q_voter, significant = adjust(log_p, eligible, alpha=alpha, fdr=fdr)
    flagged = significant.any(axis=1)  # = q_voter <= alpha
    side, model, length, rnd = (parts[k] for k in ("side", "one_model", "length", "random"))
    favourite = model["favourite"]

    # one label per flagged voter: the significant type whose model fits best; else the smallest p
    gains = label_gains(v, parts["q"], d.y, favourite, None if style is None else style[2], flagged)
    finite = np.isfinite(log_p)
    rows = np.arange(n_voters)
    best = np.where(
        flagged,
        np.argmax(np.where(significant, gains, -np.inf), axis=1),
        np.argmin(np.where(finite, log_p, np.inf), axis=1),
    )
    any_test = finite.any(axis=1)
    voter_log_p = np.minimum(0.0, np.log(len(TYPES)) + np.min(np.where(finite, log_p, np.inf), axis=1))
    kinds = np.array(TYPES, dtype=object)
    strongest = np.where(any_test, kinds[best], "")

    # evidence votes: those telling of each voter's strongest type, least expected first
    dec_mask = (v.outcome == MODEL_A) | (v.outcome == MODEL_B)
    lean_left = np.nan_to_num(side["left_rate"] - side["crowd_left_rate"]) >= 0
    side_rows = np.flatnonzero(dec_mask & ((v.outcome == MODEL_A) == lean_left[judge]))
    fav = favourite[judge]
    fav_rows = np.flatnonzero(
        ((v.a == fav) & (v.outcome == MODEL_A)) | ((v.b == fav) & (v.outcome == MODEL_B))
    )
    q = parts["q"]
    fav_p = np.where(fav == np.minimum(v.a, v.b), q[:, 0], q[:, 1])
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0))
    candidates = [
        (side_rows, np.zeros(len(side_rows))),
        (fav_rows, fav_p[fav_rows]),
        (length["rows"], length["surprise"]) if length else empty,
        (rnd["rows"], rnd["surprise"]),
    ]
    picked = [(r[best[judge[r]] == k], key[best[judge[r]] == k]) for k, (r, key) in enumerate(candidates)]
    ev_rows = np.concatenate([r for r, _ in picked])
    ids = ranked_examples(v, ev_rows, judge[ev_rows], np.concatenate([key for _, key in picked]))

    kind_of = pd.Series(v.votes["judge_kind"].astype(str).to_numpy()).groupby(judge).first()
    lt = length or {}
    nan = np.full(n_voters, np.nan)
    p = np.exp(log_p)
    table = pd.DataFrame(
        {
            "judge": v.judges,
            "judge_kind": kind_of.reindex(rows).to_numpy(),
            "votes": votes,
            "type": np.where(flagged, strongest, ""),
            "strongest": strongest,
            "evidence": "",
            "p_value": p_voter,
            "q_value": q_voter,
            "flagged": flagged,
            "minus_log10_p": np.where(any_test, -voter_log_p / np.log(10.0), np.nan),
            "p_side": p[:, 0],
            "p_one_model": p[:, 1],
            "p_length": p[:, 2],
            "p_random": p[:, 3],
            "decisive": side["decisive"].astype(np.int64),
            "left_rate": side["left_rate"],
            "crowd_left_rate": side["crowd_left_rate"],
            "favourite": [v.models[m] if m >= 0 else "" for m in favourite],
            "favourite_battles": model["battles"],
            "favourite_wins": model["wins"],
            "favourite_crowd_rate": model["crowd_rate"],
            "length_compared": lt.get("compared", nan),
            "longer_wins": lt.get("longer_wins", nan),
            "crowd_longer_wins": lt.get("crowd_longer_wins", nan),
            "agreement": rnd["agreement"],
            "crowd_agreement": rnd["crowd_agreement"],
            "tie_rate": rnd["tie_rate"],
            "crowd_tie_rate": rnd["crowd_tie_rate"],
            "random_llr": rnd["llr_per_vote"],
        }
    )
    shown = table["strongest"] != ""
    needed = ["strongest", *EVIDENCE_COLUMNS]
    records = (
        dict(zip(needed, row, strict=True))
        for row in zip(*(table.loc[shown, c] for c in needed), strict=True)
    )
    table.loc[shown, "evidence"] = [evidence(r["strongest"], r) for r in records]
    table = voter_rows(table, ids)

    n_elig = int(eligible.sum())
    n_flag = int(flagged.sum())
    counts = {k: int(np.sum(flagged & (strongest == k))) for k in TYPES}
    tests = {
        "side": "exact binomial: left wins of decisive votes vs the crowd's left share (two-sided)",
        "one_model": "Chernoff bound: the favourite's outright wins vs the crowd's win probabilities "
        "(Bonferroni over models seen)",
        "length": "saddlepoint tail: the longer answer's wins vs the crowd's BT + style probabilities "
        "(one-sided)",
        "random": f"saddlepoint tail of the log-likelihood ratio of a random clicker (ties {random_tie:g}) "
        "vs the crowd, when its decisive votes lean to a coin flip",
    }
    types_table = pd.DataFrame(
        {"type": list(TYPES), "test": [tests[k] for k in TYPES], "voters_flagged": [counts[k] for k in TYPES]}
    )
    headline = share_headline(
        "share of voters with an anomaly type", n_flag, n_elig, float(np.nanmin(q_voter)) if n_elig else None
    )
    rule = (
        f"Bonferroni over the four types, BH q <= {alpha} across voters"
        if fdr
        else f"Bonferroni over the four types at {alpha}"
    )
    if n_elig:
        top = table[table["flagged"]].head(3)
        strongest_text = "; ".join(f"{r.judge} ({r.type}: {r.evidence})" for r in top.itertuples())
        summary = (
            f"{n_flag} of {n_elig} voters with at least {min_votes} votes "
            f"({100 * headline['estimate']:.1f}%) vote anomalously ({rule}): "
            + ", ".join(f"{counts[k]} {k.replace('_', ' ')}" for k in TYPES)
            + "."
            + (f" Strongest: {strongest_text}." if strongest_text else "")
        )
    else:
        summary = f"No voter has at least {min_votes} votes, so none can be tested."
    return Finding(
        audit=AUDIT,
        title=TITLE,
        summary=summary,
        headline=headline,
        tables={"voters": table, "types": types_table},
        plot={
            "table": "voters",
            "kind": "scatter",
            "x": "votes",
            "y": "minus_log10_p",
            "color": "flagged",
            "label": "judge",
            "log_x": True,
        },
        params=params,
    )

"""Ties and 'both bad': how often voters decline to pick a winner, and who does so far too often.

A voter's tie rate is compared with what their battles predict: each vote's expected tie
probability is the tie rate of the same (unordered) model pair among the OTHER voters, so a
voter who simply judged many close pairs is not flagged. The voter's tie count is then tested
against the sum of these probabilities with a normal approximation to the Poisson-binomial
(mean sum q, variance sum q (1 - q)), one-sided, BH across voters. Voters who tie in nearly
every vote are listed separately.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from scipy import stats

from ..stats import wilson_interval
from .frame import BOTHBAD, TIE, AuditVotes
from .result import Finding, not_applicable
from .tables import attach_ids, flags, node_membership, ranked_examples, voter_rows

AUDIT = "ties"
TITLE = "Ties and 'both bad': voters who decline to choose"


def expected_tie_probability(v: AuditVotes) -> np.ndarray:
    """Each vote's expected tie probability (n_votes,): the tie rate (both kinds) of its unordered
    model pair among the other voters' votes; the other voters' overall tie rate when no other
    voter judged the pair (NaN when there is no other voter at all)."""
    tie = (v.outcome == TIE) | (v.outcome == BOTHBAD)
    n_models = len(v.models)
    pair = np.minimum(v.a, v.b) * n_models + np.maximum(v.a, v.b)
    n_pair = np.bincount(pair, minlength=n_models * n_models).astype(np.float64)
    t_pair = np.bincount(pair, tie, n_models * n_models)
    vp, vp_index = np.unique(v.judge.astype(np.int64) * (n_models * n_models) + pair, return_inverse=True)
    n_vp = np.bincount(vp_index, minlength=len(vp)).astype(np.float64)
    t_vp = np.bincount(vp_index, tie, len(vp))
    other_n = n_pair[pair] - n_vp[vp_index]
    other_t = t_pair[pair] - t_vp[vp_index]
    n_j = np.bincount(v.judge, minlength=len(v.judges)).astype(np.float64)
    t_j = np.bincount(v.judge, tie, len(v.judges))
    all_n, all_t = n_j.sum() - n_j[v.judge], t_j.sum() - t_j[v.judge]
    with np.errstate(invalid="ignore", divide="ignore"):
        fallback = np.where(all_n > 0, all_t / all_n, np.nan)
        return np.where(other_n > 0, other_t / np.maximum(other_n, 1), fallback)


def ties_and_bothbad(
    v: AuditVotes,
    *,
    alpha: float = 0.05,
    fdr: bool = True,
    min_votes: int = 20,
    level: float = 0.95,
    almost_always: float = 0.9,
) -> Finding:
    """Tie and both-bad rates overall, per voter and per tree node; voters who tie too often.

    Headline: the overall tie rate (both kinds) with a Wilson interval.

    Tables:

    - ``overall``: votes, ties, tie_rate, lower, upper, bothbad, bothbad_rate, bothbad_lower,
      bothbad_upper (Wilson, ``level``).
    - ``voters``: judge, votes, ties, tie_rate, lower, upper, bothbad_rate, expected_rate (mean of
      the expected tie probabilities of the voter's votes), excess (tie_rate - expected_rate), z
      (normal approximation to the Poisson-binomial), p_value (one-sided: more ties than
      expected), q_value (BH across voters with >= ``min_votes`` votes), flagged, battle_ids (the
      voter's ties on the pairs least likely to tie first).
    - ``always_tie``: the voters rows with tie_rate >= ``almost_always`` and >= ``min_votes`` votes.
    - ``nodes`` (with a tree; every non-root node): node_id, description, depth, votes, tie_rate,
      lower, upper, bothbad_rate, bothbad_lower, bothbad_upper, expected_rate (from the pairs'
      overall tie rates), battle_ids (the node's ties, least expected first).
    """
    t0 = time.perf_counter()
    params = {
        "alpha": alpha,
        "fdr": fdr,
        "min_votes": min_votes,
        "level": level,
        "almost_always": almost_always,
    }
    if v.n == 0:
        return not_applicable(AUDIT, TITLE, "No votes.", **params)
    tie = (v.outcome == TIE) | (v.outcome == BOTHBAD)
    bad = v.outcome == BOTHBAD
    n = v.n
    n_ties, n_bad = int(tie.sum()), int(bad.sum())
    lo, hi = wilson_interval(np.array([n_ties]), np.array([n]), level)
    blo, bhi = wilson_interval(np.array([n_bad]), np.array([n]), level)
    overall = pd.DataFrame(
        [
            {
                "votes": n,
                "ties": n_ties,
                "tie_rate": n_ties / n,
                "lower": float(lo[0]),
                "upper": float(hi[0]),
                "bothbad": n_bad,
                "bothbad_rate": n_bad / n,
                "bothbad_lower": float(blo[0]),
                "bothbad_upper": float(bhi[0]),
            }
        ]
    )

    q_exp = expected_tie_probability(v)
    n_voters = len(v.judges)
    votes_per = np.bincount(v.judge, minlength=n_voters)
    ties_per = np.bincount(v.judge, tie, n_voters)
    bad_per = np.bincount(v.judge, bad, n_voters)
    known = np.isfinite(q_exp)
    qk = np.where(known, q_exp, 0.0)
    expected = np.bincount(v.judge, qk, n_voters)
    var = np.bincount(v.judge, qk * (1.0 - qk), n_voters)
    n_known = np.bincount(v.judge, known, n_voters)
    observed_known = np.bincount(v.judge, tie & known, n_voters)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(var > 0, (observed_known - expected) / np.sqrt(var), np.nan)
        # a voter whose pairs never tie elsewhere (variance 0) but who ties: as extreme as it gets
        # (p-value 0; z left NaN so the table stays plain JSON)
        certain = (var == 0) & (n_known > 0) & (observed_known > expected)
        rate = ties_per / np.maximum(votes_per, 1)
        exp_rate = np.where(n_known > 0, expected / np.maximum(n_known, 1), np.nan)
    p_value = np.where(certain, 0.0, stats.norm.sf(z))
    q, flagged = flags(p_value, votes_per, min_votes=min_votes, alpha=alpha, fdr=fdr)
    vlo, vhi = wilson_interval(ties_per, votes_per, level)
    rows = np.flatnonzero(tie)
    ids = ranked_examples(v, rows, v.judge[rows], np.where(known[rows], q_exp[rows], 1.0))
    voters = pd.DataFrame(
        {
            "judge": v.judges,
            "votes": votes_per,
            "ties": ties_per.astype(np.int64),
            "tie_rate": rate,
            "lower": vlo,
            "upper": vhi,
            "bothbad_rate": bad_per / np.maximum(votes_per, 1),
            "expected_rate": exp_rate,
            "excess": rate - exp_rate,
            "z": z,
            "p_value": p_value,
            "q_value": q,
            "flagged": flagged,
        }
    )
    voters = voter_rows(voters, ids)
    always = voters[(voters["tie_rate"] >= almost_always) & (voters["votes"] >= min_votes)].reset_index(
        drop=True
    )
    tables = {"overall": overall, "voters": voters, "always_tie": always}

    nodes, member = node_membership(v, 0)
    if len(nodes):
        n_models = len(v.models)
        pair = np.minimum(v.a, v.b) * n_models + np.maximum(v.a, v.b)
        pair_rate = np.bincount(pair, tie, n_models * n_models) / np.maximum(
            np.bincount(pair, minlength=n_models * n_models), 1
        )
        size = nodes["votes"].to_numpy(np.float64)
        t_n = np.asarray(member @ tie.astype(np.float64)).ravel()
        b_n = np.asarray(member @ bad.astype(np.float64)).ravel()
        e_n = np.asarray(member @ pair_rate[pair]).ravel()
        nlo, nhi = wilson_interval(t_n, size, level)
        nblo, nbhi = wilson_interval(b_n, size, level)
        with np.errstate(invalid="ignore", divide="ignore"):
            table = nodes.assign(
                tie_rate=t_n / size,
                lower=nlo,
                upper=nhi,
                bothbad_rate=b_n / size,
                bothbad_lower=nblo,
                bothbad_upper=nbhi,
                expected_rate=e_n / size,
            )
        rows_n = np.repeat(np.arange(len(nodes)), np.diff(member.indptr))
        cols = member.indices
        sel = tie[cols]
        node_ids = ranked_examples(v, cols[sel], rows_n[sel], pair_rate[pair][cols[sel]])
        tables["nodes"] = attach_ids(table, node_ids, np.arange(len(nodes)))

    eligible = int((votes_per >= min_votes).sum())
    summary = (
        f"{n_ties / n:.1%} of {n:,} votes are ties ({level:.0%} CI {lo[0]:.1%}–{hi[0]:.1%}), "
        f"{n_bad / n:.1%} 'both bad'. {int(flagged.sum())} of {eligible} voters with >= {min_votes} votes "
        f"tie more than their battles predict ({'BH ' if fdr else ''}alpha {alpha}); {len(always)} tie in at "
        f"least {almost_always:.0%} of their votes."
    )
    return Finding(
        audit=AUDIT,
        title=TITLE,
        summary=summary,
        headline={
            "label": "tie rate (tie or both bad)",
            "estimate": n_ties / n,
            "lower": float(lo[0]),
            "upper": float(hi[0]),
            "p_value": None,
            "n": n,
            "unit": "share of votes",
        },
        tables=tables,
        plot={
            "table": "voters",
            "kind": "scatter",
            "x": "expected_rate",
            "y": "tie_rate",
            "lower": "lower",
            "upper": "upper",
            "color": "flagged",
            "label": "judge",
        },
        params=params,
        seconds=time.perf_counter() - t0,
    )

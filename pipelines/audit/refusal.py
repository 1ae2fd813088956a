"""Refusal handling: do answers flagged as refusals lose more than their model's strength predicts?

Bradley–Terry on the decisive votes with one covariate, ``refusal_a - refusal_b`` (in {-1, 0, 1}):
its coefficient is the log-odds a refusing answer gains (negative: refusing is punished beyond
strength). Overall with a percentile bootstrap over the aggregated (model_a, model_b, covariate)
rows; per tree node with Wald intervals, tested against the overall coefficient; per voter a
score test of extra refusal aversion. Ties are left out (decisive votes only), as in
:mod:`.position`.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from scipy import stats

from .covariates import (
    batched_fit,
    covariate_fit,
    flag_difference,
    group_counts,
    style_covariates,
    voter_score_test,
)
from .frame import MODEL_A, MODEL_B, AuditVotes
from .result import Finding, not_applicable
from .tables import attach_ids, flags, node_membership, ranked_examples, voter_rows

AUDIT = "refusal"
TITLE = "Refusal handling: are refusals punished beyond model strength?"
# A node gets its own coefficient with at least this many decisive votes in which exactly one
# side refused: the Wald standard error is then about 2 / sqrt(50) ~ 0.3 log-odds.
MIN_NODE_VOTES = 50


def refusal_handling(
    v: AuditVotes,
    *,
    alpha: float = 0.05,
    fdr: bool = True,
    min_votes: int = 20,
    rounds: int = 100,
    seed: int = 0,
    level: float = 0.95,
    min_node_votes: int = MIN_NODE_VOTES,
) -> Finding:
    """Refusal penalty overall, per tree node and per voter.

    Headline: coefficient of ``refusal_a - refusal_b`` in a Bradley–Terry fit on the decisive
    votes (natural log-odds for the refusing side; negative = punished beyond strength), with a
    ``level`` percentile bootstrap over ``rounds`` multinomial redraws of the aggregated rows.

    Tables:

    - ``overall``: model ('strength' = the headline; 'strength + style' = the same coefficient
      with the style-control covariates held fixed, Wald interval, when the source has style),
      coef, lower, upper, interval, p_value, refusal_votes (decisive votes with exactly one
      refusing side), refuser_lost (their share lost by the refusing side).
    - ``nodes`` (with a tree; nodes with >= ``min_node_votes`` such votes): node_id,
      description, depth, refusal_votes, refuser_lost, coef, lower, upper (Wald), z and p_value
      against the overall coefficient (NaN when the refusing side lost or won every such vote:
      no finite estimate), q_value (BH across nodes), flagged, battle_ids (votes the
      refusing side lost, the refusing side's strongest expected wins first); sorted by coef,
      the nodes where refusing is punished most first.
    - ``voters``: judge, votes, decisive, refusal_votes, refuser_lost, refusal_extra (the voter's
      extra log-odds against a refusing side beyond the crowd's, MLE), z, p_value (one-sided
      score test, H1: more averse than the crowd; the baseline is strength + style + the crowd's
      refusal term plus, with style data and for voters whose own extra length coefficient on
      their other votes is significantly positive, that coefficient, so length lovers are not
      mistaken for refusal-averse voters),
      q_value (BH), flagged, battle_ids.
    """
    t0 = time.perf_counter()
    params = {
        "alpha": alpha,
        "fdr": fdr,
        "min_votes": min_votes,
        "rounds": rounds,
        "seed": seed,
        "level": level,
        "min_node_votes": min_node_votes,
    }
    diff = flag_difference(v.votes, "refusal")
    if diff is None:
        return not_applicable(AUDIT, TITLE, "The votes have no refusal flags.", **params)
    known = np.isfinite(diff)
    dec = np.flatnonzero(known & ((v.outcome == MODEL_A) | (v.outcome == MODEL_B)))
    x = diff[dec]
    if not np.any(x != 0) or len(v.models) < 2:
        return not_applicable(
            AUDIT, TITLE, "No decisive vote has exactly one refusing answer: nothing to compare.", **params
        )
    n_models = len(v.models)
    y = (v.outcome[dec] == MODEL_A).astype(np.float64)
    zq = stats.norm.ppf(0.5 + level / 2)

    fit = covariate_fit(v, x, dec, rounds, seed, level)
    coef, lower, upper, p_coef = fit.coef, fit.lower, fit.upper, fit.p_value

    involved = x != 0
    refuser_won = involved & ((x > 0) == (y > 0))
    n_inv = int(involved.sum())
    lost_share = 1.0 - refuser_won.sum() / n_inv
    overall_rows = [
        {
            "model": "strength",
            "coef": coef,
            "lower": lower,
            "upper": upper,
            "interval": fit.interval,
            "p_value": p_coef,
            "refusal_votes": n_inv,
            "refuser_lost": lost_share,
        }
    ]

    # baseline for the voters: strength (+ style) + the crowd's refusal term
    st = style_covariates(v.votes)
    covs = np.nan_to_num(diff)[:, None] if st is None else np.column_stack([st[1], np.nan_to_num(diff)])
    counts_dec = np.eye(3)[np.where(y > 0, 0, 1)][None]
    base, se_b = batched_fit(v.a[dec], v.b[dec], n_models, counts_dec, covs[dec], "drop")
    base = base[0]
    s = base[v.a[dec]] - base[v.b[dec]] + covs[dec] @ base[n_models:]
    if st is not None:
        c, cs = float(base[-1]), float(se_b[0, -1])
        overall_rows.append(
            {
                "model": "strength + style",
                "coef": c,
                "lower": c - zq * cs,
                "upper": c + zq * cs,
                "interval": "wald",
                "p_value": float(2 * stats.norm.sf(abs(c / cs))) if cs > 0 else np.nan,
                "refusal_votes": n_inv,
                "refuser_lost": lost_share,
            }
        )
    overall = pd.DataFrame(overall_rows)

    p_left = 1.0 / (1.0 + np.exp(-s))
    p_refuser = np.where(x > 0, p_left, 1.0 - p_left)  # baseline chance the refusing side wins
    lost = np.flatnonzero(involved & ~refuser_won)

    # per voter
    n_voters = len(v.judges)
    voter = v.judge[dec]
    s_voter = s
    if st is not None:
        # Refusals are short: a length-loving voter punishes them too. A voter whose own extra
        # length coefficient, estimated on the votes without a one-sided refusal (disjoint from
        # the tested ones), is significantly positive (one-sided p <= alpha) gets it added to the
        # baseline before their refusal votes are tested. (Adjusting every voter by their noisy
        # estimate would add noise to everyone's baseline and false flags.)
        _, z_st, mean_st, sd_st = st
        d_tokens = z_st[dec, 0] * sd_st[0] + mean_st[0] if sd_st[0] > 0 else np.zeros(len(dec))
        own = voter_score_test(s, y, np.where(x == 0, d_tokens, 0.0), voter, n_voters, alternative="greater")
        lover = (own["p_value"] <= alpha) & (own["estimate"] > 0)
        s_voter = s + np.where(lover, own["estimate"], 0.0)[voter] * d_tokens
    test = voter_score_test(s_voter, y, -x, voter, n_voters, alternative="greater")
    votes_per = np.bincount(v.judge, minlength=n_voters)
    q, flagged = flags(test["p_value"], votes_per, min_votes=min_votes, alpha=alpha, fdr=fdr)
    inv_per = np.bincount(voter, involved, n_voters)
    won_per = np.bincount(voter, refuser_won, n_voters)
    ids = ranked_examples(v, dec[lost], voter[lost], -p_refuser[lost])
    voters = pd.DataFrame(
        {
            "judge": v.judges,
            "votes": votes_per,
            "decisive": test["n"].astype(np.int64),
            "refusal_votes": inv_per.astype(np.int64),
            "refuser_lost": np.where(inv_per > 0, 1.0 - won_per / np.maximum(inv_per, 1), np.nan),
            "refusal_extra": test["estimate"],
            "z": test["z"],
            "p_value": test["p_value"],
            "q_value": q,
            "flagged": flagged,
        }
    )
    voters = voter_rows(voters, ids)
    tables = {"overall": overall, "voters": voters}

    # per node
    nodes, member = node_membership(v, 0)
    if len(nodes):
        mem = member[:, dec]
        n_inv_node = np.asarray(mem @ involved.astype(np.float64)).ravel()
        pick = np.flatnonzero(n_inv_node >= min_node_votes)
        if len(pick):
            mem = mem[pick]
            node_counts = group_counts(mem, fit.row, fit.won, len(fit.a))
            pn, sn = batched_fit(fit.a, fit.b, n_models, node_counts, fit.x, "drop", fit.point)
            nc, ns = pn[:, -1], sn[:, -1]
            # a node where the refusing side lost (or won) every such vote has no finite estimate
            lost_all = np.asarray(mem @ (involved & ~refuser_won).astype(np.float64)).ravel()
            one_way = (lost_all == n_inv_node[pick]) | (lost_all == 0)
            nc, ns = np.where(one_way, np.nan, nc), np.where(one_way, np.nan, ns)
            with np.errstate(invalid="ignore", divide="ignore"):
                zn = (nc - coef) / ns
            pv = 2 * stats.norm.sf(np.abs(zn))
            inv_n = n_inv_node[pick]
            qn, fn = flags(pv, inv_n, min_votes=min_node_votes, alpha=alpha, fdr=fdr)
            won_n = np.asarray(mem @ refuser_won.astype(np.float64)).ravel()
            rows_n = np.repeat(np.arange(len(pick)), np.diff(mem.indptr))
            cols = mem.indices
            sel = involved[cols] & ~refuser_won[cols]
            node_ids = ranked_examples(v, dec[cols[sel]], rows_n[sel], -p_refuser[cols[sel]])
            table = (
                nodes.iloc[pick]
                .reset_index(drop=True)
                .assign(
                    refusal_votes=inv_n.astype(np.int64),
                    refuser_lost=1.0 - won_n / inv_n,
                    coef=nc,
                    lower=nc - zq * ns,
                    upper=nc + zq * ns,
                    interval="wald",
                    z=zn,
                    p_value=pv,
                    q_value=qn,
                    flagged=fn,
                )
            )
            table = attach_ids(table, node_ids, np.arange(len(pick)))
            tables["nodes"] = table.sort_values("coef", ignore_index=True)

    eligible = int((votes_per >= min_votes).sum())
    n_flag = int(voters["flagged"].sum())
    worst = ""
    if fit.separated:
        way = "won" if fit.separated > 0 else "lost"
        worst = f" The refusing side {way} every such vote (no finite estimate)."
    elif "nodes" in tables and tables["nodes"]["coef"].notna().any():
        top = tables["nodes"].iloc[0]
        worst = f" Punished most in '{top['description']}' ({top['coef']:+.2f})."
    summary = (
        f"In {n_inv:,} decisive votes where exactly one answer refused, the refusing side lost "
        f"{lost_share:.0%}; beyond model strength refusing changes the log-odds of winning by {coef:+.2f} "
        f"({level:.0%} CI {lower:+.2f} to {upper:+.2f}, odds x{np.exp(coef):.2f}).{worst} "
        f"{n_flag} of {eligible} voters with >= {min_votes} votes are more refusal-averse than the crowd "
        f"({'BH ' if fdr else ''}alpha {alpha})."
    )
    return Finding(
        audit=AUDIT,
        title=TITLE,
        summary=summary,
        headline={
            "label": "refusal effect beyond model strength (negative = punished)",
            "estimate": coef,
            "lower": lower,
            "upper": upper,
            "p_value": p_coef,
            "n": n_inv,
            "unit": "log-odds",
        },
        tables=tables,
        plot={
            "table": "nodes" if "nodes" in tables else "overall",
            "kind": "interval",
            "x": "coef",
            "y": "description" if "nodes" in tables else "model",
            "lower": "lower",
            "upper": "upper",
            "color": "flagged" if "nodes" in tables else None,
            "label": "description" if "nodes" in tables else "model",
        },
        params=params,
        seconds=time.perf_counter() - t0,
    )

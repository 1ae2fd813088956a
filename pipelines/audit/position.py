"""Position bias: does the left answer (model_a) win more than the two models' strengths predict?

Overall: P(left wins) among decisive votes (Wilson interval) and a Bradley–Terry fit on the
ordered (model_a, model_b) cells with a constant covariate, whose coefficient is the left
side's advantage in natural log-odds (percentile bootstrap over the cells' counts). Per voter:
a strength-adjusted score test of a voter-specific left term. Per tree node: left rate and the
node's own left coefficient (Wald interval), tested against the overall coefficient.

Ties carry no information about position in these models and are left out everywhere in this
module (decisive votes only, ``ties='drop'``): the coefficient is the log-odds of "left wins"
given that someone won, which is what a planted position logit in a Davidson tie model is.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from scipy import stats

from ..design import POSITION_SENTENCE, left_term_identifiable
from ..ratings import Cells, fit_pairwise, resample_counts
from ..stats import wilson_interval
from .covariates import (
    baseline_logits,
    batched_fit,
    group_counts,
    voter_score_test,
)
from .frame import MODEL_A, MODEL_B, AuditVotes
from .result import Finding, not_applicable
from .tables import attach_ids, flags, node_membership, percentile_interval, ranked_examples, voter_rows

AUDIT = "position"
TITLE = "Position bias: does the left answer win more often?"
# Nodes with at least this many votes get their own row: at 200 votes (~120 decisive ones at a
# 40% tie rate) the Wald standard error of a node's left log-odds is about 2 / sqrt(120) ~ 0.18,
# small enough to tell a left advantage of 0.5 log-odds from none.
MIN_NODE_VOTES = 200


def position_preference(
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
    """Left-side (model_a) preference overall, per voter and per tree node.

    Headline: the left coefficient of a Bradley–Terry fit on the decisive votes' ordered (model_a,
    model_b) cells with a constant covariate (natural log-odds; > 0 = left wins more than the
    strengths predict), with a ``level`` percentile bootstrap over ``rounds`` multinomial redraws
    of the cells (all rounds solved at once) and a Wald p-value.

    Tables:

    - ``voters``: judge, votes, decisive, left_wins, left_rate (of decisive votes) with a Wilson
      ``lower``/``upper``, left_logit (the voter's own left log-odds beyond strength, MLE),
      z and p_value (two-sided score test of a voter-specific left term: sum of y - p over the
      voter's decisive votes, p from the global Bradley–Terry without a position term, variance
      sum p (1 - p); ties left out), q_value (BH across voters with >= ``min_votes`` votes),
      flagged, battle_ids (wins of the side the voter leans to, least expected first: for a
      left-leaning voter the left wins against the stronger model first).
    - ``nodes`` (with a tree): node_id, description, depth, votes, decisive, left_rate, lower,
      upper (Wilson), left_coef, coef_lower, coef_upper (Wald, ``interval`` column), z and p_value
      of left_coef against the overall coefficient (two-sided), q_value (BH across nodes),
      flagged, battle_ids (the node's left wins against the stronger model).
    - ``overall``: one row with the overall numbers.
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
    decisive = np.flatnonzero((v.outcome == MODEL_A) | (v.outcome == MODEL_B))
    if len(decisive) == 0 or len(v.models) < 2:
        return not_applicable(AUDIT, TITLE, "No decisive vote (every vote is a tie).", **params)
    if not left_term_identifiable(v.a[decisive], v.b[decisive], len(v.models)):
        return not_applicable(AUDIT, TITLE, POSITION_SENTENCE, **params)
    n_models = len(v.models)
    y = (v.outcome[decisive] == MODEL_A).astype(np.float64)
    a, b = v.a[decisive], v.b[decisive]

    # overall: rate and BT with a left term on the ordered cells
    left_wins = float(y.sum())
    n_dec = len(decisive)
    rate_lo, rate_hi = wilson_interval(np.array([left_wins]), np.array([n_dec]), level)
    cell = a * n_models + b
    flat = np.bincount(cell * 3 + np.where(y > 0, 0, 1), minlength=n_models * n_models * 3)
    flat = flat.reshape(-1, 3).astype(np.float64)
    keep = np.flatnonzero(flat.sum(axis=1))
    cells = Cells(keep // n_models, keep % n_models, flat[keep, 0], flat[keep, 1], flat[keep, 2])
    ones = np.ones((len(keep), 1))
    point, se = batched_fit(cells.a, cells.b, n_models, cells.counts[None], ones, "drop")
    point, se = point[0], se[0]
    coef, coef_se = float(point[-1]), float(se[-1])
    draws = resample_counts(cells, rounds, np.random.default_rng(seed))
    boot = np.atleast_2d(
        fit_pairwise(cells.a, cells.b, n_models, draws, features=ones, ties="drop", start=point)
    )
    lower, upper = percentile_interval(boot[:, -1], level) if rounds else (np.nan, np.nan)
    coef_p = float(2 * stats.norm.sf(abs(coef / coef_se))) if coef_se > 0 else float("nan")

    # per voter: score test against the global BT without a position term
    s_plain, _ = baseline_logits(v, None, decisive)
    voter = v.judge[decisive]
    n_voters = len(v.judges)
    test = voter_score_test(s_plain, y, np.ones(n_dec), voter, n_voters)
    votes_per = np.bincount(v.judge, minlength=n_voters)
    wins_per = np.bincount(voter, y, n_voters)
    dec_per = test["n"]
    lo_v, hi_v = wilson_interval(wins_per, dec_per, level)
    q, flagged = flags(test["p_value"], votes_per, min_votes=min_votes, alpha=alpha, fdr=fdr)
    p_left = 1.0 / (1.0 + np.exp(-s_plain))
    # examples: the wins of the side the voter leans to (left when z >= 0), least expected first
    # (e.g. left wins against the stronger model first)
    lean_left = np.nan_to_num(test["z"]) >= 0
    telling = np.flatnonzero((y > 0) == lean_left[voter])
    p_side = np.where(y > 0, p_left, 1.0 - p_left)
    ids = ranked_examples(v, decisive[telling], voter[telling], p_side[telling])
    voters = pd.DataFrame(
        {
            "judge": v.judges,
            "votes": votes_per,
            "decisive": dec_per.astype(np.int64),
            "left_wins": wins_per.astype(np.int64),
            "left_rate": np.where(dec_per > 0, wins_per / np.maximum(dec_per, 1), np.nan),
            "lower": lo_v,
            "upper": hi_v,
            "left_logit": test["estimate"],
            "z": test["z"],
            "p_value": test["p_value"],
            "q_value": q,
            "flagged": flagged,
        }
    )
    voters = voter_rows(voters, ids)

    # per node
    tables: dict[str, pd.DataFrame] = {}
    nodes, member = node_membership(v, min_node_votes)
    if len(nodes):
        mem_dec = member[:, decisive]
        counts = group_counts(mem_dec, np.searchsorted(keep, cell), np.where(y > 0, 0, 1), len(keep))
        dec_n = counts.sum(axis=(1, 2))
        wins_n = counts[:, :, 0].sum(axis=1)
        lo_n, hi_n = wilson_interval(wins_n, dec_n, level)
        fit_ok = dec_n >= min_votes
        node_coef = np.full(len(nodes), np.nan)
        node_se = node_coef.copy()
        if fit_ok.any():
            pn, sn = batched_fit(cells.a, cells.b, n_models, counts[fit_ok], ones, "drop")
            node_coef[fit_ok], node_se[fit_ok] = pn[:, -1], sn[:, -1]
        zq = stats.norm.ppf(0.5 + level / 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            z_node = (node_coef - coef) / node_se
        p_node = 2 * stats.norm.sf(np.abs(z_node))
        q_node, flag_node = flags(p_node, dec_n, min_votes=min_votes, alpha=alpha, fdr=fdr)
        rows = np.repeat(np.arange(len(nodes)), np.diff(mem_dec.indptr))
        cols = mem_dec.indices
        tell = y[cols] > 0
        node_ids = ranked_examples(v, decisive[cols[tell]], rows[tell], p_left[cols[tell]])
        table = nodes.assign(
            decisive=dec_n.astype(np.int64),
            left_rate=np.where(dec_n > 0, wins_n / np.maximum(dec_n, 1), np.nan),
            lower=lo_n,
            upper=hi_n,
            left_coef=node_coef,
            coef_lower=node_coef - zq * node_se,
            coef_upper=node_coef + zq * node_se,
            interval="wald",
            z=z_node,
            p_value=p_node,
            q_value=q_node,
            flagged=flag_node,
        )
        tables["nodes"] = attach_ids(table, node_ids, np.arange(len(nodes)))

    overall = pd.DataFrame(
        [
            {
                "votes": v.n,
                "decisive": n_dec,
                "left_wins": int(left_wins),
                "left_rate": left_wins / n_dec,
                "lower": float(rate_lo[0]),
                "upper": float(rate_hi[0]),
                "left_coef": coef,
                "coef_lower": lower,
                "coef_upper": upper,
                "coef_se": coef_se,
                "interval": "bootstrap",
                "p_value": coef_p,
            }
        ]
    )
    tables = {"overall": overall, "voters": voters, **tables}
    eligible = int((votes_per >= min_votes).sum())
    n_flag = int(voters["flagged"].sum())
    summary = (
        f"The left answer won {left_wins / n_dec:.1%} of {n_dec:,} decisive votes "
        f"({level:.0%} CI {rate_lo[0]:.1%}–{rate_hi[0]:.1%}); adjusted for model strength the left side's "
        f"advantage is {coef:+.2f} log-odds ({lower:+.2f} to {upper:+.2f}, odds x{np.exp(coef):.2f}). "
        f"{n_flag} of {eligible} voters with >= {min_votes} votes show a position preference "
        f"({'BH ' if fdr else ''}alpha {alpha})."
    )
    return Finding(
        audit=AUDIT,
        title=TITLE,
        summary=summary,
        headline={
            "label": "left-side advantage beyond model strength",
            "estimate": coef,
            "lower": lower,
            "upper": upper,
            "p_value": coef_p,
            "n": n_dec,
            "unit": "log-odds",
        },
        tables=tables,
        plot={
            "table": "voters",
            "kind": "scatter",
            "x": "votes",
            "y": "left_rate",
            "lower": "lower",
            "upper": "upper",
            "color": "flagged",
            "label": "judge",
        },
        params=params,
        seconds=time.perf_counter() - t0,
    )

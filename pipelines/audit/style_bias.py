"""Style preference: do voters reward longer answers and markdown beyond model strength?

The style-control model of :mod:`pipelines.style_control` (Bradley–Terry plus one covariate per
style feature: standardised normalised differences of tokens, headers, list items, bold; plus
``refusal`` when the source flags refusals, since refusing answers are short and lose for
refusing, which would otherwise be credited to length) fitted on the decisive votes
(``ties='drop'``: a coefficient is the log-odds of "left wins, given someone won" per standard
deviation of the feature's normalised difference). Overall with a percentile
bootstrap (via ``style_control``) when there are at most ``max_bootstrap_votes`` usable votes,
else with Wald intervals; per judge kind, voter activity tier and top-level node with Wald
intervals from the observed information of one fit each. Per voter: a score test of an extra
length coefficient beyond the global fit, flagging length-loving voters. Refusals are short, so
when the source flags refusals the baseline holds the crowd's refusal penalty fixed and the
voter's length term is tested on the votes where neither (or both) sides refused only: a
refusal-averse voter would otherwise look length-loving.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from scipy import stats

from ..ratings import ROUND_TOL
from ..style_control import STYLE_FEATURES, style_control, style_differences
from .covariates import batched_fit, flag_difference, numeric_pair, outcome_counts, voter_score_test
from .frame import MODEL_A, MODEL_B, AuditVotes
from .result import Finding, not_applicable
from .tables import flags, ranked_examples, voter_rows

AUDIT = "style"
TITLE = "Style preference: length and markdown beyond model strength"
MAX_BOOTSTRAP_VOTES = 50_000  # above this, the overall bootstrap (~2-4 s per 100k votes) gives way to Wald
ACTIVITY_TIERS = ((1, 19), (20, 99), (100, None))  # voters by their number of votes


def _with_refusal(votes: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The votes with refusal flags as 0/1 floats, and the style-control features: the four style
    features, plus 'refusal' when some vote has exactly one refusing side. Refusals are short
    answers that lose for being refusals; without this control their penalty would be credited to
    length (on the simulator: 0.91 instead of the planted 0.70 log-odds per unit)."""
    diff = flag_difference(votes, "refusal")
    if diff is None or not np.any(np.nan_to_num(diff) != 0):
        return votes, STYLE_FEATURES
    ra, rb = numeric_pair(votes, "refusal")
    frame = votes.assign(refusal_a=(ra > 0).astype(np.float64), refusal_b=(rb > 0).astype(np.float64))
    frame.loc[np.isnan(ra), "refusal_a"] = np.nan
    frame.loc[np.isnan(rb), "refusal_b"] = np.nan
    return frame, (*STYLE_FEATURES, "refusal")


def _unit(features: tuple[str, ...]) -> np.ndarray:
    """Factor from 'per unit of normalised difference' to the reported per-unit scale: 1 for the
    style features; 1/2 for refusal, whose normalised difference (r_a - r_b) / (r_a + r_b + 1) is
    1/2 for one refusing side, so its coef_per_unit is log-odds per refusing side."""
    return np.array([0.5 if f == "refusal" else 1.0 for f in features])


def _tier_label(lo: int, hi: int | None) -> str:
    return f"{lo}-{hi} votes" if hi is not None else f"{lo}+ votes"


def style_preference(
    v: AuditVotes,
    *,
    min_votes: int = 20,
    rounds: int = 100,
    seed: int = 0,
    level: float = 0.95,
    alpha: float = 0.05,
    fdr: bool = True,
    max_bootstrap_votes: int = MAX_BOOTSTRAP_VOTES,
) -> Finding:
    """Length and markdown preference overall, per group of voters and per voter.

    Headline: the length (tokens) coefficient overall, natural log-odds per standard deviation of
    the normalised token difference (tokens_a - tokens_b) / (tokens_a + tokens_b + 1).

    Tables:

    - ``coefficients``: feature (the style features, then 'refusal' when controlled for), coef
      (per SD), lower, upper, interval ('bootstrap' or 'wald'), coef_per_unit (= coef / sd:
      log-odds per unit of the normalised difference, the scale of the simulator's style
      coefficients; for refusal per refusing side), sd, p_value (Wald, coef = 0),
      battles_nonzero.
    - ``groups``: group_kind ('all', 'judge_kind', 'activity', 'node'), group, votes, decisive,
      feature, coef, lower, upper, interval, coef_per_unit, p_value; standardisation shared with
      the overall fit so groups compare; NaN where the feature differs in fewer than
      ``min_votes`` of the group's decisive votes.
    - ``voters``: judge, votes, decisive, longer_wins (share of the voter's decisive votes with
      differing lengths won by the longer answer), length_coef (the voter's extra length
      coefficient beyond the global fit, log-odds per unit of normalised token difference, MLE,
      from the votes without a one-sided refusal when refusals are flagged),
      z, p_value (one-sided score test, H1: extra > 0), q_value (BH), flagged, battle_ids (the
      voter's decisive votes won by the longer answer, least expected by the global fit first).
    """
    t0 = time.perf_counter()
    params = {
        "min_votes": min_votes,
        "rounds": rounds,
        "seed": seed,
        "level": level,
        "alpha": alpha,
        "fdr": fdr,
        "max_bootstrap_votes": max_bootstrap_votes,
    }
    if not all(f"{f}_{side}" in v.votes for f in STYLE_FEATURES for side in "ab"):
        return not_applicable(
            AUDIT, TITLE, "The votes have no style measurements (tokens, markdown).", **params
        )
    frame, features = _with_refusal(v.votes)
    usable, diffs = style_differences(frame, features)
    if not usable.any():
        return not_applicable(AUDIT, TITLE, "No vote has every style measurement.", **params)
    mean, sd = diffs.mean(axis=0), diffs.std(axis=0)
    z = np.zeros((v.n, len(features)))
    z[usable] = np.where(sd > 0, (diffs - mean) / np.where(sd > 0, sd, 1.0), 0.0)
    dec = np.flatnonzero(usable & ((v.outcome == MODEL_A) | (v.outcome == MODEL_B)))
    if len(dec) < 2 or len(v.models) < 2:
        return not_applicable(AUDIT, TITLE, "Too few decisive votes with style measurements.", **params)
    n_models = len(v.models)
    zq = stats.norm.ppf(0.5 + level / 2)

    def fit_rows(rows: np.ndarray, start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        counts = outcome_counts(v.outcome[rows])[None]
        # subgroups start at the overall fit and stop at ROUND_TOL (far below their standard errors)
        tol = 1e-10 if start is None else ROUND_TOL
        p, se = batched_fit(v.a[rows], v.b[rows], n_models, counts, z[rows], "drop", start, tol)
        return p[0], se[0]

    point, se = fit_rows(dec)
    coef, coef_se = point[n_models:], se[n_models:]
    with np.errstate(invalid="ignore", divide="ignore"):
        p_coef = 2 * stats.norm.sf(np.abs(coef / coef_se))
    varies = sd > 0
    n_used = int(usable.sum())
    if n_used <= max_bootstrap_votes and rounds > 0:
        boot = style_control(frame.loc[usable], rounds, seed, level, ties="drop", features=features)
        boot = boot.coefficients
        lower, upper = boot["lower"].to_numpy(), boot["upper"].to_numpy()
        interval = "bootstrap"
    else:
        lower, upper = coef - zq * coef_se, coef + zq * coef_se
        interval = "wald"
    coef = np.where(varies, coef, np.nan)
    p_coef = np.where(varies, p_coef, np.nan)
    per_unit = np.where(varies, coef / np.where(varies, sd, 1.0), np.nan) * _unit(features)
    raw = z * sd + mean  # normalised differences again (0 on unusable votes: masked below)
    differs = usable[:, None] & (np.abs(raw) > 1e-12) & varies
    nonzero = differs.sum(axis=0).astype(np.int64)
    coefficients = pd.DataFrame(
        {
            "feature": list(features),
            "coef": coef,
            "lower": lower,
            "upper": upper,
            "interval": interval,
            "coef_per_unit": per_unit,
            "sd": sd,
            "p_value": p_coef,
            "battles_nonzero": nonzero,
        }
    )

    # groups: Wald from one fit each (standardisation shared with the overall fit)
    votes_per = np.bincount(v.judge, minlength=len(v.judges))
    kind = v.votes["judge_kind"].astype(str).to_numpy()
    groups: list[tuple[str, str, np.ndarray]] = [("all", "all votes", np.ones(v.n, dtype=bool))]
    for value in sorted(set(kind)):
        groups.append(("judge_kind", value, kind == value))
    activity = votes_per[v.judge]
    for lo, hi in ACTIVITY_TIERS:
        groups.append(("activity", _tier_label(lo, hi), (activity >= lo) & (activity <= (hi or np.inf))))
    if v.tree_id is not None and len(v.top_row):
        for row in sorted(set(v.top_row[v.top_row >= 0].tolist())):
            node = v.nodes.iloc[row]
            groups.append(("node", f"{node['node_id']}: {node['description']}", v.top_row == row))
    in_dec = np.zeros(v.n, dtype=bool)
    in_dec[dec] = True
    rows_out = []
    for group_kind, name, mask in groups:
        rows = np.flatnonzero(mask & in_dec)
        if len(rows) == len(dec):  # the whole data set: the overall fit
            gp, gs = point, se
        elif len(rows) >= max(min_votes, 2):
            gp, gs = fit_rows(rows, point)
        else:
            gp, gs = np.full(len(point), np.nan), np.full(len(point), np.nan)
        gc, gse = gp[n_models:], gs[n_models:]
        # a feature that differs in fewer than min_votes of the group's decisive votes is not estimable
        ok = varies & (differs[rows].sum(axis=0) >= min_votes)
        with np.errstate(invalid="ignore", divide="ignore"):
            gpv = 2 * stats.norm.sf(np.abs(gc / gse))
        unit = _unit(features)
        for j, feat in enumerate(features):
            rows_out.append(
                {
                    "group_kind": group_kind,
                    "group": name,
                    "votes": int((mask & usable).sum()),
                    "decisive": len(rows),
                    "feature": feat,
                    "coef": gc[j] if ok[j] else np.nan,
                    "lower": gc[j] - zq * gse[j] if ok[j] else np.nan,
                    "upper": gc[j] + zq * gse[j] if ok[j] else np.nan,
                    "interval": "wald",
                    "coef_per_unit": gc[j] / sd[j] * unit[j] if ok[j] else np.nan,
                    "p_value": gpv[j] if ok[j] else np.nan,
                }
            )
    group_table = pd.DataFrame(rows_out)

    # per voter: extra length coefficient beyond the global fit
    n_voters = len(v.judges)
    y = (v.outcome[dec] == MODEL_A).astype(np.float64)
    s = point[v.a[dec]] - point[v.b[dec]] + z[dec] @ np.nan_to_num(point[n_models:])
    d_tokens = np.where(varies[0], z[dec, 0] * sd[0] + mean[0], 0.0)  # raw normalised token difference
    x_test = d_tokens
    if "refusal" in features:
        # Refusals are short, so a voter who punishes refusals looks length-loving on the votes
        # where exactly one side refused: the baseline holds the crowd's refusal penalty fixed
        # and the voter's own length term is tested on the other votes only.
        x_test = np.where(np.abs(z[dec, -1] * sd[-1] + mean[-1]) > 1e-12, 0.0, d_tokens)
    voter = v.judge[dec]
    test = voter_score_test(s, y, x_test, voter, n_voters, alternative="greater")
    q, flagged = flags(test["p_value"], votes_per, min_votes=min_votes, alpha=alpha, fdr=fdr)
    differ = d_tokens != 0
    longer_won = differ & ((d_tokens > 0) == (y > 0))
    share = np.bincount(voter, longer_won, n_voters) / np.maximum(np.bincount(voter, differ, n_voters), 1)
    p_left = 1.0 / (1.0 + np.exp(-s))
    p_longer = np.where(d_tokens > 0, p_left, 1.0 - p_left)
    tell = np.flatnonzero(longer_won)
    ids = ranked_examples(v, dec[tell], voter[tell], p_longer[tell])
    voters = pd.DataFrame(
        {
            "judge": v.judges,
            "votes": votes_per,
            "decisive": test["n"].astype(np.int64),
            "longer_wins": np.where(np.bincount(voter, differ, n_voters) > 0, share, np.nan),
            "length_coef": test["estimate"],
            "z": test["z"],
            "p_value": test["p_value"],
            "q_value": q,
            "flagged": flagged,
        }
    )
    voters = voter_rows(voters, ids)

    length = coefficients.iloc[0]
    eligible = int((votes_per >= min_votes).sum())
    n_flag = int(voters["flagged"].sum())
    md = coefficients[coefficients["feature"].isin(["headers", "lists", "bold"])]
    summary = (
        f"Among {len(dec):,} decisive votes, one standard deviation more relative length raises the odds of "
        f"winning by x{np.exp(length['coef']):.2f} ({length['coef']:+.2f} log-odds, {level:.0%} "
        f"{interval} interval {length['lower']:+.2f} to {length['upper']:+.2f}) at equal model strength; "
        f"markdown (headers, lists, bold): "
        + ", ".join(f"{r.coef:+.2f}" if np.isfinite(r.coef) else "n/a" for r in md.itertuples())
        + f" log-odds per SD. {n_flag} of {eligible} voters with >= {min_votes} votes favour length "
        f"beyond the crowd ({'BH ' if fdr else ''}alpha {alpha})."
    )
    return Finding(
        audit=AUDIT,
        title=TITLE,
        summary=summary,
        headline={
            "label": "length preference (per SD of relative length difference)",
            "estimate": float(length["coef"]),
            "lower": float(length["lower"]),
            "upper": float(length["upper"]),
            "p_value": float(length["p_value"]),
            "n": len(dec),
            "unit": "log-odds per SD",
        },
        tables={"coefficients": coefficients, "groups": group_table, "voters": voters},
        plot={
            "table": "groups",
            "kind": "interval",
            "x": "coef",
            "y": "group",
            "lower": "lower",
            "upper": "upper",
            "color": "feature",
            "label": "group",
        },
        params=params,
        seconds=time.perf_counter() - t0,
    )

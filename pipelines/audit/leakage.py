"""Identity leakage: votes where an answer names a model or vendor, and whether naming wins or loses.

``leak_a`` / ``leak_b`` flag an answer that names a model family or vendor (e.g. "I am Claude").
Such votes are no longer blind. The audit reports their share, a Bradley–Terry fit on the
decisive votes with the covariate ``leak_a - leak_b`` (log-odds a leaking answer gains beyond
strength; percentile bootstrap), the tie rate with and without a leak, and per model whether
its leaking answers score more or less than its strength predicts.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from scipy import stats

from ..stats import bh_adjust, wilson_interval
from .covariates import (
    baseline_logits,
    batched_fit,
    covariate_fit,
    flag_difference,
    numeric_pair,
    style_covariates,
)
from .frame import BOTHBAD, MODEL_A, MODEL_B, TIE, AuditVotes
from .result import EXAMPLE_IDS, Finding, not_applicable

AUDIT = "identity_leakage"
TITLE = "Identity leakage: answers that name a model or vendor"


def identity_leakage(
    v: AuditVotes, *, rounds: int = 100, seed: int = 0, level: float = 0.95, alpha: float = 0.05
) -> Finding:
    """Share of votes with a leaking answer and how they differ.

    Headline: the coefficient of ``leak_a - leak_b`` in a Bradley–Terry fit on the decisive votes
    (natural log-odds for the leaking side; > 0 = naming itself helps beyond strength), ``level``
    percentile bootstrap over ``rounds`` redraws of the aggregated (model_a, model_b, leak) rows.

    Tables:

    - ``overall``: votes, leak_votes (either side leaks), leak_share with Wilson lower/upper,
      coef, coef_lower, coef_upper, p_value (Wald), interval, adjusted_coef, adjusted_lower,
      adjusted_upper, adjusted_p_value (the same coefficient with the style-control covariates and
      the refusal covariate held fixed, Wald; a leaking answer is rarely a refusal, so the plain
      coefficient partly carries the refusal penalty), battle_ids (leaking votes, up to 20).
    - ``ties``: leak ('with leak' / 'without leak'), votes, tie_rate, lower, upper (Wilson),
      bothbad_rate; p_value of a two-proportion z-test on the first row.
    - ``models``: model, votes (battles the model played), leaks (its answers that leak),
      leak_rate, leak_decisive (decisive votes where only its answer leaked), observed (wins there),
      expected (sum of win probabilities as if leaking had no effect: the adjusted fit with its
      leak term removed; a plain Bradley–Terry fit when there is nothing to adjust for), z =
      (observed - expected) / sqrt(sum p (1 - p)), p_value (two-sided), q_value (BH across
      models), flagged (q <= ``alpha``), battle_ids (those votes, least expected outcome first).
    """
    t0 = time.perf_counter()
    params = {"rounds": rounds, "seed": seed, "level": level, "alpha": alpha}
    diff = flag_difference(v.votes, "leak")
    if diff is None:
        return not_applicable(AUDIT, TITLE, "The votes have no identity-leak flags.", **params)
    la, lb = numeric_pair(v.votes, "leak")
    la, lb = np.nan_to_num(la) > 0, np.nan_to_num(lb) > 0
    any_leak = la | lb
    if not any_leak.any():
        return not_applicable(AUDIT, TITLE, "No answer names a model or vendor.", **params)
    n, n_leak = v.n, int(any_leak.sum())
    n_models = len(v.models)
    share_lo, share_hi = wilson_interval(np.array([n_leak]), np.array([n]), level)
    battle = v.votes["battle_id"].astype(str).to_numpy()

    dec = np.flatnonzero(np.isfinite(diff) & ((v.outcome == MODEL_A) | (v.outcome == MODEL_B)))
    x = diff[dec]
    fit = None
    if np.any(x != 0) and len(v.models) >= 2:
        fit = covariate_fit(v, x, dec, rounds, seed, level)

    tie = (v.outcome == TIE) | (v.outcome == BOTHBAD)
    bad = v.outcome == BOTHBAD
    tie_rows = []
    for label, mask in (("with leak", any_leak), ("without leak", ~any_leak)):
        m = int(mask.sum())
        t = int(tie[mask].sum())
        lo, hi = wilson_interval(np.array([t]), np.array([m]), level)
        tie_rows.append(
            {
                "leak": label,
                "votes": m,
                "tie_rate": t / m if m else np.nan,
                "lower": float(lo[0]),
                "upper": float(hi[0]),
                "bothbad_rate": float(bad[mask].sum()) / m if m else np.nan,
            }
        )
    ties = pd.DataFrame(tie_rows)
    n1, n2 = ties["votes"].to_numpy(np.float64)
    p1, p2 = ties["tie_rate"].to_numpy()
    pooled = (tie.sum()) / n
    se = np.sqrt(pooled * (1 - pooled) * (1 / max(n1, 1) + 1 / max(n2, 1)))
    ties["p_value"] = [float(2 * stats.norm.sf(abs((p1 - p2) / se))) if se > 0 and n2 > 0 else np.nan, np.nan]

    # per model: observed vs expected wins of its leaking answers (decisive votes, only its side leaks)
    played = np.bincount(v.a, minlength=n_models) + np.bincount(v.b, minlength=n_models)
    leaks = np.bincount(v.a, la, n_models) + np.bincount(v.b, lb, n_models)
    dec_all = np.flatnonzero((v.outcome == MODEL_A) | (v.outcome == MODEL_B))
    # adjusted model: strength + style + refusal (leaking answers are never refusals) + leak
    controls = []
    st = style_covariates(v.votes)
    if st is not None:
        controls.append(st[1])
    refusal = flag_difference(v.votes, "refusal")
    if refusal is not None and np.any(np.nan_to_num(refusal) != 0):
        controls.append(np.nan_to_num(refusal)[:, None])
    adjusted = None
    a_dec, b_dec = v.a[dec_all], v.b[dec_all]
    if controls and fit is not None and not fit.separated:
        covs = np.column_stack([*controls, np.nan_to_num(diff)])[dec_all]
        counts = np.eye(3)[np.where(v.outcome[dec_all] == MODEL_A, 0, 1)][None]
        base, se_b = batched_fit(a_dec, b_dec, n_models, counts, covs, "drop")
        base = base[0]
        zq = stats.norm.ppf(0.5 + level / 2)
        c, cs = float(base[-1]), float(se_b[0, -1])
        adjusted = {
            "coef": c,
            "lower": c - zq * cs,
            "upper": c + zq * cs,
            "p_value": float(2 * stats.norm.sf(abs(c / cs))) if cs > 0 else np.nan,
        }
        # expected scores as if leaking had no effect: the adjusted fit without its leak term
        s = base[a_dec] - base[b_dec] + covs[:, :-1] @ base[n_models:-1]
    else:
        s, _ = baseline_logits(v, np.column_stack(controls) if controls else None, dec_all)
    p_left = 1.0 / (1.0 + np.exp(-s))
    y = v.outcome[dec_all] == MODEL_A
    only_a = la[dec_all] & ~lb[dec_all]
    only_b = lb[dec_all] & ~la[dec_all]
    model = np.where(only_a, v.a[dec_all], v.b[dec_all])
    sel = only_a | only_b
    p_win = np.where(only_a, p_left, 1.0 - p_left)[sel]
    won = np.where(only_a, y, ~y)[sel]
    m_sel = model[sel]
    obs = np.bincount(m_sel, won, n_models)
    exp = np.bincount(m_sel, p_win, n_models)
    var = np.bincount(m_sel, p_win * (1 - p_win), n_models)
    n_dec = np.bincount(m_sel, minlength=n_models)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(var > 0, (obs - exp) / np.sqrt(var), np.nan)
    p_value = 2 * stats.norm.sf(np.abs(z))
    q = bh_adjust(p_value)
    surprise = np.abs(won - p_win)
    order = np.lexsort((-surprise, m_sel))
    ids_sorted, m_sorted = battle[dec_all[sel]][order], m_sel[order]
    per_model_ids = {
        int(mm): list(ids_sorted[m_sorted == mm][:EXAMPLE_IDS]) for mm in np.unique(m_sorted)
    }  # loop over models only
    models = pd.DataFrame(
        {
            "model": v.models,
            "votes": played,
            "leaks": leaks.astype(np.int64),
            "leak_rate": leaks / np.maximum(played, 1),
            "leak_decisive": n_dec,
            "observed": obs,
            "expected": exp,
            "z": z,
            "p_value": p_value,
            "q_value": q,
            "flagged": np.nan_to_num(q, nan=1.0) <= alpha,
            "battle_ids": [per_model_ids.get(i, []) for i in range(n_models)],
        }
    ).sort_values(["leaks", "model"], ascending=[False, True], ignore_index=True)

    coef = fit.coef if fit else np.nan
    overall = pd.DataFrame(
        [
            {
                "votes": n,
                "leak_votes": n_leak,
                "leak_share": n_leak / n,
                "lower": float(share_lo[0]),
                "upper": float(share_hi[0]),
                "coef": coef,
                "coef_lower": fit.lower if fit else np.nan,
                "coef_upper": fit.upper if fit else np.nan,
                "p_value": fit.p_value if fit else np.nan,
                "interval": fit.interval if fit else None,
                "adjusted_coef": adjusted["coef"] if adjusted else np.nan,
                "adjusted_lower": adjusted["lower"] if adjusted else np.nan,
                "adjusted_upper": adjusted["upper"] if adjusted else np.nan,
                "adjusted_p_value": adjusted["p_value"] if adjusted else np.nan,
                "battle_ids": list(battle[any_leak][:EXAMPLE_IDS]),
            }
        ]
    )
    effect = (
        (
            f"the leaking side {'won' if fit.separated > 0 else 'lost'} every decisive vote where only one "
            "side leaked, so the effect is unbounded (no finite estimate)"
        )
        if fit and fit.separated
        else f"beyond model strength a leaking answer's log-odds of winning change by {coef:+.2f} "
        f"({level:.0%} CI {fit.lower:+.2f} to {fit.upper:+.2f})"
        if fit
        else "no decisive vote has exactly one leaking answer, so no strength-adjusted effect"
    )
    if adjusted:
        effect += (
            f"; with style and refusals held equal {adjusted['coef']:+.2f} "
            f"({adjusted['lower']:+.2f} to {adjusted['upper']:+.2f}, Wald)"
        )
    summary = (
        f"{n_leak:,} of {n:,} votes ({n_leak / n:.2%}) show an answer that names a model or vendor; "
        f"{effect}. "
        f"Tie rate {ties['tie_rate'].iloc[0]:.1%} with a leak vs {ties['tie_rate'].iloc[1]:.1%} without. "
        f"{int(models['flagged'].sum())} models' leaking answers score differently from their strength "
        f"(BH alpha {alpha})."
    )
    return Finding(
        audit=AUDIT,
        title=TITLE,
        summary=summary,
        headline={
            "label": "leaking side's advantage beyond model strength",
            "estimate": coef,
            "lower": fit.lower if fit else None,
            "upper": fit.upper if fit else None,
            "p_value": fit.p_value if fit else None,
            "n": n_leak,
            "unit": "log-odds",
        },
        tables={"overall": overall, "ties": ties, "models": models},
        plot={
            "table": "models",
            "kind": "bar",
            "x": "model",
            "y": "z",
            "color": "flagged",
            "label": "model",
        },
        params=params,
        seconds=time.perf_counter() - t0,
    )

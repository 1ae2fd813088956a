"""Style control: Bradley–Terry with per-battle style covariates, LMArena's method.

LMArena (Li, Angelopoulos, Chiang, "Does style matter?", 2024; FastChat ``rating_systems.py``
``preprocess_for_style`` / ``fit_contextual_bt``) adds to the Bradley–Terry logistic regression one
covariate per style feature and battle::

    z = standardise((f_a - f_b) / (f_a + f_b + 1))        f = answer tokens, headers, list items, bold

standardised over the battles used (mean 0, population standard deviation 1, as their
``(style_diff - mean) / std``), so a coefficient is in natural log-odds of "model_a wins" per
standard deviation of the normalised difference (their published values on Arena data: length
0.249, list 0.031, header 0.024, bold 0.019). Ties, both kinds, count as half a win for each side
(their outcome 0.5 / duplicated-battle encoding). Differences from their code: we fit the plain
MLE, while they add an L2 penalty (sklearn's default C=1 on duplicated battles, i.e. ``reg=0.5``
on all parameters); with arena-size data the penalty is negligible, on small nodes it shrinks
their coefficients towards 0. Their bootstrap resamples battles; ours draws the same multinomial
over identical (pair, style, outcome) rows.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from pipelines.errors import NotApplicable
from pipelines.ratings import (
    CHUNK_ELEMENTS,
    Cells,
    battles_played,
    fit_pairwise,
    index_models,
    leaderboard,
    leaderboard_table,
    to_ratings,
    winner_codes,
)
from pipelines.slices import with_rank_spread

STYLE_FEATURES = ("tokens", "headers", "lists", "bold")  # battle columns <name>_a, <name>_b


class StyleControl(NamedTuple):
    """Result of :func:`style_control`."""

    leaderboard: pd.DataFrame  # controlled: leaderboard() columns + rank_change
    coefficients: pd.DataFrame  # feature, coef, lower, upper (log-odds per SD of normalised diff)
    plain: pd.DataFrame  # plain Bradley–Terry leaderboard on the same battles
    battles_used: int  # battles with every style feature present
    battles_dropped: int  # battles dropped for a missing (NULL/NaN) style feature


def style_differences(
    battles: pd.DataFrame, features: tuple[str, ...] = STYLE_FEATURES
) -> tuple[np.ndarray, np.ndarray]:
    """Usable-battle mask (n_battles,) bool and normalised differences (n_used, k) float.

    A battle is usable when every ``<feature>_a`` / ``<feature>_b`` column is present (not
    NULL/NaN). Differences are ``(f_a - f_b) / (f_a + f_b + 1)``, in (-1, 1), unitless.
    """
    cols = [f"{f}_{side}" for f in features for side in ("a", "b")]
    values = battles[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    keep = ~np.isnan(values).any(axis=1)
    fa, fb = values[keep, 0::2], values[keep, 1::2]
    return keep, (fa - fb) / (fa + fb + 1)


def _resampled_counts(category: np.ndarray, n_cat: int, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap counts (rounds, n_cat): battles redrawn with replacement, counted per category.

    Equivalent to a multinomial draw over the categories with their observed frequencies
    (total fixed), at O(n_battles) per round instead of O(n_categories) binomials.
    """
    n = len(category)
    return np.stack([np.bincount(category[rng.integers(0, n, n)], minlength=n_cat) for _ in range(rounds)])


def style_control(
    battles: pd.DataFrame,
    rounds: int = 100,
    seed: int = 0,
    level: float = 0.95,
    *,
    anchor: str | None = None,
    ties: str = "half",
    scale: float = 400.0,
    base: float = 10.0,
    init_rating: float = 1000.0,
    features: tuple[str, ...] = STYLE_FEATURES,
    tol: float = 1e-10,
    ci: str = "bootstrap",
    reweight: bool = False,
) -> StyleControl:
    """Style-controlled Bradley–Terry leaderboard and style coefficients with bootstrap intervals.

    ``battles``: model_a, model_b, winner and ``<feature>_a``/``<feature>_b`` counts for each of
    ``features``; battles missing any of them are dropped (counted in ``battles_dropped``).
    Parameters as :func:`pipelines.ratings.leaderboard`. Returns:

    - ``leaderboard``: model, rating, lower, upper, rank_ub, battles (as ``leaderboard()``; ratings in
      Elo-like points with style held equal) plus ``rank_change`` = plain rank_ub - controlled
      rank_ub (positive: the model moves up once style is controlled).
    - ``coefficients``: feature, coef (natural log-odds per standard deviation of the normalised
      difference), lower, upper (``level`` percentile bootstrap), battles_nonzero (used battles
      whose two answers differ in the feature). NaN for a feature without variance.
    - ``plain``: ``leaderboard()`` on the same battles, same seed.

    Identical (pair, style, outcome) rows are aggregated; every bootstrap round redraws all used
    battles and all rounds are solved by the batched Newton solver, warm-started at the point fit.
    ``ci`` 'sandwich' / 'auto' give LMArena's CLT intervals for ratings and coefficients instead
    (arena-rank ``ContextualBradleyTerry``; the rank spread then comes from ``rounds`` normal
    draws), ``reweight`` its inverse-frequency pair weights (:mod:`pipelines.sandwich`).
    """
    from pipelines import sandwich

    keep, diffs = style_differences(battles, features)
    used = battles.loc[keep]
    if used.empty:
        raise NotApplicable(
            f"style control needs the answers' style ({', '.join(features)} of both answers): none of "
            f"the {len(battles):,} votes has them (import a file that carries the answer texts)"
        )
    mean, sd = diffs.mean(axis=0), diffs.std(axis=0)
    varies = sd > 0
    z = (diffs[:, varies] - mean[varies]) / sd[varies]

    outcome = winner_codes(used["winner"])
    models, a, b = index_models(used)
    n_used, n = len(used), len(models)
    # unique (a, b, z) rows; counts per (row, outcome)
    row = pd.DataFrame(np.column_stack([a, b, z])).groupby(list(range(2 + z.shape[1])), sort=False).ngroup()
    row = row.to_numpy()
    first = np.unique(row, return_index=True)[1]
    by_pair = np.lexsort((b[first], a[first]))  # rows sorted by (a, b), as the solver wants them
    renumber = np.empty_like(by_pair)
    renumber[by_pair] = np.arange(len(by_pair))
    row = renumber[row]
    first = first[by_pair]
    ua, ub, uz = a[first], b[first], z[first]
    category = row * 3 + outcome
    n_rows = len(first)
    counts = np.bincount(category, minlength=3 * n_rows).reshape(n_rows, 3).astype(np.float64)

    weights = sandwich.inverse_frequency_weights(ua, ub, counts) if reweight else None
    w = np.ones(n_rows) if weights is None else weights
    pair_cells = Cells(ua, ub, counts[:, 0], counts[:, 1], counts[:, 2])
    used_ci, reason = sandwich.choose_ci(ci, "bt", pair_cells, n, ties)
    fit = {"features": uz, "ties": ties, "tol": tol}
    point = fit_pairwise(ua, ub, n, counts * w[:, None], **fit)
    kw = {"scale": scale, "base": base, "init_rating": init_rating, "anchor": anchor}
    played = battles_played(n, ua, ub, counts)
    rated = to_ratings(point[:n], models, **kw)
    k = uz.shape[1]
    if used_ci == "sandwich":
        cov = sandwich.pairwise_covariance(ua, ub, n, counts, point, features=uz, weights=weights, ties=ties)
        _, rating_cov = sandwich.rating_law(point, cov, models, **kw)
        boot_ratings = sandwich.normal_draws(rated, rating_cov, rounds, seed)
        bounds = sandwich.normal_intervals(rated, rating_cov, level)
        coef_bounds = sandwich.normal_intervals(point[n:], cov[n:, n:], level)
    else:
        rng = np.random.default_rng(seed)
        chunk = max(1, CHUNK_ELEMENTS // n_rows)
        draws = []
        for lo in range(0, rounds, chunk):
            boot_counts = _resampled_counts(category, 3 * n_rows, min(chunk, rounds - lo), rng)
            boot_counts = boot_counts.reshape(-1, n_rows, 3) * w[None, :, None]
            draws.append(fit_pairwise(ua, ub, n, boot_counts, start=point, **fit))
        boot = np.concatenate(draws) if draws else np.empty((0, len(point)))
        boot_ratings = to_ratings(boot[:, :n], models, **kw)
        bounds = None
        tail = 100 * (1 - level) / 2
        coef_bounds = (
            tuple(np.percentile(boot[:, n:], [tail, 100 - tail], axis=0)) if len(boot) else (np.nan,) * 2
        )
    controlled = leaderboard_table(models, rated, boot_ratings, played, level, bounds=bounds)
    # each model's rank range and P(#1), from the same rounds (as the plain leaderboard has them)
    controlled = with_rank_spread(controlled, models, boot_ratings, level)
    controlled.attrs.update(ci=used_ci, ci_reason=reason, reweight=bool(reweight))
    plain = leaderboard(
        used,
        rounds,
        seed,
        level,
        ties=ties,
        anchor=anchor,
        scale=scale,
        base=base,
        init_rating=init_rating,
        tol=tol,
        ci=ci,
        reweight=reweight,
    )
    plain_rank = plain.set_index("model")["rank_ub"]
    controlled["rank_change"] = (
        plain_rank.loc[controlled["model"]].to_numpy() - controlled["rank_ub"].to_numpy()
    )

    coef = np.full(len(features), np.nan)
    lower, upper = coef.copy(), coef.copy()
    coef[varies] = point[n:]
    if k:
        lower[varies], upper[varies] = coef_bounds
    # A feature that differs in few battles is barely identified (its bootstrap interval can be
    # very wide or lopsided); the count lets a reader see that.
    nonzero = (diffs != 0).sum(axis=0).astype(np.int64)
    coefficients = pd.DataFrame(
        {"feature": list(features), "coef": coef, "lower": lower, "upper": upper, "battles_nonzero": nonzero}
    )
    coefficients.attrs.update(
        mean=dict(zip(features, mean.tolist(), strict=True)), sd=dict(zip(features, sd.tolist(), strict=True))
    )
    return StyleControl(controlled, coefficients, plain, int(n_used), int(len(battles) - n_used))

"""Bradley–Terry ratings on aggregated battle cells, with multinomial-bootstrap intervals.

FastChat ``rating_systems.py`` style: battles are aggregated once into per-(model_a, model_b) cells of
outcome counts, and every fit runs on those few cells. Ratings are on the Elo-like scale
``scale * beta / ln(base) + init_rating``, so a 400-point gap means 10x odds with the defaults.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit, log_expit

WINNERS = {"model_a": 0, "model_b": 1, "tie": 2, "tie_bothbad": 2}
TIE_WEIGHTS = {"half": 0.5, "drop": 0.0}


class Cells(NamedTuple):
    """Outcome counts per ordered (model_a, model_b) pair that occurs in the battles.

    All arrays have shape (n_cells,); ``a`` and ``b`` index into the sorted model list.
    """

    a: np.ndarray  # int, model_a index
    b: np.ndarray  # int, model_b index
    wins_a: np.ndarray  # float, battles won by model_a
    wins_b: np.ndarray  # float, battles won by model_b
    ties: np.ndarray  # float, ties of either kind ('tie', 'tie_bothbad')

    @property
    def counts(self) -> np.ndarray:
        """Counts stacked as (n_cells, 3): wins_a, wins_b, ties."""
        return np.column_stack([self.wins_a, self.wins_b, self.ties])


def aggregate(battles: pd.DataFrame) -> tuple[list[str], Cells]:
    """Count outcomes per ordered (model_a, model_b) pair.

    ``battles`` needs columns model_a, model_b, winner (one of 'model_a', 'model_b', 'tie',
    'tie_bothbad'). Returns the sorted model names and the cells (one per pair that occurs,
    side kept, so position effects stay visible; counts are additive across subsets).
    """
    bad = ~battles["winner"].isin(list(WINNERS))
    if bad.any():
        raise ValueError(
            f"unknown winner value(s): {sorted(battles.loc[bad, 'winner'].astype(str).unique())}"
        )
    models = sorted(set(battles["model_a"]).union(battles["model_b"]))
    index = pd.Index(models)
    a = index.get_indexer(battles["model_a"])
    b = index.get_indexer(battles["model_b"])
    outcome = battles["winner"].map(WINNERS).to_numpy()
    n = len(models)
    flat = np.bincount((a * n + b) * 3 + outcome, minlength=n * n * 3).reshape(n * n, 3)
    keep = np.flatnonzero(flat.sum(axis=1))
    counts = flat[keep].astype(np.float64)
    return models, Cells(keep // n, keep % n, counts[:, 0], counts[:, 1], counts[:, 2])


def _bt_loss_and_grad(
    beta: np.ndarray, a: np.ndarray, b: np.ndarray, score_a: np.ndarray, score_b: np.ndarray
) -> tuple[float, np.ndarray]:
    """Negative BT log-likelihood (natural log-odds ``beta``, shape (n_models,)) and its gradient.

    ``score_a``/``score_b`` are the (fractional) wins credited to each side per cell. A penalty
    ``0.5 * sum(beta)**2`` pins the free shift to sum-to-zero without touching any difference.
    """
    logit = beta[a] - beta[b]
    loss = -(score_a * log_expit(logit) + score_b * log_expit(-logit)).sum()
    resid = (score_a + score_b) * expit(logit) - score_a  # d loss / d logit
    grad = np.bincount(a, resid, len(beta)) - np.bincount(b, resid, len(beta))
    total = beta.sum()
    return loss + 0.5 * total**2, grad + total


def bradley_terry(
    models: list[str],
    cells: Cells,
    *,
    counts: np.ndarray | None = None,
    ties: str = "half",
    scale: float = 400.0,
    base: float = 10.0,
    init_rating: float = 1000.0,
    anchor: str | None = None,
    tol: float = 1e-10,
) -> np.ndarray:
    """Maximum-likelihood Bradley–Terry ratings, shape (n_models,), Elo-like points.

    ``ties='half'`` credits each side with half a win (FastChat/evalica default); ``'drop'`` ignores
    ties. ``counts`` (n_cells, 3) overrides the cells' own counts (used by the bootstrap). Ratings
    average ``init_rating`` unless ``anchor`` names a model, which then sits at ``init_rating``.
    A model that never loses (or never wins) has no finite MLE; it ends up far out but finite.
    """
    if ties not in TIE_WEIGHTS:
        raise ValueError(f"ties must be one of {sorted(TIE_WEIGHTS)}, got {ties!r}")
    wins_a, wins_b, n_ties = (cells.counts if counts is None else counts).T
    total = max(wins_a.sum() + wins_b.sum() + n_ties.sum(), 1.0)  # normalise for a well-scaled loss
    score_a = (wins_a + TIE_WEIGHTS[ties] * n_ties) / total
    score_b = (wins_b + TIE_WEIGHTS[ties] * n_ties) / total
    result = minimize(
        _bt_loss_and_grad,
        np.zeros(len(models)),
        args=(cells.a, cells.b, score_a, score_b),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 1000, "gtol": tol, "ftol": 1e-15},
    )
    ratings = scale * result.x / math.log(base)
    ratings += init_rating - (ratings.mean() if anchor is None else ratings[models.index(anchor)])
    return ratings


def resample_counts(cells: Cells, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """Multinomial bootstrap of the cell outcome counts, shape (rounds, n_cells, 3).

    Each round redraws all ``N`` battles over the (cell, outcome) categories with probabilities
    equal to their observed frequencies, so every round keeps the total ``N`` fixed.
    """
    flat = cells.counts.ravel()
    n_total = int(flat.sum())
    draws = rng.multinomial(n_total, flat / n_total, size=rounds)
    return draws.reshape(rounds, len(cells.a), 3).astype(np.float64)


def bootstrap(
    models: list[str], cells: Cells, rounds: int = 100, seed: int = 0, **fit_kwargs: object
) -> np.ndarray:
    """Bootstrap ratings, shape (rounds, n_models), Elo-like points.

    Resampling is one vectorised multinomial draw; each round is then a tiny fit on the cells.
    ``fit_kwargs`` go to :func:`bradley_terry` (ties, scale, base, init_rating, anchor).
    """
    draws = resample_counts(cells, rounds, np.random.default_rng(seed))
    return np.stack([bradley_terry(models, cells, counts=c, **fit_kwargs) for c in draws])


def rank_upper_bound(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Rank (upper bound), shape (n_models,): 1 + number of models whose lower bound exceeds this upper."""
    return 1 + (lower[None, :] > upper[:, None]).sum(axis=1)


def leaderboard(
    battles: pd.DataFrame, rounds: int = 100, seed: int = 0, level: float = 0.95, **fit_kwargs: object
) -> pd.DataFrame:
    """Bradley–Terry leaderboard with percentile bootstrap intervals.

    Columns: model, rating (point MLE), lower, upper (``level`` percentile interval over the
    bootstrap rounds), rank_ub (see :func:`rank_upper_bound`), battles (battles the model played).
    Sorted by rating, best first.
    """
    models, cells = aggregate(battles)
    ratings = bradley_terry(models, cells, **fit_kwargs)
    boot = bootstrap(models, cells, rounds=rounds, seed=seed, **fit_kwargs)
    tail = 100 * (1 - level) / 2
    lower, upper = np.percentile(boot, [tail, 100 - tail], axis=0)
    n_cell = cells.counts.sum(axis=1)
    played = np.bincount(cells.a, n_cell, len(models)) + np.bincount(cells.b, n_cell, len(models))
    table = pd.DataFrame(
        {
            "model": models,
            "rating": ratings,
            "lower": lower,
            "upper": upper,
            "rank_ub": rank_upper_bound(lower, upper),
            "battles": played.astype(np.int64),
        }
    )
    return table.sort_values("rating", ascending=False, ignore_index=True)

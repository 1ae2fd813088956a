"""Opponent-adjusted weakness tests for arenas: is a model weaker inside a node than its global
Bradley–Terry rating says, once the opponents it met there are accounted for?"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats


def _pair_counts(counts, n_pairs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense (n_nodes, n_pairs) wins_a, wins_b, ties from NodeCells-style counts
    (n_nodes, 3 * n_pairs), column ``3 * pair + outcome``; sparse or dense."""
    dense = counts.toarray() if hasattr(counts, "toarray") else np.asarray(counts, dtype=float)
    dense = dense.reshape(dense.shape[0], n_pairs, 3)
    return dense[..., 0], dense[..., 1], dense[..., 2]


def opponent_adjusted_tests(
    node_cells,
    ratings: np.ndarray | None = None,
    *,
    scale: float = 400.0,
    base: float = 10.0,
    level: float = 0.95,
    newton_steps: int = 8,
) -> pd.DataFrame:
    """Is a model's strength inside a node below (or above) its global Bradley–Terry rating?

    Model: every battle follows Bradley–Terry with the global log-odds strengths β, plus an
    offset δ for model m in the battles of node v: P(m beats o) = σ(β_m + δ − β_o), ties counting
    half a win (as the ratings do). The test of δ = 0 is Rao's score test at the global fit,
    which *is* the maximum-likelihood fit under δ = 0: U = Σ (y − p) over m's battles in v, with
    variance the efficient information I_δδ − I_δβ I_ββ⁺ I_βδ — so the uncertainty of every
    global rating, including the node's own share of the votes, is accounted for — times the
    Pearson dispersion of the global fit (a tie scored 1/2 varies less than a win or a loss).
    Two-sided calibration under δ = 0 is checked in ``tests/test_weaknesses.py``.

    ``offset`` is the MLE of δ with the opponents held at their global ratings (a few vectorised
    Newton steps; clipped at ±4 log-odds, about ±700 points, when m wins or loses every battle
    of the node), in rating points, with a Wald ``level`` interval from the efficient information.

    Args:
        node_cells: a :class:`pipelines.scores.NodeCells` or anything with ``models`` (sorted
            names, k), ``pairs`` ((n_pairs, 2) model indices a, b), ``node_ids`` ((n_nodes,), root
            first) and ``counts`` ((n_nodes, 3 * n_pairs), sparse or dense, column ``3 * pair +
            outcome``, outcome 0 a won, 1 b won, 2 tie). The root row holds every vote.
        ratings: (k,) global ratings on the Elo-like scale (``scale * beta / ln(base)`` plus any
            constant), the ties-as-half MLE; None fits them on the root row.

    Returns:
        One row per (node, model) with battles: ``node_id``, ``model``, ``n`` (battles),
        ``observed`` (wins, ties half), ``expected`` (under the global ratings), ``offset``,
        ``offset_lower``, ``offset_upper`` (rating points; negative = weaker in the node), ``z``,
        ``p_weak`` and ``p_strong`` (one-sided p-values), ``u`` and ``info`` (the score and its
        information with the opponents fixed, log-odds units; additive over disjoint nodes) and
        ``dispersion``. Memory: dense (n_nodes, k, k) floats — fine up to ~10^3 nodes x 100 models.
    """
    from .. import ratings as rt

    models = list(node_cells.models)
    k = len(models)
    pairs = np.asarray(node_cells.pairs, dtype=np.int64).reshape(-1, 2)
    pa_idx, pb_idx = pairs[:, 0], pairs[:, 1]
    wa, wb, ti = _pair_counts(node_cells.counts, len(pairs))
    unit = math.log(base) / scale  # log-odds per rating point
    if ratings is None:
        root = rt.Cells(pa_idx, pb_idx, wa[0], wb[0], ti[0])
        ratings = rt.bradley_terry(models, root, scale=scale, base=base)
    beta = np.asarray(ratings, dtype=float) * unit
    beta = beta - beta.mean()
    pi = 1.0 / (1.0 + np.exp(-(beta[pa_idx] - beta[pb_idx])))  # (n_pairs,) P(a beats b)
    w = pi * (1.0 - pi)

    # global Fisher information of beta (k, k) and the Pearson dispersion, from the root row
    n_root = wa[0] + wb[0] + ti[0]
    info = np.zeros((k, k))
    np.add.at(info, (pa_idx, pa_idx), n_root * w)
    np.add.at(info, (pb_idx, pb_idx), n_root * w)
    np.add.at(info, (pa_idx, pb_idx), -n_root * w)
    np.add.at(info, (pb_idx, pa_idx), -n_root * w)
    # inv(info + J/k) = pinv(info) + J/k when the comparison graph is connected (info's null space
    # is then the constant vector alone); pinv also takes the null direction of every other
    # group of models that never meets the rest, whose ratings no vote relates
    cov = np.linalg.pinv(info, hermitian=True) + np.ones((k, k)) / k
    pearson = wa[0] * (1 - pi) ** 2 + wb[0] * pi**2 + ti[0] * (0.5 - pi) ** 2
    dispersion = float(pearson.sum() / max((n_root * w).sum(), 1e-12))

    # per (node, model): sides of every pair as "model m against opponent o"
    n = wa + wb + ti  # (n_nodes, n_pairs)
    m_idx = np.concatenate([pa_idx, pb_idx])  # (2 n_pairs,)
    o_idx = np.concatenate([pb_idx, pa_idx])
    y = np.concatenate([wa + 0.5 * ti, wb + 0.5 * ti], axis=1)  # (n_nodes, 2 n_pairs) m's score
    nn = np.concatenate([n, n], axis=1)
    eta = beta[m_idx] - beta[o_idx]  # m's log-odds against o
    pm = 1.0 / (1.0 + np.exp(-eta))

    def per_model(x: np.ndarray) -> np.ndarray:  # (n_nodes, 2 n_pairs) -> (n_nodes, k)
        out = np.zeros((x.shape[0], k))
        np.add.at(out, (slice(None), m_idx), x)
        return out

    battles = per_model(nn)
    observed = per_model(y)
    expected = per_model(nn * pm)
    i_dd = per_model(nn * pm * (1 - pm))
    u = observed - expected
    # cross information I_δβ for (v, m): i_dd e_m - W[v, m, :], W = information m shares with o
    shared = np.zeros((n.shape[0], k, k))
    np.add.at(shared, (slice(None), m_idx, o_idx), nn * pm * (1 - pm))
    cross = -shared
    diag = np.arange(k)
    cross[:, diag, diag] += i_dd
    efficient = i_dd - np.einsum("vmi,ij,vmj->vm", cross, cov, cross, optimize=True)
    # no information left once the global fit is accounted for (e.g. the root, which is the fit)
    efficient = np.where(efficient > 1e-6 * np.maximum(i_dd, 1e-12), efficient, 0.0)
    var = efficient * dispersion
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var > 0, u / np.sqrt(var), 0.0)

    # offset MLE with opponents fixed: Newton on each (node, model) at once
    delta = np.zeros_like(u)
    for _ in range(newton_steps):
        p_d = 1.0 / (1.0 + np.exp(-(eta[None, :] + delta[:, m_idx])))
        grad = per_model(y - nn * p_d)
        hess = per_model(nn * p_d * (1 - p_d))
        step = np.where(hess > 1e-12, grad / np.maximum(hess, 1e-12), 0.0)
        delta = np.clip(delta + np.clip(step, -2.0, 2.0), -4.0, 4.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.where(efficient > 0, np.sqrt(dispersion / efficient), np.inf)
    half = stats.norm.isf((1 - level) / 2) * se
    v_row, m_col = np.nonzero(battles > 0)
    pick = (v_row, m_col)
    return pd.DataFrame(
        {
            "node_id": np.asarray(node_cells.node_ids)[v_row],
            "model": np.asarray(models, dtype=object)[m_col],
            "n": battles[pick],
            "observed": observed[pick],
            "expected": expected[pick],
            "offset": delta[pick] / unit,
            "offset_lower": (delta[pick] - half[pick]) / unit,
            "offset_upper": (delta[pick] + half[pick]) / unit,
            "z": z[pick],
            "p_weak": stats.norm.cdf(z[pick]),
            "p_strong": stats.norm.sf(z[pick]),
            "u": u[pick],
            "info": i_dd[pick],
        }
    ).assign(dispersion=dispersion)

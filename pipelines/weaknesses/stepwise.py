"""Opponent-adjusted weaknesses of one model over tree nodes *and* prompt facets, chosen by forward
selection after Benjamini–Hochberg screening.

Model (log-odds; ties count half a win, as in the ratings): a vote between model m and opponent
o on prompt p follows P(m beats o) = σ(β_m − β_o + α + Σ_g δ_g [p ∈ g]), with β the global
Bradley–Terry strengths (held fixed), α a shift of m's own level and δ_g an offset of m on the
prompts of candidate group g — a tree node (its whole subtree) or a facet of :mod:`.facets`
(a language, a category). At α = δ = 0 this is the global fit, where m's score equation already
holds, so α starts at 0.

1. **Screen.** Every candidate gets Rao's score test of δ_g = 0 given α (so a model's lower
   level overall is not mistaken for a weakness everywhere): U_g = Σ_{votes in g}(y − p),
   information I_gg − I_gα² / I_αα times the Pearson dispersion of the global fit (a tie scored
   1/2 varies less than a win). Two-sided p-values are Benjamini–Hochberg adjusted over every
   candidate tested: the discoveries at level q control the false-discovery rate.
2. **Select.** Nested nodes, overlapping facets and a node that is mostly one language all
   light up for one weakness. Forward selection keeps the discovery that explains most (the
   smallest score-test p-value given what is already in the model), refits α and the chosen
   offsets jointly (Newton), re-tests the remaining discoveries conditionally, and stops when
   none passes Bonferroni at q over the discoveries left. What is chosen is a small set of groups
   that jointly account for the model's departures from its global rating.

The offsets of the final joint fit are reported in rating points with Wald intervals from the
dispersion-scaled information. The planted-weakness recovery of this procedure on simulated
arenas is measured by ``bench/bench_weakness_validity.py`` (arena part).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse, stats

from ..stats import bh_adjust

POINTS_PER_LOGIT = 400.0 / math.log(10.0)
MAX_STEPS = 12  # groups a profile may hold
MIN_BATTLES = 10  # a candidate needs this many of the model's votes to be tested
MIN_OFFSET = 50.0  # rating points (~7% win probability between equals): smaller offsets are not reported


@dataclass(frozen=True)
class Candidates:
    """Candidate groups over a dataset's prompts.

    ``keys`` (n_groups,): 'node:<id>' or a facet key ('language:Chinese', 'category:coding');
    ``kinds``: 'node' | 'language' | 'category'; ``descriptions``: the group in words;
    ``node_ids``: the tree node id, -1 for facets; ``sizes``: prompts in the group;
    ``membership``: csr (n_prompts + 1, n_groups) 0/1 — the last row stands for votes whose
    prompt is unknown or outside the tree, in no group; ``prompt_ids`` (n_prompts,) the rows' prompts.
    """

    keys: list[str]
    kinds: list[str]
    descriptions: list[str]
    node_ids: np.ndarray
    sizes: np.ndarray
    membership: sparse.csr_matrix
    prompt_ids: list[str]


@dataclass(frozen=True)
class Votes:
    """The votes, all arrays (n_votes,): ``prompt`` row in :class:`Candidates` membership, ``a``
    and ``b`` model indices into ``models``, ``score_a`` 1 / 0.5 / 0 (A won / tie / B won)."""

    models: list[str]
    prompt: np.ndarray
    a: np.ndarray
    b: np.ndarray
    score_a: np.ndarray


def global_strengths(votes: Votes) -> tuple[np.ndarray, float]:
    """(β, φ): Bradley–Terry log-odds strengths (k,) with ties as half (mean 0), and the Pearson
    dispersion of that fit over every vote (1 for wins and losses only, below 1 with ties)."""
    from .. import ratings as rt

    k = len(votes.models)
    code = votes.a.astype(np.int64) * k + votes.b
    pair_codes, pair = np.unique(code, return_inverse=True)
    counts = np.zeros((len(pair_codes), 3))
    outcome = np.where(votes.score_a == 1.0, 0, np.where(votes.score_a == 0.0, 1, 2))
    np.add.at(counts, (pair, outcome), 1.0)
    cells = rt.Cells(pair_codes // k, pair_codes % k, counts[:, 0], counts[:, 1], counts[:, 2])
    beta = rt.bradley_terry(votes.models, cells) / POINTS_PER_LOGIT
    beta = beta - beta.mean()
    p = 1.0 / (1.0 + np.exp(-(beta[votes.a] - beta[votes.b])))
    w = p * (1.0 - p)
    phi = float(np.sum((votes.score_a - p) ** 2) / max(np.sum(w), 1e-12))
    return beta, phi


def _design(membership: sparse.csr_matrix, chosen: list[int]) -> np.ndarray:
    """(n_prompts + 1, 1 + len(chosen)) dense: the intercept and the chosen groups' columns."""
    cols = [np.ones(membership.shape[0])]
    cols += [membership[:, [g]].toarray().ravel() for g in chosen]
    return np.column_stack(cols)


def _fit(prompt, eta0, y, X, theta, steps: int = 25) -> np.ndarray:
    """Newton for θ (n_params,) in P(win) = σ(eta0 + X[prompt] θ); X rows per prompt."""
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(eta0 + X[prompt] @ theta)))
        n_rows = X.shape[0]
        r = np.bincount(prompt, y - p, minlength=n_rows)
        w = np.bincount(prompt, p * (1 - p), minlength=n_rows)
        grad = X.T @ r
        hess = X.T @ (w[:, None] * X)
        step = np.linalg.lstsq(hess + 1e-9 * np.eye(len(theta)), grad, rcond=None)[0]
        step = np.clip(step, -2.0, 2.0)
        theta = np.clip(theta + step, -6.0, 6.0)
        if np.max(np.abs(step)) < 1e-8:
            break
    return theta


def _score_tests(prompt, eta0, y, X, theta, membership, phi) -> tuple[np.ndarray, ...]:
    """(z, efficient information, battles, one-step offset in log-odds) per candidate, given the
    fitted θ on design X."""
    n_rows = X.shape[0]
    p = 1.0 / (1.0 + np.exp(-(eta0 + X[prompt] @ theta)))
    r = np.bincount(prompt, y - p, minlength=n_rows)
    w = np.bincount(prompt, p * (1 - p), minlength=n_rows)
    played = np.bincount(prompt, minlength=n_rows).astype(float)
    mt = membership.T.tocsr()
    u = mt @ r
    i_gg = mt @ w
    i_gs = mt @ (w[:, None] * X)  # (n_groups, n_params)
    i_ss = X.T @ (w[:, None] * X)
    solved = np.linalg.lstsq(i_ss + 1e-9 * np.eye(len(theta)), i_gs.T, rcond=None)[0]  # (n_params, G)
    eff = i_gg - np.einsum("gs,sg->g", i_gs, solved)
    eff = np.where(eff > 1e-6 * np.maximum(i_gg, 1e-12), eff, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(eff > 0, u / np.sqrt(phi * eff), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.where(eff > 0, u / eff, 0.0)  # one Newton step from 0: the offset's first estimate
    return z, eff, mt @ played, step


def model_weaknesses(
    votes: Votes,
    candidates: Candidates,
    model: str,
    *,
    beta: np.ndarray | None = None,
    phi: float | None = None,
    adjust: np.ndarray | None = None,
    q: float = 0.05,
    max_steps: int = MAX_STEPS,
    min_battles: int = MIN_BATTLES,
    min_offset: float = MIN_OFFSET,
    fdr: bool = True,
    level: float = 0.95,
) -> pd.DataFrame:
    """Screen and select (module docstring) the groups where ``model`` departs from its global
    rating. ``adjust`` (k, n_prompts + 1), log-odds: each model's fitted departure from its global
    strength on each prompt row (:func:`arena_weaknesses` iterates it), subtracted from the
    opponents' side; None holds the opponents at their global strengths.

    Returns one row per candidate with at least ``min_battles`` of the model's votes: key, kind,
    node_id (-1 for facets), description, size (prompts), battles, observed (wins, ties half),
    expected (under the global ratings, opponents adjusted by ``adjust``), z, p (two-sided,
    marginal given α), p_adj (BH over the rows; = p without ``fdr``), discovery (p_adj <= q),
    step (1, 2, ... in the order chosen; 0 if not chosen), p_step (the conditional p-value it
    entered with), and for chosen rows offset, offset_lower, offset_upper (rating points, joint
    fit; negative = weaker), NaN elsewhere. Offsets under ``min_offset`` points are neither
    chosen nor kept. Sorted by step (chosen first), then p.
    """
    if model not in votes.models:
        raise ValueError(f"unknown model {model!r}")
    if beta is None or phi is None:
        beta, phi = global_strengths(votes)
    m = votes.models.index(model)
    on_a, on_b = votes.a == m, votes.b == m
    mine = on_a | on_b
    prompt = votes.prompt[mine]
    opp = np.where(on_a, votes.b, votes.a)[mine]
    y = np.where(on_a, votes.score_a, 1.0 - votes.score_a)[mine]
    eta0 = beta[m] - beta[opp]
    if adjust is not None:  # the opponents' own fitted departures on each prompt
        eta0 = eta0 - adjust[opp, prompt]
    membership = candidates.membership
    X = _design(membership, [])
    theta = _fit(prompt, eta0, y, X, np.zeros(1))
    z, eff, played, _ = _score_tests(prompt, eta0, y, X, theta, membership, phi)
    observed = membership.T @ np.bincount(prompt, y, minlength=membership.shape[0])
    p_base = 1.0 / (1.0 + np.exp(-eta0))
    expected = membership.T @ np.bincount(prompt, p_base, minlength=membership.shape[0])
    tested = (played >= min_battles) & (eff > 0)
    p = np.where(tested, 2 * stats.norm.sf(np.abs(z)), np.nan)
    p_adj = np.full(len(p), np.nan)
    if tested.any():
        p_adj[tested] = bh_adjust(p[tested]) if fdr else p[tested]
    found = list(np.flatnonzero(tested & (p_adj <= q)))
    chosen: list[int] = []
    p_step = np.full(len(p), np.nan)
    floor = min_offset / POINTS_PER_LOGIT

    def refit(groups: list[int]) -> tuple[np.ndarray, np.ndarray]:
        X = _design(membership, groups)
        start = np.zeros(X.shape[1])
        start[: min(len(theta), len(start))] = theta[: len(start)]
        return X, _fit(prompt, eta0, y, X, start)

    while found and len(chosen) < max_steps:
        X, theta = refit(chosen)
        zc, effc, _, first = _score_tests(prompt, eta0, y, X, theta, membership, phi)
        left = np.array([g for g in found if effc[g] > 0 and abs(first[g]) >= floor], dtype=np.int64)
        if not len(left):
            break
        pc = 2 * stats.norm.sf(np.abs(zc[left]))
        best = int(np.argmin(pc))
        if pc[best] > q / len(left):
            break
        g = int(left[best])
        chosen.append(g)
        p_step[g] = pc[best]
        found.remove(g)
    offset = np.full((len(p), 3), np.nan)
    while chosen:  # backward: drop what the others now explain (small or no longer significant)
        X, theta = refit(chosen)
        pr = 1.0 / (1.0 + np.exp(-(eta0 + X[prompt] @ theta)))
        w = np.bincount(prompt, pr * (1 - pr), minlength=X.shape[0])
        cov = phi * np.linalg.pinv(X.T @ (w[:, None] * X))
        se = np.sqrt(np.maximum(np.diag(cov)[1:], 1e-300))
        est = theta[1:]
        wald = 2 * stats.norm.sf(np.abs(est) / se)
        weakest = int(np.argmax(np.where(np.abs(est) < floor, np.inf, wald)))
        if abs(est[weakest]) >= floor and wald[weakest] <= q / len(chosen):
            half = stats.norm.isf((1 - level) / 2) * se
            offset[chosen] = np.column_stack([est, est - half, est + half]) * POINTS_PER_LOGIT
            break
        p_step[chosen[weakest]] = np.nan
        del chosen[weakest]
    step = np.zeros(len(p), dtype=np.int64)
    step[chosen] = np.arange(1, len(chosen) + 1)
    out = pd.DataFrame(
        {
            "key": candidates.keys,
            "kind": candidates.kinds,
            "node_id": candidates.node_ids,
            "description": candidates.descriptions,
            "size": candidates.sizes,
            "battles": played.astype(np.int64),
            "observed": observed,
            "expected": expected,
            "z": z,
            "p": p,
            "p_adj": p_adj,
            "discovery": tested & (np.nan_to_num(p_adj, nan=1.0) <= q),
            "step": step,
            "p_step": p_step,
            "offset": offset[:, 0],
            "offset_lower": offset[:, 1],
            "offset_upper": offset[:, 2],
        }
    )[tested]
    order = np.where(out["step"] > 0, out["step"], np.iinfo(np.int64).max)
    X, theta = refit(chosen)
    own = X @ theta
    result = out.assign(_o=order).sort_values(["_o", "p", "key"]).drop(columns="_o").reset_index(drop=True)
    result.attrs["adjust"] = own  # (n_prompts + 1,) this model's fitted departure, log-odds
    return result


def arena_weaknesses(
    votes: Votes, candidates: Candidates, *, rounds: int = 3, **options
) -> dict[str, pd.DataFrame]:
    """:func:`model_weaknesses` of every model, with the opponents' departures taken into account.

    A model that meets opponents who are themselves weak on coding looks strong on coding when
    the opponents are held at their global ratings. So the fits alternate (backfitting): round 1
    holds every opponent at its global strength; each later round gives every opponent the
    departures (level shift and chosen offsets) fitted for it in the round before. ``rounds``
    (>= 1) such passes; ``options`` go to :func:`model_weaknesses`. Returns {model: table}.
    """
    beta, phi = global_strengths(votes)
    n_rows = candidates.membership.shape[0]
    adjust = np.zeros((len(votes.models), n_rows))
    out: dict[str, pd.DataFrame] = {}
    for _ in range(max(1, rounds)):
        new = np.zeros_like(adjust)
        for m, model in enumerate(votes.models):
            out[model] = model_weaknesses(
                votes, candidates, model, beta=beta, phi=phi, adjust=adjust, **options
            )
            new[m] = out[model].attrs["adjust"]
        adjust = new
    return out


def chosen_prompts(candidates: Candidates, table: pd.DataFrame, direction: str = "weak") -> np.ndarray:
    """(n_prompts,) bool: the prompts in any chosen group of ``table`` (:func:`model_weaknesses`)
    whose offset is negative (``'weak'``) or positive (``'strong'``)."""
    sign = table["offset"] < 0 if direction == "weak" else table["offset"] > 0
    keys = table.loc[(table["step"] > 0) & sign, "key"]
    cols = pd.Index(candidates.keys).get_indexer(keys)
    if not len(cols):
        return np.zeros(candidates.membership.shape[0] - 1, dtype=bool)
    hit = np.asarray(candidates.membership[:, cols].sum(axis=1)).ravel() > 0
    return hit[:-1]


def load_groups(con, dataset: str, tree_id: str | None, filters=None) -> tuple[Votes, Candidates]:
    """The votes of ``dataset`` passing ``filters`` and the candidate groups over its prompts: every
    non-root node of ``tree_id`` (None: facets only) and every facet of :func:`.facets.prompt_facets`.
    Raises ArenatreeError (via the battle query) for a dataset without votes."""
    from ..battles import NO_FILTERS, checked_battles_query
    from ..errors import ArenatreeError
    from ..scores import ancestor_matrix, tree_shape
    from ..tree.read import tree_nodes
    from .facets import prompt_facets

    filters = NO_FILTERS if filters is None else filters
    sql, params = checked_battles_query(
        con, dataset, filters, ("prompt_id", "model_a", "model_b", "winner"), False
    )
    raw = con.execute(f"SELECT * FROM ({sql}) ORDER BY prompt_id, model_a, model_b, winner", params).df()  # noqa: S608
    if raw.empty:
        raise ArenatreeError(f"no votes of dataset {dataset!r} pass the filters {filters.key()}")
    prompts = con.execute(
        """
        SELECT p.prompt_id, p.text, coalesce(p.language, l.language) AS language,
               coalesce(p.turns, l.turns) AS turns
        FROM prompts p
        LEFT JOIN (SELECT prompt_id, mode(language) AS language, max(turns) AS turns FROM battles
                   WHERE dataset = ? GROUP BY prompt_id) l USING (prompt_id)
        WHERE p.dataset = ? ORDER BY p.prompt_id
        """,
        [dataset, dataset],
    ).df()
    n_p = len(prompts)
    pid = pd.Index(prompts["prompt_id"])
    prow = pid.get_indexer(raw["prompt_id"])
    prow = np.where(prow < 0, n_p, prow)
    models = sorted(set(raw["model_a"]).union(raw["model_b"]))
    mi = pd.Index(models)
    score = raw["winner"].map({"model_a": 1.0, "model_b": 0.0}).fillna(0.5).to_numpy(float)
    votes = Votes(
        models, prow.astype(np.int64), mi.get_indexer(raw["model_a"]), mi.get_indexer(raw["model_b"]), score
    )

    blocks, keys, kinds, words, node_col = [], [], [], [], []
    if tree_id is not None:
        node_ids, parent_rows = tree_shape(con, tree_id)
        info = tree_nodes(con, tree_id).set_index("node_id")
        members = con.execute("SELECT prompt_id, node_id FROM node_members WHERE tree_id = ?", [tree_id]).df()
        rows = pid.get_indexer(members["prompt_id"])
        cols = pd.Index(node_ids).get_indexer(members["node_id"])
        ok = (rows >= 0) & (cols >= 0)
        leaf = sparse.csr_matrix(
            (np.ones(int(ok.sum())), (rows[ok], cols[ok])), shape=(n_p + 1, len(node_ids))
        )
        under = (leaf @ ancestor_matrix(parent_rows).T).tocsc()[:, 1:]  # every node but the root
        under.data[:] = 1.0
        blocks.append(under)
        for nid in node_ids[1:]:
            keys.append(f"node:{int(nid)}")
            kinds.append("node")
            words.append(str(info.at[nid, "description"]))
            node_col.append(int(nid))
    facets = prompt_facets(prompts["text"].tolist(), prompts["language"].tolist(), prompts["turns"].tolist())
    if facets.keys:
        blocks.append(sparse.csc_matrix(np.vstack([facets.masks.T, np.zeros((1, len(facets.keys)))])))
        keys += facets.keys
        kinds += [k.split(":", 1)[0] for k in facets.keys]
        words += facets.descriptions
        node_col += [-1] * len(facets.keys)
    membership = sparse.hstack(blocks, format="csr") if blocks else sparse.csr_matrix((n_p + 1, 0))
    sizes = np.asarray(membership.sum(axis=0)).ravel().astype(np.int64)
    node_col = np.asarray(node_col, dtype=np.int64)
    ids = prompts["prompt_id"].tolist()
    return votes, Candidates(keys, kinds, words, node_col, sizes, membership, ids)

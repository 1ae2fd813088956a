"""Model vs model, per node: every node of a capability tree where two models differ significantly.

For models A and B and a tree (None: the dataset's newest tree, or the whole dataset as one node
when it has none), every node gets one comparison row (:func:`compare_models`):

**Votes** (pairwise datasets). The primary test is a *paired, opponent-adjusted* one: the node's
own Bradley–Terry fit (ties half) on every vote in the node, over the models strongly connected
by wins to A and B there (a tie links both ways; only then is the rating difference finite,
Ford 1957). Each model's strength is thus estimated from its battles against *all* opponents in
the node, and A and B are compared on the same scale: shared opponents cancel out, head-to-head
votes count directly. ``diff`` is β_A − β_B in rating points (400 points = 10x odds) and the
p-value is the two-sided Wald test of β_A = β_B with variance cᵀI⁺c·φ: I⁺ the pseudo-inverse of
the node fit's Fisher information (c = e_A − e_B is orthogonal to its null space, the common
shift, so cᵀI⁺c is the variance of the estimable difference) and φ the Pearson dispersion of the
root fit (a tie scored 1/2 varies less than a win or a loss, so φ <= 1 without over-dispersion).
It is valid by the usual asymptotics of the maximum-likelihood fit on the node's own votes; its
calibration on nodes with as few as :data:`MIN_BATTLES` votes per model is checked on simulated
arenas in ``tests/test_compare.py``. Beside it, the **head-to-head** record: A's wins, B's wins
and ties in the votes where A met B in the node, with the exact two-sided sign test (binomial,
p = 1/2) on the decisive votes (ties reported, not tested) — exact, but it only sees the pair's
own votes.

**Per-instance results** (e.g. MATH). Items answered by both models are paired: ``diff`` is
the mean paired score difference (accuracy difference for 0/1 data) and the p-value the exact
two-sided sign test on the items where the scores differ — for 0/1 scores exactly McNemar's
exact test on the discordant items (b = A right and B wrong, c = the reverse: binomial(b, b + c,
1/2)). The interval is Agresti–Min's adjusted Wald interval for a paired difference of
proportions (0/1 data) or the t interval of the paired differences (other scores).

**Multiplicity and nesting.** Benjamini–Hochberg runs over every node tested (the primary test;
the head-to-head p-values get their own BH column), so ``significant`` (q <= ``q``) controls the
false discovery rate over the whole tree. Nested nodes share data, so the tests are positively
dependent, the case BH covers (Benjamini & Yekutieli 2001, PRDS). ``topmost`` marks the
significant nodes without a significant ancestor: the shortest list of where the models differ;
every significant node is still listed. A node too small to test has NaN numbers and a
``reason`` instead.

:func:`node_examples` returns the prompts behind one node's comparison with both models'
answers (from the ``responses`` table) side by side — raw, untrusted text: render it escaped.
"""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pandas as pd
from scipy import sparse, stats
from scipy.sparse.csgraph import connected_components

from . import ratings
from .battles import NO_FILTERS, Filters, checked_battles_query, dataset_kind
from .errors import ArenatreeError
from .queries import records
from .scores import NodeCells, ancestor_matrix, node_cells, tree_shape
from .stats import bh_adjust
from .store import one
from .tree.read import resolve_tree, tree_nodes
from .weaknesses.profiles import ancestor_any, tree_index

MIN_BATTLES = 10  # votes each model needs in a node before its rating difference is tested
MIN_ITEMS = 5  # items both models answered a node needs before the paired test (EvalTree's 5)
POINTS = 400.0 / math.log(10.0)  # rating points per natural log-odds
NODE_FIELDS = ["node_id", "parent_id", "depth", "description", "size"]
RESULT_FIELDS = ["diff", "diff_lower", "diff_upper", "p", "q", "significant", "topmost", "favours", "reason"]
PAIRWISE_COLUMNS = [
    *NODE_FIELDS, "n", "n_a", "n_b", "win_rate_a", "win_rate_b", "score_a", "score_b", *RESULT_FIELDS,
    "h2h", "h2h_a_wins", "h2h_b_wins", "h2h_ties", "h2h_p", "h2h_q",
]  # fmt: skip
INSTANCE_COLUMNS = [
    *NODE_FIELDS, "n", "n_a", "n_b", "score_a", "score_b", *RESULT_FIELDS, "a_better", "b_better",
]  # fmt: skip


# --------------------------------------------------------------------------- tests


def sign_test(k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Exact two-sided sign test (binomial, p = 1/2) of ``k`` successes in ``n`` trials, elementwise:
    ``min(1, 2 P(X <= min(k, n - k)))`` — what ``scipy.stats.binomtest(k, n).pvalue`` gives, as the
    null is symmetric. NaN where ``n == 0``."""
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        p = np.minimum(1.0, 2.0 * stats.binom.cdf(np.minimum(k, n - k), n, 0.5))
    return np.where(n > 0, p, np.nan)


def paired_interval(
    b: np.ndarray, c: np.ndarray, n: np.ndarray, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Agresti–Min (2005) interval for a paired difference of proportions (b - c) / n: the Wald
    interval after adding 1/2 to each of the four cells. ``b``, ``c``: discordant counts, ``n``:
    pairs (arrays of one shape). Returns (lower, upper) in [-1, 1], NaN where ``n == 0``."""
    b, c, n = (np.asarray(x, dtype=np.float64) + d for x, d in ((b, 0.5), (c, 0.5), (n, 2.0)))
    z = stats.norm.isf((1 - level) / 2)
    d = (b - c) / n
    se = np.sqrt(np.maximum((b + c) - (b - c) ** 2 / n, 0.0)) / n
    ok = n > 2
    return np.where(ok, np.clip(d - z * se, -1, 1), np.nan), np.where(ok, np.clip(d + z * se, -1, 1), np.nan)


def _linked(k: int, cells: ratings.Cells) -> np.ndarray:
    """Strong-component label of each of ``k`` models in the win graph of ``cells`` (a tie links
    both ways): models with the same label have a finite Bradley–Terry difference."""
    credit_a = cells.wins_a + cells.ties > 0
    credit_b = cells.wins_b + cells.ties > 0
    graph = sparse.csr_matrix(
        (np.ones(credit_a.sum() + credit_b.sum()),
         (np.concatenate([cells.a[credit_a], cells.b[credit_b]]),
          np.concatenate([cells.b[credit_a], cells.a[credit_b]]))),
        shape=(k, k),
    )  # fmt: skip
    return connected_components(graph, directed=True, connection="strong")[1]


def rating_difference(k: int, cells: ratings.Cells, a: int, b: int) -> dict:
    """Bradley–Terry (ties half) fit of one node's ``cells`` over ``k`` models, restricted to the
    models strongly linked to ``a`` and ``b``: ``beta_a``, ``beta_b`` (natural log-strengths, mean
    0 over the fitted models), ``var`` (cᵀI⁺c of β_a − β_b, before dispersion), ``pearson`` and
    ``weight`` (the fit's Pearson sum and Σ n p(1-p), for the dispersion), or ``{"reason": ...}``
    when a and b are not linked both ways by wins."""
    label = _linked(k, cells)
    if label[a] != label[b]:
        return {"reason": "not linked both ways by wins here: no finite rating difference"}
    keep = np.flatnonzero(label == label[a])
    inside = np.isin(cells.a, keep) & np.isin(cells.b, keep)
    ia, ib = np.searchsorted(keep, cells.a[inside]), np.searchsorted(keep, cells.b[inside])
    wa, wb, ti = cells.wins_a[inside], cells.wins_b[inside], cells.ties[inside]
    beta = ratings.fit_pairwise(ia, ib, len(keep), np.column_stack([wa, wb, ti]))[: len(keep)]
    pi = 1.0 / (1.0 + np.exp(-(beta[ia] - beta[ib])))
    w = (wa + wb + ti) * pi * (1 - pi)
    info = np.zeros((len(keep), len(keep)))
    np.add.at(info, (ia, ia), w)
    np.add.at(info, (ib, ib), w)
    np.add.at(info, (ia, ib), -w)
    np.add.at(info, (ib, ia), -w)
    at_a, at_b = np.searchsorted(keep, a), np.searchsorted(keep, b)
    c = np.zeros(len(keep))
    c[at_a], c[at_b] = 1.0, -1.0
    cov = np.linalg.pinv(info, hermitian=True)
    pearson = wa * (1 - pi) ** 2 + wb * pi**2 + ti * (0.5 - pi) ** 2
    return {
        "beta_a": float(beta[at_a]),
        "beta_b": float(beta[at_b]),
        "var": float(c @ cov @ c),
        "pearson": float(pearson.sum()),
        "weight": float(w.sum()),
    }


# --------------------------------------------------------------------------- per kind


def _reason_counts(n_a: float, n_b: float, least: int, what: str) -> str:
    if n_a == 0 and n_b == 0:
        return f"neither model has {what} here"
    if n_a == 0 or n_b == 0:
        return f"model {'A' if n_a == 0 else 'B'} has no {what} here"
    return f"too few {what} (A {int(n_a)}, B {int(n_b)}; a test needs {least} each)"


def pairwise_table(cells: NodeCells, model_a: str, model_b: str, level: float = 0.95) -> pd.DataFrame:
    """Per node of ``cells`` (rows in ``cells.node_ids`` order): node_id, n (votes with A or B),
    n_a, n_b, win_rate_a, win_rate_b (ties half, against everyone), score_a, score_b (node
    Bradley–Terry ratings, points; mean 1000 over the node's fitted models), diff (A − B, points)
    with its ``level`` Wald interval, p (two-sided Wald), reason (why untested, else ''), and the
    head-to-head columns h2h, h2h_a_wins, h2h_b_wins, h2h_ties, h2h_p (exact sign test)."""
    a, b = cells.models.index(model_a), cells.models.index(model_b)
    k = len(cells.models)
    played, wins, _ = cells.model_totals()
    pair_a = np.flatnonzero((cells.pairs[:, 0] == a) & (cells.pairs[:, 1] == b))
    pair_b = np.flatnonzero((cells.pairs[:, 0] == b) & (cells.pairs[:, 1] == a))
    cols = [3 * p + o for p in (*pair_a, *pair_b) for o in range(3)]
    h2h = np.asarray(cells.counts[:, cols].todense()).reshape(len(cells.node_ids), -1, 3)
    sides = np.array([0] * len(pair_a) + [1] * len(pair_b))
    a_wins = (h2h[:, sides == 0, 0].sum(axis=1) + h2h[:, sides == 1, 1].sum(axis=1)) if len(sides) else 0.0
    b_wins = (h2h[:, sides == 0, 1].sum(axis=1) + h2h[:, sides == 1, 0].sum(axis=1)) if len(sides) else 0.0
    h2h_ties = h2h[:, :, 2].sum(axis=1) if len(sides) else 0.0
    n_nodes = len(cells.node_ids)
    a_wins, b_wins, h2h_ties = (np.broadcast_to(x, n_nodes).astype(float) for x in (a_wins, b_wins, h2h_ties))
    h2h_n = a_wins + b_wins + h2h_ties

    n_a, n_b = played[:, a], played[:, b]
    fits: list[dict] = []
    for row, node_id in enumerate(cells.node_ids):
        if min(n_a[row], n_b[row]) < MIN_BATTLES:
            fits.append({"reason": _reason_counts(n_a[row], n_b[row], MIN_BATTLES, "votes")})
            continue
        fits.append(rating_difference(k, cells.cells(int(node_id), local=False)[1], a, b))
    root = fits[0]
    phi = root["pearson"] / root["weight"] if root.get("weight", 0) > 0 else 1.0
    z = stats.norm.isf((1 - level) / 2)
    beta_a = np.array([f.get("beta_a", np.nan) for f in fits])
    beta_b = np.array([f.get("beta_b", np.nan) for f in fits])
    se = np.sqrt(np.array([f.get("var", np.nan) for f in fits]) * phi)
    diff = beta_a - beta_b
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(se > 0, 2 * stats.norm.sf(np.abs(diff) / se), np.nan)
    flat = "no spread in the votes (every vote a tie): nothing to test"
    reasons = [f.get("reason", "") or ("" if s > 0 else flat) for f, s in zip(fits, se, strict=True)]
    beta_a, beta_b, se = (np.where(np.isnan(p), np.nan, x) for x in (beta_a, beta_b, se))
    diff = beta_a - beta_b
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame(
            {
                "node_id": cells.node_ids,
                "n": (n_a + n_b - h2h_n).astype(np.int64),
                "n_a": n_a.astype(np.int64),
                "n_b": n_b.astype(np.int64),
                "win_rate_a": wins[:, a] / n_a,
                "win_rate_b": wins[:, b] / n_b,
                "score_a": 1000 + POINTS * beta_a,
                "score_b": 1000 + POINTS * beta_b,
                "diff": POINTS * diff,
                "diff_lower": POINTS * (diff - z * se),
                "diff_upper": POINTS * (diff + z * se),
                "p": p,
                "reason": reasons,
                "h2h": h2h_n.astype(np.int64),
                "h2h_a_wins": a_wins.astype(np.int64),
                "h2h_b_wins": b_wins.astype(np.int64),
                "h2h_ties": h2h_ties.astype(np.int64),
                "h2h_p": sign_test(a_wins, a_wins + b_wins),
            }
        ).assign(dispersion=phi)


def paired_results(
    con: duckdb.DuckDBPyConnection, dataset: str, tree_id: str | None, model_a: str, model_b: str
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Per node (rows in tree preorder; one row without a tree) the paired sums of the items under
    it: (node_ids, sums (n_nodes, 8): paired items, Σa, Σb, items A better, items B better, Σd²,
    A's items, B's items), and whether every score of the two models is 0 or 1. Items whose
    prompt is not in the tree count at the root only."""
    node_ids, parent_rows = tree_shape(con, tree_id)
    rows = con.execute(
        """
        WITH mine AS (
            SELECT instance_id, prompt_id, max(score) FILTER (WHERE model = ?) AS sa,
                   max(score) FILTER (WHERE model = ?) AS sb
            FROM results WHERE dataset = ? AND model IN (?, ?) GROUP BY instance_id, prompt_id
        )
        SELECT coalesce(m.node_id, -1) AS member,
               count(*) FILTER (WHERE sa IS NOT NULL AND sb IS NOT NULL) AS paired,
               coalesce(sum(sa) FILTER (WHERE sb IS NOT NULL), 0) AS sum_a,
               coalesce(sum(sb) FILTER (WHERE sa IS NOT NULL), 0) AS sum_b,
               count(*) FILTER (WHERE sa > sb) AS a_better,
               count(*) FILTER (WHERE sa < sb) AS b_better,
               coalesce(sum((sa - sb) * (sa - sb)), 0) AS sum_d2,
               count(sa) AS items_a, count(sb) AS items_b,
               bool_and(coalesce(sa IN (0, 1), true) AND coalesce(sb IN (0, 1), true)) AS binary
        FROM mine LEFT JOIN node_members m ON m.tree_id = ? AND m.prompt_id = mine.prompt_id
        GROUP BY ALL ORDER BY member
        """,
        [model_a, model_b, dataset, model_a, model_b, tree_id],
    ).df()
    member = rows["member"].to_numpy(np.int64)
    at = np.where(member < 0, len(node_ids), pd.Index(node_ids).get_indexer(member))
    if (at < 0).any():
        raise ArenatreeError(f"tree {tree_id!r}: node_members names a node that is not in the tree")
    cols = ["paired", "sum_a", "sum_b", "a_better", "b_better", "sum_d2", "items_a", "items_b"]
    base = np.zeros((len(node_ids) + 1, len(cols)))
    np.add.at(base, at, rows[cols].to_numpy(np.float64))
    outside = sparse.csr_matrix((np.ones(1), ([0], [0])), shape=(len(node_ids), 1))
    up = sparse.hstack([ancestor_matrix(parent_rows), outside], format="csr")
    return node_ids, np.asarray(up @ base), bool(rows["binary"].fillna(True).all())


def instance_table(node_ids: np.ndarray, sums: np.ndarray, binary: bool, level: float = 0.95) -> pd.DataFrame:
    """Per node: n (paired items), n_a, n_b (items each answered), score_a, score_b (mean scores on
    the paired items), diff (A − B) with its ``level`` interval, p (exact sign test; McNemar's
    exact test for 0/1 scores), reason, a_better, b_better (the discordant items)."""
    n, sum_a, sum_b, a_better, b_better, sum_d2, n_a, n_b = sums.T
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_a, mean_b = sum_a / n, sum_b / n
        diff = mean_a - mean_b
        if binary:
            lower, upper = paired_interval(a_better, b_better, n, level)
        else:
            sd = np.sqrt(np.maximum(sum_d2 - n * diff**2, 0.0) / (n - 1))
            half = stats.t.isf((1 - level) / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
            lower, upper = diff - half, diff + half
    small = n < MIN_ITEMS
    reasons = [
        "" if not s else _reason_counts(x, y, MIN_ITEMS, "results") if not (x and y)
        else f"too few items answered by both ({int(m)}; a test needs {MIN_ITEMS})"
        for s, x, y, m in zip(small, n_a, n_b, n, strict=True)
    ]  # fmt: skip
    p = sign_test(a_better, a_better + b_better)
    p = np.where(a_better + b_better == 0, 1.0, p)  # no item differs: nothing against equality
    return pd.DataFrame(
        {
            "node_id": node_ids,
            "n": n.astype(np.int64),
            "n_a": n_a.astype(np.int64),
            "n_b": n_b.astype(np.int64),
            "score_a": np.where(n > 0, mean_a, np.nan),
            "score_b": np.where(n > 0, mean_b, np.nan),
            "diff": np.where(small, np.nan, diff),
            "diff_lower": np.where(small, np.nan, lower),
            "diff_upper": np.where(small, np.nan, upper),
            "p": np.where(small, np.nan, p),
            "reason": reasons,
            "a_better": a_better.astype(np.int64),
            "b_better": b_better.astype(np.int64),
        }
    )


# --------------------------------------------------------------------------- the comparison


def adjust(table: pd.DataFrame, q: float = 0.05) -> pd.DataFrame:
    """``table`` (node_id, parent_id, p, diff; one row per node of a tree) plus q (Benjamini–Hochberg
    over every node with a p-value), significant (q <= ``q``), topmost (significant, no significant
    ancestor) and favours ('A', 'B' or '' by the sign of diff where significant)."""
    out = table.copy()
    out["q"] = bh_adjust(out["p"].to_numpy(float))
    significant = np.nan_to_num(out["q"].to_numpy(float), nan=1.0) <= q
    index = tree_index(out[["node_id", "parent_id"]])
    out["significant"] = significant
    out["topmost"] = significant & ~ancestor_any(index, significant)
    out["favours"] = np.where(significant, np.where(out["diff"] > 0, "A", "B"), "")
    if "h2h_p" in out:
        out["h2h_q"] = bh_adjust(out["h2h_p"].to_numpy(float))
    return out


def _model_names(con: duckdb.DuckDBPyConnection, dataset: str, kind: str, filters: Filters) -> list[str]:
    if kind == "instances":
        sql, params = "SELECT DISTINCT model FROM results WHERE dataset = ?", [dataset]
    else:
        inner, params = checked_battles_query(con, dataset, filters, ("model_a", "model_b"), False)
        sql = f"SELECT model_a FROM ({inner}) UNION SELECT model_b FROM ({inner})"  # noqa: S608
        params = [*params, *params]
    return sorted(r[0] for r in con.execute(sql, params).fetchall())


def _check_models(models: list[str], dataset: str, model_a: str, model_b: str, what: str) -> None:
    if model_a == model_b:
        raise ArenatreeError(f"model A and model B are both {model_a!r}: pick two different models")
    for m in (model_a, model_b):
        if m not in models:
            known = ", ".join(models[:20]) + (" ..." if len(models) > 20 else "")
            raise ArenatreeError(f"model {m!r} has no {what} in dataset {dataset!r}; models: {known}")


def comparison_nodes(con: duckdb.DuckDBPyConnection, tree_id: str | None) -> pd.DataFrame:
    """The :data:`NODE_FIELDS` of every node of ``tree_id`` in preorder (parent_id float, NaN at the
    root); without a tree, the one root node 'whole dataset'."""
    if tree_id is None:
        return pd.DataFrame(
            {
                "node_id": [0],
                "parent_id": [np.nan],
                "depth": [0],
                "description": ["whole dataset"],
                "size": [0],
            }
        )
    nodes = tree_nodes(con, tree_id)[NODE_FIELDS]
    return nodes.assign(parent_id=nodes["parent_id"].astype("Float64").astype(float))


def pick_tree(con: duckdb.DuckDBPyConnection, dataset: str, tree_id: str | None) -> str | None:
    """``tree_id`` checked against the dataset, else its newest tree, else None (no tree yet)."""
    if tree_id is not None:
        return resolve_tree(con, dataset, tree_id)
    row = one(con, "SELECT tree_id FROM trees WHERE dataset = ? ORDER BY created_at DESC LIMIT 1", [dataset])
    return None if row is None else row[0]


def compare_models(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    model_a: str,
    model_b: str,
    tree_id: str | None = None,
    filters: Filters = NO_FILTERS,
    q: float = 0.05,
    level: float = 0.95,
) -> pd.DataFrame:
    """Model A vs model B in every node of ``dataset``'s tree (module docstring: tests, BH, nesting).

    ``tree_id``: None takes the newest tree, or the whole dataset as one node when there is none.
    ``filters`` select the votes (pairwise data only). ``q``: false discovery rate of
    ``significant``; ``level``: of the difference's interval.

    Returns one row per node in tree preorder, :data:`PAIRWISE_COLUMNS` or :data:`INSTANCE_COLUMNS`:
    node fields, n (votes with A or B / items both answered), per-model counts and scores, diff
    (A − B: rating points for votes, score difference for results) with diff_lower / diff_upper,
    p, q, significant, topmost, favours ('A' / 'B' where significant), reason ('' when tested).
    ``attrs``: dataset, kind, tree_id, model_a, model_b, q, level, test, dispersion (votes).
    Raises ArenatreeError for an unknown dataset, tree or model, the same model twice, a dataset
    of prompts only, or vote filters on per-instance data.
    """
    if not 0 < q < 1:
        raise ArenatreeError(f"q={q}: expected a false discovery rate between 0 and 1, e.g. 0.05")
    if not 0 < level < 1:
        raise ArenatreeError(f"level={level}: expected a confidence level between 0 and 1, e.g. 0.95")
    kind = dataset_kind(con, dataset)
    if kind == "prompts":
        raise ArenatreeError(f"dataset {dataset!r} holds prompts only: no votes or results to compare")
    if kind == "instances" and not filters.is_default():
        raise ArenatreeError(f"dataset {dataset!r} holds per-instance results; vote filters do not apply")
    _check_models(
        _model_names(con, dataset, kind, filters), dataset, model_a, model_b,
        "votes" if kind == "pairwise" else "results",
    )  # fmt: skip
    tree = pick_tree(con, dataset, tree_id)
    nodes = comparison_nodes(con, tree)
    if kind == "pairwise":
        cells = node_cells(con, dataset, tree, filters)
        table = pairwise_table(cells, model_a, model_b, level)
        phi = float(table.pop("dispersion").iloc[0])
        columns, test = PAIRWISE_COLUMNS, "wald test on the node's Bradley-Terry rating difference"
    else:
        node_ids, sums, binary = paired_results(con, dataset, tree, model_a, model_b)
        table, phi = instance_table(node_ids, sums, binary, level), None
        columns = INSTANCE_COLUMNS
        test = "mcnemar exact test (discordant items)" if binary else "exact sign test on paired scores"
    if tree is None:
        nodes["size"] = int(table["n"].iloc[0])
    out = adjust(nodes.merge(table, on="node_id", how="left", validate="one_to_one"), q)[columns]
    out.attrs = {
        "dataset": dataset, "kind": kind, "tree_id": tree, "model_a": model_a, "model_b": model_b,
        "q": q, "level": level, "test": test, "dispersion": phi, "filters": filters.key(),
    }  # fmt: skip
    return out


def comparison_record(table: pd.DataFrame, all_nodes: bool = False) -> dict:
    """A :func:`compare_models` table as a JSON-able dict: its ``attrs``, counts (nodes, tested,
    significant, topmost) and ``nodes`` (the significant rows, or every row with ``all_nodes``)."""
    shown = table if all_nodes else table[table["significant"]]
    return {
        **table.attrs,
        "nodes_total": len(table),
        "tested": int(table["p"].notna().sum()),
        "significant": int(table["significant"].sum()),
        "topmost": [int(i) for i in table.loc[table["topmost"], "node_id"]],
        "nodes": records(shown),
    }


# --------------------------------------------------------------------------- examples

EXAMPLE_COLUMNS = ["prompt_id", "prompt", "answer_a", "answer_b", "outcome", "battle_id", "instance_id"]


def _under(tree_id: str | None, node_id: int) -> tuple[str, list]:
    """SQL (a subquery of prompt_id) of the prompts under a node, and its parameters; None-tree or
    the root: every prompt (NULL prompt ids included via the caller's ``OR``)."""
    return (
        """
        SELECT m.prompt_id FROM node_members m
        JOIN nodes n ON n.tree_id = m.tree_id AND n.node_id = m.node_id
        JOIN nodes t ON t.tree_id = m.tree_id AND t.node_id = ?
        WHERE m.tree_id = ? AND (n.path = t.path OR starts_with(n.path, t.path || '.'))
        """,
        [int(node_id), tree_id],
    )


def node_examples(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    model_a: str,
    model_b: str,
    tree_id: str | None,
    node_id: int,
    filters: Filters = NO_FILTERS,
    limit: int = 20,
) -> pd.DataFrame:
    """Up to ``limit`` prompts under ``node_id`` where A and B can be read side by side:
    :data:`EXAMPLE_COLUMNS` — prompt (text), answer_a, answer_b (each model's own answer, None when
    not stored), outcome ('A', 'B', 'tie' for votes: who won; 'A', 'B', 'same' for results: whose
    score is higher), battle_id (votes) / instance_id (results).

    Votes: the head-to-head votes of A and B in the node (decisive first, then ties), each
    model's answer taken from its own side; when they never met there, the prompts both answered
    (outcome 'not met', e.g. AlpacaEval, where every model meets only the baseline).
    Results: the items both answered, discordant first.
    ``tree_id=None`` or the root: every prompt of the dataset. Text is raw and untrusted.
    """
    whole = tree_id is None or node_id == 0
    under, under_params = ("SELECT NULL", []) if whole else _under(tree_id, node_id)
    kind = dataset_kind(con, dataset)
    if kind == "pairwise":
        columns = ("battle_id", "prompt_id", "model_a", "model_b", "winner", "response_a", "response_b")
        sql, params = checked_battles_query(con, dataset, filters, columns, False)
        rows = con.execute(
            f"""
            WITH v AS ({sql})
            SELECT v.battle_id, v.prompt_id, p.text AS prompt,
                   CASE WHEN v.model_a = ? THEN ra.text ELSE rb.text END AS answer_a,
                   CASE WHEN v.model_a = ? THEN rb.text ELSE ra.text END AS answer_b,
                   CASE WHEN v.winner IN ('tie', 'tie_bothbad') THEN 'tie'
                        WHEN (v.winner = 'model_a') = (v.model_a = ?) THEN 'A' ELSE 'B' END AS outcome,
                   NULL AS instance_id
            FROM v
            LEFT JOIN prompts p ON p.dataset = ? AND p.prompt_id = v.prompt_id
            LEFT JOIN responses ra ON ra.dataset = ? AND ra.response_id = v.response_a
            LEFT JOIN responses rb ON rb.dataset = ? AND rb.response_id = v.response_b
            WHERE ((v.model_a = ? AND v.model_b = ?) OR (v.model_a = ? AND v.model_b = ?))
              AND (? OR v.prompt_id IN ({under}))
            ORDER BY outcome = 'tie', v.battle_id LIMIT ?
            """,  # noqa: S608 - the query texts are built here and in battles_query; values are parameters
            [
                *params, model_a, model_a, model_a, dataset, dataset, dataset,
                model_a, model_b, model_b, model_a, whole, *under_params, int(limit),
            ],
        ).df()  # fmt: skip
        if rows.empty:  # never met here (e.g. AlpacaEval's fixed baseline): prompts both answered
            rows = con.execute(
                f"""
                SELECT NULL AS battle_id, ra.prompt_id, p.text AS prompt, any_value(ra.text) AS answer_a,
                       any_value(rb.text) AS answer_b, 'not met' AS outcome, NULL AS instance_id
                FROM responses ra
                JOIN responses rb ON rb.dataset = ra.dataset AND rb.prompt_id = ra.prompt_id AND rb.model = ?
                LEFT JOIN prompts p ON p.dataset = ra.dataset AND p.prompt_id = ra.prompt_id
                WHERE ra.dataset = ? AND ra.model = ? AND (? OR ra.prompt_id IN ({under}))
                GROUP BY ALL ORDER BY ra.prompt_id LIMIT ?
                """,  # noqa: S608 - the subquery text is a constant of this module; values are parameters
                [model_b, dataset, model_a, whole, *under_params, int(limit)],
            ).df()
    elif kind == "instances":
        rows = con.execute(
            f"""
            WITH pair AS (
                SELECT instance_id, prompt_id, max(score) FILTER (WHERE model = ?) AS sa,
                       max(score) FILTER (WHERE model = ?) AS sb
                FROM results WHERE dataset = ? AND model IN (?, ?) GROUP BY instance_id, prompt_id
            )
            SELECT NULL AS battle_id, pair.prompt_id, p.text AS prompt,
                   (SELECT any_value(text) FROM responses r
                    WHERE r.dataset = ? AND r.prompt_id = pair.prompt_id AND r.model = ?) AS answer_a,
                   (SELECT any_value(text) FROM responses r
                    WHERE r.dataset = ? AND r.prompt_id = pair.prompt_id AND r.model = ?) AS answer_b,
                   CASE WHEN sa > sb THEN 'A' WHEN sa < sb THEN 'B' ELSE 'same' END AS outcome,
                   pair.instance_id
            FROM pair LEFT JOIN prompts p ON p.dataset = ? AND p.prompt_id = pair.prompt_id
            WHERE sa IS NOT NULL AND sb IS NOT NULL AND (? OR pair.prompt_id IN ({under}))
            ORDER BY outcome = 'same', pair.instance_id LIMIT ?
            """,  # noqa: S608 - the subquery text is a constant of this module; values are parameters
            [
                model_a, model_b, dataset, model_a, model_b, dataset, model_a, dataset, model_b,
                dataset, whole, *under_params, int(limit),
            ],
        ).df()  # fmt: skip
    else:
        raise ArenatreeError(f"dataset {dataset!r} holds prompts only: no votes or results to compare")
    return rows[EXAMPLE_COLUMNS]

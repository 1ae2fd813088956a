"""Planted-weakness recovery: how well a weakness profile finds weaknesses that are known to be there.

EvalTree's ground-truth assessment (Zeng et al. 2025, §4): plant a set of weaknesses (each a set
of benchmark items), give every item a synthetic correctness probability ``base · d^k`` (k = the
number of planted weaknesses the item falls in, d < 1 the strength of a weakness), sample 0/1
results, run the profiling method and compare the items under the extracted nodes with the
planted items: precision, recall and F1 over items. The paper reports the best F1 over the
threshold sweep; we report that *and* the F1 of each method's default setting, which needs no
knowledge of the truth.

For arenas the truth comes from ``pipelines.simulate`` (``truth.json``: planted (model, group)
rating offsets and each group's prompt ids); a model's planted items are the prompts of its
weak groups, and F1 is averaged over the models with planted weaknesses. Models without any
show false positives only; their extracted items are reported separately.

Used by ``bench/bench_weakness_validity.py`` (the full table) and
``tests/test_weakness_validity.py`` (regression floors).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .. import ratings as rt
from .profiles import (
    TreeIndex,
    accuracy_by_node,
    accuracy_gain,
    ancestor_any,
    extract_mask,
    penalty_for,
    prune_mask,
    subtree_sums,
    sweep,
    tree_index,
    z_gain,
)

# Content-defined weaknesses on MATH: case-insensitive patterns over the problem text. Sizes on
# the 5,000 test problems: 54 (vector) .. 319 (triangle).
MATH_CONTENT: dict[str, str] = {
    "matrices": r"\\begin\{pmatrix\}|matri|determinant",
    "probability": r"probabilit",
    "remainders": r"remainder|modulo|\\pmod|\\mod",
    "triangles": r"triangle",
    "circles": r"circle|radius|diameter",
    "polynomials": r"polynomial",
    "complex numbers": r"complex number|\bi\^|imaginary",
    "primes": r"prime",
    "sequences": r"sequence|series",
    "number bases": r"base[ -]\$?\d|_\{?\d+\}?\$? (?:in|to) base|base \$",
    "trigonometry": r"\\sin|\\cos|\\tan",
    "conics": r"ellipse|hyperbola|parabola",
    "digits": r"digit",
    "vectors": r"vector",
    "money": r"\\\$|dollar|cents?\b",
    "area": r"\barea\b",
    "divisibility": r"divisor|divisible",
}
DEFAULT_PENALTY = penalty_for(0.001)  # nats: an isolated node needs one-sided p < 0.001


@dataclass(frozen=True)
class Scores:
    """Item-level recovery of one profile: precision, recall, F1 (0 when nothing is right),
    and the item counts behind them."""

    precision: float
    recall: float
    f1: float
    extracted: int
    planted: int


def recovery(planted: np.ndarray, extracted: np.ndarray) -> Scores:
    """Precision, recall and F1 of extracted items (bool (n_items,)) against planted ones."""
    planted = np.asarray(planted, bool)
    extracted = np.asarray(extracted, bool)
    tp = int((planted & extracted).sum())
    n_e, n_p = int(extracted.sum()), int(planted.sum())
    precision = tp / n_e if n_e else 0.0
    recall = tp / n_p if n_p else 0.0
    f1 = 2 * tp / (n_e + n_p) if tp else 0.0
    return Scores(precision, recall, f1, n_e, n_p)


def items_under(index: TreeIndex, item_pos: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(n_items,) bool: the item's leaf (row position ``item_pos``) is, or lies below, a node of
    ``mask`` ((n_nodes,) bool)."""
    return (mask | ancestor_any(index, mask))[np.asarray(item_pos)]


# --------------------------------------------------------------------------- planting on MATH


def content_sets(texts: Sequence[str], patterns: dict[str, str] = MATH_CONTENT) -> dict[str, np.ndarray]:
    """Item sets defined by content: name -> (n_items,) bool, pattern found in the text."""
    s = pd.Series(list(texts))
    return {name: s.str.contains(p, regex=True, case=False).to_numpy() for name, p in patterns.items()}


def subject_level_sets(
    subject: Sequence[str], level: Sequence[int], min_size: int = 100, max_size: int = 600
) -> dict[str, np.ndarray]:
    """Item sets defined by MATH subject and level: every subject whole, at levels 1-3 and at
    levels 4-5, keeping sets of ``min_size`` to ``max_size`` items."""
    subject = np.asarray(subject)
    level = np.asarray(level)
    out = {}
    for s in sorted(set(subject)):
        for name, lv in (("", (1, 5)), (" L1-3", (1, 3)), (" L4-5", (4, 5))):
            mask = (subject == s) & (level >= lv[0]) & (level <= lv[1])
            if min_size <= mask.sum() <= max_size:
                out[f"{s}{name}"] = mask
    return out


def plant(
    sets: dict[str, np.ndarray], n_weak: int, d: float, rng: np.random.Generator, base: float = 0.7
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Draw ``n_weak`` of the sets as planted weaknesses and sample synthetic 0/1 results with
    P(correct) = ``base · d^k`` (k = planted sets holding the item).

    Returns (names, planted (n_items,) bool, correct (n_items,) bool).
    """
    names = sorted(rng.choice(sorted(sets), size=n_weak, replace=False).tolist())
    k = np.sum([sets[n] for n in names], axis=0)
    correct = rng.random(len(k)) < base * d**k
    return names, k > 0, correct


def cluster_nodes(cluster) -> tuple[pd.DataFrame, np.ndarray]:
    """(nodes frame, item leaf positions) of a fitted :class:`~pipelines.tree.cluster.RecursiveKMeans`
    (its node ids are already rows)."""
    parent = np.asarray(cluster.parent_)
    nodes = pd.DataFrame(
        {
            "node_id": np.arange(len(parent)),
            "parent_id": pd.array([None if p < 0 else int(p) for p in parent], dtype="Int64"),
        }
    )
    return nodes, np.asarray(cluster.labels_)


# --------------------------------------------------------------------------- methods on accuracy


def evaltree_best(
    nodes: pd.DataFrame, item_leaf: np.ndarray, correct: np.ndarray, planted: np.ndarray, level: float = 0.95
) -> tuple[Scores, float]:
    """The faithful EvalTree protocol: Clopper–Pearson ``level`` intervals (none under 5 items),
    the extraction rule, the best F1 over every distinct profile of the τ sweep. Returns the
    scores of the best profile and the top of its τ interval."""
    acc = accuracy_by_node(nodes, item_leaf, correct, level=level)
    index = tree_index(acc)
    pos = pd.Index(index.node_id)
    best, best_tau = recovery(planted, np.zeros(len(planted), bool)), np.nan
    for prof in sweep(acc):
        mask = np.zeros(len(pos), bool)
        mask[pos.get_indexer(prof.node_ids)] = True
        s = recovery(planted, items_under(index, item_leaf, mask))
        if s.f1 > best.f1:
            best, best_tau = s, prof.tau_high
    return best, best_tau


def evaltree_at(
    nodes: pd.DataFrame,
    item_leaf: np.ndarray,
    correct: np.ndarray,
    planted: np.ndarray,
    tau: float,
    level: float = 0.95,
) -> Scores:
    """EvalTree's profile at one τ (e.g. the model's overall accuracy: no knowledge of the truth)."""
    acc = accuracy_by_node(nodes, item_leaf, correct, level=level)
    index = tree_index(acc)
    mask = extract_mask(index, acc["upper"].to_numpy() < tau, acc["size"].to_numpy())
    return recovery(planted, items_under(index, item_leaf, mask))


def pruned_profile(
    nodes: pd.DataFrame,
    item_leaf: np.ndarray,
    correct: np.ndarray,
    planted: np.ndarray,
    penalty: float = DEFAULT_PENALTY,
) -> Scores:
    """Penalised-likelihood pruning (:func:`~.profiles.prune_mask`) with every node's gain taken
    against the model's overall accuracy."""
    acc = accuracy_by_node(nodes, item_leaf, correct)
    index = tree_index(acc)
    gain = accuracy_gain(acc["wins"], acc["size"], float(np.mean(correct)))
    return recovery(planted, items_under(index, item_leaf, prune_mask(index, gain, penalty)))


# --------------------------------------------------------------------------- arenas


def planted_by_model(truth: dict, prompt_ids: Sequence[str], kind: str = "weakness") -> dict[str, np.ndarray]:
    """Per model with planted ``kind`` offsets: (n_items,) bool over ``prompt_ids``, the prompts of
    its planted groups (``pipelines.simulate`` truth.json)."""
    groups = {g["name"]: set(g["prompt_ids"]) for g in truth["groups"]}
    by_model: dict[str, set] = {}
    for p in truth["planted"]:
        if p["kind"] == kind:
            by_model.setdefault(p["model"], set()).update(groups[p["group"]])
    ids = pd.Index(list(prompt_ids))
    return {m: ids.isin(list(s)) for m, s in by_model.items()}


def node_fit_z(node_cells, global_ratings: np.ndarray) -> pd.DataFrame:
    """The plain per-node z-test (baseline): each node's own Bradley–Terry fit (ties half, mean
    1000 over the node's models), standard errors from that fit's Fisher information, and
    z = (rating in the node − global rating) / se. Columns node_id, model, rating, se, z, p_weak.
    Nodes where fewer than 2 models are connected by wins are skipped."""
    from ..scores import fitted_models

    unit = np.log(10.0) / 400.0
    glob = pd.Series(np.asarray(global_ratings, float), index=list(node_cells.models))
    rows = []
    for node_id in node_cells.node_ids:
        models, cells = node_cells.cells(int(node_id))
        keep = fitted_models(len(models), cells)
        if len(keep) < 2:
            continue
        sel = np.isin(cells.a, keep) & np.isin(cells.b, keep)
        a, b = np.searchsorted(keep, cells.a[sel]), np.searchsorted(keep, cells.b[sel])
        sub = rt.Cells(a, b, cells.wins_a[sel], cells.wins_b[sel], cells.ties[sel])
        names = [models[i] for i in keep]
        r = rt.bradley_terry(names, sub)
        pa = 1 / (1 + np.exp(-(r[a] - r[b]) * unit))
        w = (sub.wins_a + sub.wins_b + sub.ties) * pa * (1 - pa)
        k = len(keep)
        info = np.zeros((k, k))
        np.add.at(info, (a, a), w)
        np.add.at(info, (b, b), w)
        np.add.at(info, (a, b), -w)
        np.add.at(info, (b, a), -w)
        se = np.sqrt(np.maximum(np.diag(np.linalg.pinv(info)), 1e-12)) / unit
        z = (r - glob.loc[names].to_numpy()) / se
        rows.append(pd.DataFrame({"node_id": node_id, "model": names, "rating": r, "se": se, "z": z}))
    out = pd.concat(rows, ignore_index=True)
    out["p_weak"] = stats.norm.cdf(out["z"])
    return out


def per_node(index: TreeIndex, frame: pd.DataFrame, column: str, fill: float) -> np.ndarray:
    """(n_nodes,) values of ``column`` from a (node_id, ...) frame of one model, ``fill`` where the
    model has no row."""
    out = np.full(len(index.node_id), fill, dtype=float)
    out[pd.Index(index.node_id).get_indexer(frame["node_id"])] = frame[column].to_numpy(float)
    return out


def arena_masks(
    index: TreeIndex,
    tests: pd.DataFrame,
    baseline: pd.DataFrame,
    model: str,
    node_size: np.ndarray,
    penalty: float = DEFAULT_PENALTY,
    q: float = 0.05,
    alpha: float = 0.05,
) -> dict[str, np.ndarray]:
    """Extracted-node masks of one model for each arena method (see the bench for their names)."""
    from ..stats import bh_adjust

    t = tests[tests["model"] == model]
    bz = baseline[baseline["model"] == model]
    p_base = per_node(index, bz, "p_weak", 1.0)
    flag = p_base <= alpha
    p_adj = bh_adjust(per_node(index, t, "p_weak", 1.0))
    sig = p_adj <= q
    return {
        "baseline z, EvalTree walk": extract_mask(index, flag, node_size),
        "baseline z, topmost": flag & ~ancestor_any(index, flag),
        "adjusted + BH, topmost": sig & ~ancestor_any(index, sig),
        "adjusted + pruning": prune_mask(index, z_gain(per_node(index, t, "z", 0.0)), penalty),
    }


def arena_recovery(
    nodes: pd.DataFrame,
    members: pd.DataFrame,
    node_cells,
    truth: dict,
    penalty: float = DEFAULT_PENALTY,
) -> pd.DataFrame:
    """Recovery of planted arena weaknesses by every method, one row per (method, model):
    method, model, planted (has planted weaknesses), precision, recall, f1, extracted, n_planted.

    Args:
        nodes: the tree's nodes (``node_id``, ``parent_id``).
        members: leaf membership (``node_id``, ``prompt_id``), one row per prompt.
        node_cells: :class:`pipelines.scores.NodeCells` of the votes over that tree.
        truth: the simulator's truth.json.
    """
    from .arena import opponent_adjusted_tests

    index = tree_index(nodes)
    item_pos = pd.Index(index.node_id).get_indexer(members["node_id"])
    size = subtree_sums(index, np.bincount(item_pos, minlength=len(index.node_id)))
    tests = opponent_adjusted_tests(node_cells)
    root_models, root = node_cells.cells(int(node_cells.node_ids[0]), local=False)
    baseline = node_fit_z(node_cells, rt.bradley_terry(root_models, root))
    weak = planted_by_model(truth, members["prompt_id"])
    rows = []
    for model in node_cells.models:
        planted = weak.get(model, np.zeros(len(members), bool))
        for method, mask in arena_masks(index, tests, baseline, model, size, penalty).items():
            s = recovery(planted, items_under(index, item_pos, mask))
            rows.append(
                {
                    "method": method,
                    "model": model,
                    "planted": bool(planted.any()),
                    "precision": s.precision,
                    "recall": s.recall,
                    "f1": s.f1,
                    "extracted": s.extracted,
                    "n_planted": s.planted,
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- data


def math_items(con, dataset: str = "math") -> tuple[pd.DataFrame, np.ndarray]:
    """The MATH items of a store and their cached MiniLM embeddings (as the offline tree build
    embedded them; nothing is embedded here).

    Returns (items, X): items has prompt_id, text, subject, level (int), ordered by prompt_id;
    X is (n_items, 384) float32. Raises ValueError when an embedding is missing from the cache.
    """
    import json

    from ..ingest.load import text_hash
    from ..tree.base import offline_annotator
    from ..tree.embed import MiniLMEmbedder

    items = con.execute(
        "SELECT prompt_id, text, metadata FROM prompts WHERE dataset = ? ORDER BY prompt_id", [dataset]
    ).df()
    meta = items.pop("metadata").map(lambda m: json.loads(m or "{}"))
    items["subject"] = meta.map(lambda m: m.get("type", ""))
    items["level"] = meta.map(lambda m: int(re.sub(r"\D", "", str(m.get("level", "0"))) or 0))
    hashes = [
        text_hash(c) for c in offline_annotator(items["text"].tolist()).annotate(items["text"].tolist())
    ]
    con.register("want_hashes", pd.DataFrame({"text_hash": list(dict.fromkeys(hashes))}))
    table = con.execute(
        "SELECT w.text_hash, e.vector FROM want_hashes w JOIN embeddings e USING (text_hash) "
        "WHERE e.model = ?",
        [MiniLMEmbedder().name],
    ).df()
    con.unregister("want_hashes")
    vec = dict(zip(table["text_hash"], table["vector"], strict=True))
    missing = sum(h not in vec for h in hashes)
    if missing:
        raise ValueError(f"{missing} MATH items have no cached embedding: build the math tree first")
    return items, np.stack([np.asarray(vec[h], dtype=np.float32) for h in hashes])

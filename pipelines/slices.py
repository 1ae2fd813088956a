"""Slice weighting, rank spread and P(#1), and the head-to-head drill-down of one model.

* **Rank spread / P(#1)** (:func:`rank_spread`): from bootstrap ratings (rounds, n_models), each
  model's rank in every round, the 2.5–97.5% range of those ranks, and the share of rounds in
  which it has the top rating.
* **Slice weighting** (:func:`weighted_leaderboard`): the votes are split into slices (the
  children of a tree node, e.g. the tree's top-level nodes) and the analyst gives slice k a
  weight ``w_k``. Every vote in slice k then counts ``v_k = w_k / s_k`` times, where ``s_k`` is the
  slice's share of the votes and the weights are normalised to sum 1 (so the weighted total stays
  the number of votes, and ``w = s`` — "as voted" — is the ordinary fit). Bradley–Terry (ties half)
  is fitted by :func:`pipelines.ratings.fit_pairwise` on the weighted cell counts; intervals come
  from a stratified bootstrap: each slice's counts are redrawn (multinomial over its own
  (pair, outcome) cells, its total fixed), weighted and summed, and all rounds are refitted
  together. Nothing is resampled per vote: the votes are aggregated once to (slice, pair, outcome)
  counts (:func:`slice_cells`).
* **Drill-down** (:func:`model_record`, :func:`pair_battle_ids`): one model's record against
  each opponent, and the votes of one pair.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import duckdb
import numpy as np
import pandas as pd

from pipelines import ratings, scores
from pipelines.text import parse_count

THIN_VOTES = 200  # a slice with fewer votes is "thin": weighting it up inflates the variance
PRESETS = ("as voted", "equal", "coding-heavy")
CODING_BOOST = 3.0  # the coding-heavy preset multiplies coding slices' as-voted share by this
CODING_WORDS = frozenset({
    "code", "coding", "coder", "program", "programming", "programs", "python", "javascript", "java",
    "typescript", "sql", "function", "functions", "algorithm", "algorithms", "debug", "debugging", "script",
    "scripts", "html", "css", "api", "regex", "bug", "bugs", "compile", "compiler", "rust", "golang", "c++",
    "software", "developer", "implement", "implementation",
})  # fmt: skip
_WORD = re.compile(r"[a-z+#]+")


# --------------------------------------------------------------------------------------------------
# Rank spread and P(#1)
# --------------------------------------------------------------------------------------------------


def round_ranks(boot: np.ndarray) -> np.ndarray:
    """Rank of every model in every bootstrap round, (rounds, n_models) int: 1 + the number of
    models with a strictly higher rating in that round (tied models share the better rank)."""
    boot = np.asarray(boot, dtype=np.float64)
    return 1 + (boot[:, None, :] > boot[:, :, None]).sum(axis=2)


def rank_spread(boot: np.ndarray, level: float = 0.95) -> pd.DataFrame:
    """Rank interval and probability of being #1 from bootstrap ratings ``boot`` (rounds, n_models).

    Returns one row per model (columns in ``boot``'s order): ``rank_low`` / ``rank_high`` (ints, the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of the model's per-round rank,
    :func:`round_ranks`, taken outward: the lower observed rank at the low end, the higher at the
    high end) and ``p_top`` (share of rounds in which the model has the highest rating; a tie for
    the top splits the round equally among the tied models, so ``p_top`` sums to 1).
    """
    boot = np.asarray(boot, dtype=np.float64)
    if boot.ndim != 2 or not boot.shape[0]:
        raise ValueError(f"boot must be (rounds >= 1, n_models), got shape {boot.shape}")
    ranks = round_ranks(boot)
    tail = 100 * (1 - level) / 2
    low = np.percentile(ranks, tail, axis=0, method="lower")
    high = np.percentile(ranks, 100 - tail, axis=0, method="higher")
    top = boot == boot.max(axis=1, keepdims=True)
    p_top = (top / top.sum(axis=1, keepdims=True)).mean(axis=0)
    return pd.DataFrame(
        {"rank_low": low.astype(np.int64), "rank_high": high.astype(np.int64), "p_top": p_top}
    )


def pair_max_t(point: np.ndarray, boot: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The max-t ingredients of :func:`joint_rank_sets` for one fit: the differences d_ij = r_i - r_j
    (n, n), their bootstrap standard deviations se_ij (n, n; 0 where unknown) and each round's
    largest |d*_ij - d_ij| / se_ij over all pairs, (rounds,). ``point`` (n,), ``boot`` (rounds, n)."""
    point = np.asarray(point, dtype=np.float64)
    boot = np.asarray(boot, dtype=np.float64)
    d = point[:, None] - point[None, :]
    dstar = boot[:, :, None] - boot[:, None, :]
    se = dstar.std(axis=0)
    known = se > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(known, np.abs(dstar - d) / np.where(known, se, 1.0), 0.0)
    return d, se, t.reshape(len(boot), -1).max(axis=1, initial=0.0)


def rank_sets_at(d: np.ndarray, se: np.ndarray, c: float) -> pd.DataFrame:
    """Rank sets from simultaneous intervals d_ij +- c se_ij (``d``, ``se`` from :func:`pair_max_t`):
    model i's set is [1 + #models surely above it, n - #models surely below it]. Columns set_low,
    set_high (ints)."""
    above = (se > 0) & (d - c * se > 0)  # above[i, j]: i is surely rated above j
    n = len(d)
    return pd.DataFrame(
        {
            "set_low": (1 + above.sum(axis=0)).astype(np.int64),
            "set_high": (n - above.sum(axis=1)).astype(np.int64),
        }
    )


def joint_rank_sets(point: np.ndarray, boot: np.ndarray, level: float = 0.95) -> pd.DataFrame:
    """Rank confidence sets that hold for every model at once, at ``level``.

    point: (n_models,) ratings; boot: (rounds, n_models) bootstrap ratings. The differences
    d_ij = r_i - r_j get simultaneous intervals d_ij +- c se_ij, with se_ij the bootstrap standard
    deviation and c the ``level`` quantile of the largest |d*_ij - d_ij| / se_ij over all pairs in
    a round (a max-t bootstrap, as in Klein, Wright & Wieczorek 2020 for ranks). Model i's set is
    [1 + #models surely above it, n_models - #models surely below it]. Columns: set_low, set_high
    (ints), in ``point``'s order. Wider than the per-model rank range, and honest about all ranks
    jointly. Over many nodes at once see :mod:`pipelines.node_rank_sets`.
    """
    d, se, tmax = pair_max_t(point, boot)
    c = float(np.quantile(tmax, level)) if len(tmax) else np.inf
    return rank_sets_at(d, se, c)


def with_rank_spread(
    table: pd.DataFrame, models: Sequence[str], boot: np.ndarray, level: float = 0.95
) -> pd.DataFrame:
    """``table`` (a leaderboard with ``model`` and ``rating`` columns) plus rank_low, rank_high and
    p_top from the bootstrap ratings ``boot`` (rounds, n_models) whose columns are ``models``, and
    the joint rank sets set_low, set_high (:func:`joint_rank_sets`)."""
    point = table.set_index("model").loc[list(models), "rating"].to_numpy()
    spread = pd.concat([rank_spread(boot, level), joint_rank_sets(point, boot, level)], axis=1)
    spread = spread.assign(model=list(models))
    return table.merge(spread, on="model", how="left", validate="one_to_one")


def spread_leaderboard(
    votes: pd.DataFrame,
    rounds: int = 100,
    seed: int = 0,
    level: float = 0.95,
    *,
    method: str = "bt",
    anchor: str | None = None,
    ci: str = "bootstrap",
    reweight: bool = False,
) -> pd.DataFrame:
    """:func:`pipelines.ratings.leaderboard` (same fit, same seed, same numbers, Rao–Kupper's
    ``theta`` and the interval method in ``attrs``, ``anchor`` pinned at 1000) plus rank_low,
    rank_high and p_top from the same rounds (bootstrap rounds, or a sandwich fit's normal draws),
    so the rank spread costs no second fit."""
    table, models, boot = ratings.leaderboard_rounds(
        votes, rounds, seed, level, method=method, anchor=anchor, ci=ci, reweight=reweight
    )
    spread = with_rank_spread(table, models, boot, level)
    spread.attrs = table.attrs  # Rao–Kupper's theta (a merge does not carry attrs)
    return spread


# --------------------------------------------------------------------------------------------------
# Slices
# --------------------------------------------------------------------------------------------------


def slice_of_prompt(con: duckdb.DuckDBPyConnection, tree_id: str, node: int) -> pd.DataFrame:
    """Which child of ``node`` every prompt under it belongs to: prompt_id, slice (the child's
    node id). Leaf membership summed up by path prefix; empty when ``node`` is a leaf."""
    return con.execute(
        """
        SELECT m.prompt_id, c.node_id AS slice
        FROM nodes c
        JOIN nodes n ON n.tree_id = c.tree_id AND (n.path = c.path OR starts_with(n.path, c.path || '.'))
        JOIN node_members m ON m.tree_id = n.tree_id AND m.node_id = n.node_id
        WHERE c.tree_id = ? AND c.parent_id = ?
        """,
        [tree_id, int(node)],
    ).df()


class SliceCells(NamedTuple):
    """Outcome counts per (slice, ordered model pair): rows are the pairs that occur in any slice."""

    models: list[str]  # sorted model names
    slices: list[int]  # slice ids, in the order of ``counts``' first axis
    a: np.ndarray  # (U,) int, model_a index
    b: np.ndarray  # (U,) int, model_b index
    counts: np.ndarray  # (K, U, 3) float: wins_a, wins_b, ties per slice and pair
    outside: int  # votes in no slice (their prompt is under none of the slices)

    @property
    def votes(self) -> np.ndarray:
        """Votes per slice, (K,) int."""
        return self.counts.sum(axis=(1, 2)).astype(np.int64)


def slice_cells(
    votes: pd.DataFrame, slice_of: Mapping[str, int] | pd.Series, slices: Sequence[int]
) -> SliceCells:
    """Aggregate ``votes`` (model_a, model_b, winner, prompt_id) once into (slice, pair, outcome)
    counts. ``slice_of`` maps prompt_id -> slice id; votes whose prompt maps to no id in ``slices``
    are counted in ``outside`` and left out. Models are those of the votes kept."""
    slices = [int(s) for s in slices]
    position = {s: k for k, s in enumerate(slices)}
    mapped = votes["prompt_id"].map(slice_of).map(position)
    keep = mapped.notna().to_numpy()
    kept = votes[keep]
    k_idx = mapped[keep].to_numpy(dtype=np.int64)
    outcome = ratings.winner_codes(kept["winner"])
    models, a, b = ratings.index_models(kept)
    n, n_slices = len(models), len(slices)
    flat = np.bincount((k_idx * n * n + a * n + b) * 3 + outcome, minlength=n_slices * n * n * 3).reshape(
        n_slices, n * n, 3
    )
    rows = np.flatnonzero(flat.sum(axis=(0, 2)))
    return SliceCells(
        models, slices, rows // n, rows % n, flat[:, rows].astype(np.float64), int((~keep).sum())
    )


def vote_weights(slice_votes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-vote weight of every slice, (K,): ``v_k = w_k / s_k`` with ``w`` normalised to sum 1 and
    ``s_k`` the slice's share of all votes; 0 for a slice without votes. Then ``sum_k v_k n_k = N``
    when every weighted slice has votes, and ``w = s`` gives ``v = 1``."""
    n_k = np.asarray(slice_votes, dtype=np.float64)
    w = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    if n_k.shape != w.shape:
        raise ValueError(f"{len(w)} weights for {len(n_k)} slices")
    w = np.where(n_k > 0, w, 0.0)
    if w.sum() <= 0:
        raise ValueError("at least one slice with votes needs a positive weight")
    share = n_k / n_k.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n_k > 0, (w / w.sum()) / share, 0.0)


def stratified_counts(cells: SliceCells, v: np.ndarray, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """Weighted bootstrap counts, (rounds, U, 3): each slice's counts redrawn within the slice
    (:func:`pipelines.ratings.resample_counts`, its vote total fixed), times its vote weight
    ``v`` (K,), summed over slices. Slices with weight 0 are not drawn."""
    out = np.zeros((rounds, len(cells.a), 3))
    for k in np.flatnonzero(v > 0):
        c = cells.counts[k]
        part = ratings.Cells(cells.a, cells.b, c[:, 0], c[:, 1], c[:, 2])
        out += v[k] * ratings.resample_counts(part, rounds, rng)
    return out


class WeightedBoard(NamedTuple):
    """A slice-weighted leaderboard (see :func:`weighted_leaderboard`)."""

    table: pd.DataFrame  # model, rating, lower, upper, rank_ub, battles, rank_low, rank_high, p_top
    boot: np.ndarray  # (rounds, n_models) bootstrap ratings, columns in ``models`` order
    models: list[str]
    vote_weights: np.ndarray  # (K,) per-vote weight of each slice


def weighted_ratings(cells: SliceCells, weights: Sequence[float]) -> pd.DataFrame:
    """Point ratings only of :func:`weighted_leaderboard` (no bootstrap): model, rating; best first."""
    v = vote_weights(cells.votes, np.asarray(weights, dtype=np.float64))
    point = ratings.fit_pairwise(cells.a, cells.b, len(cells.models), np.tensordot(v, cells.counts, axes=1))
    out = pd.DataFrame({"model": cells.models, "rating": ratings.to_ratings(point, cells.models)})
    return out.sort_values("rating", ascending=False, ignore_index=True)


def weighted_leaderboard(
    cells: SliceCells, weights: Sequence[float], rounds: int = 100, seed: int = 0, level: float = 0.95
) -> WeightedBoard:
    """Bradley–Terry (ties half) on slice-weighted votes, with stratified bootstrap intervals.

    ``weights`` (K,) in ``cells.slices`` order, any non-negative scale. Point ratings: the MLE on
    ``sum_k v_k C_k`` (:func:`vote_weights`), Elo-like points averaging 1000. Intervals: ``level``
    percentiles over ``rounds`` stratified rounds (:func:`stratified_counts`, seed ``seed``), each
    refitted warm-started at the point fit (rounds whose MLE does not exist stop early, as in
    :func:`pipelines.ratings.bootstrap_fit`). ``battles`` stays the unweighted count of votes. The
    table is sorted best first and also has rank_low, rank_high, p_top (:func:`rank_spread`).
    """
    v = vote_weights(cells.votes, np.asarray(weights, dtype=np.float64))
    n = len(cells.models)
    point = ratings.fit_pairwise(cells.a, cells.b, n, np.tensordot(v, cells.counts, axes=1))
    draws = stratified_counts(cells, v, rounds, np.random.default_rng(seed))
    cap = np.where(ratings.separated_rounds(cells.a, cells.b, n, draws), ratings.SEPARATED_MAXITER, 200)
    boot_params = ratings.fit_pairwise(
        cells.a, cells.b, n, draws, start=point, tol=ratings.ROUND_TOL, maxiter=cap
    )
    boot = ratings.to_ratings(boot_params, cells.models)
    played = ratings.battles_played(n, cells.a, cells.b, cells.counts.sum(axis=0))
    table = ratings.leaderboard_table(
        cells.models, ratings.to_ratings(point, cells.models), boot, played, level
    )
    return WeightedBoard(with_rank_spread(table, cells.models, boot, level), boot, cells.models, v)


def rank_changes(weighted: pd.DataFrame, unweighted: pd.DataFrame) -> pd.DataFrame:
    """``weighted`` plus ``rank`` (its position by rating, 1 = best), ``rank_before`` (the model's
    position in ``unweighted``) and ``rank_change`` = rank_before - rank (+ = moves up; NaN for a
    model absent from ``unweighted``). Both tables need model and rating."""
    before = unweighted.sort_values("rating", ascending=False, kind="stable")["model"].reset_index(drop=True)
    position = pd.Series(np.arange(1, len(before) + 1), index=before.to_numpy())
    out = weighted.sort_values("rating", ascending=False, kind="stable").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    out["rank_before"] = out["model"].map(position)
    out["rank_change"] = out["rank_before"] - out["rank"]
    return out


# --------------------------------------------------------------------------------------------------
# Presets and the URL encoding of weights
# --------------------------------------------------------------------------------------------------


def is_coding(keywords: Sequence[str], description: str) -> bool:
    """Whether a slice is about code: one of :data:`CODING_WORDS` among its keywords or the words
    of its description (case-insensitive)."""
    words = set(_WORD.findall(" ".join(map(str, keywords)).lower())) | set(
        _WORD.findall(str(description).lower())
    )
    return bool(words & CODING_WORDS)


def preset_weights(slices: pd.DataFrame, preset: str) -> dict[int, float]:
    """Weights (percent, summing to 100, one decimal) for the slices frame (node_id, votes,
    keywords, description) under ``preset``: 'as voted' = each slice's share of the votes,
    'equal' = the same for every slice with votes, 'coding-heavy' = as voted with the coding
    slices (:func:`is_coding`) weighted :data:`CODING_BOOST` times more. Slices without votes get 0."""
    votes = slices["votes"].to_numpy(dtype=np.float64)
    if preset == "as voted":
        raw = votes
    elif preset == "equal":
        raw = (votes > 0).astype(np.float64)
    elif preset == "coding-heavy":
        coding = np.array(
            [is_coding(k, d) for k, d in zip(slices["keywords"], slices["description"], strict=True)]
        )
        raw = votes * np.where(coding, CODING_BOOST, 1.0)
    else:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    total = raw.sum()
    pct = 100 * raw / total if total > 0 else raw
    return {int(i): round(float(p), 1) for i, p in zip(slices["node_id"], pct, strict=True)}


def encode_weights(weights: Mapping[int, float]) -> str:
    """Weights as compact URL text, e.g. ``{1: 0.5, 4: 2.0}`` -> ``'1:0.5,4:2'``."""
    return ",".join(f"{int(k)}:{float(w):g}" for k, w in weights.items())


def parse_weights(raw: str) -> dict[int, float] | None:
    """The inverse of :func:`encode_weights`; None when ``raw`` is not of that form or a weight is
    negative or not finite."""
    out: dict[int, float] = {}
    for part in str(raw).split(","):
        key, sep, value = part.partition(":")
        node = parse_count(key)
        if not sep or node is None:
            return None
        try:
            w = float(value)
        except ValueError:
            return None
        if not np.isfinite(w) or w < 0:
            return None
        out[node] = w
    return out or None


# --------------------------------------------------------------------------------------------------
# Drill-down: one model against each opponent, one pair's votes
# --------------------------------------------------------------------------------------------------


def model_record(votes: pd.DataFrame, model: str, level: float = 0.95) -> pd.DataFrame:
    """``model``'s record against every opponent it met in ``votes`` (model_a, model_b, winner):
    opponent, battles, wins, losses, ties (both tie kinds), win_rate (ties half) with its Wilson
    interval win_lower / win_upper. Most battles first."""
    mine = votes[(votes["model_a"] == model) | (votes["model_b"] == model)]
    side_a = (mine["model_a"] == model).to_numpy()
    code = ratings.winner_codes(mine["winner"])
    frame = pd.DataFrame(
        {
            "opponent": np.where(side_a, mine["model_b"], mine["model_a"]),
            "wins": (code == np.where(side_a, 0, 1)).astype(np.int64),
            "losses": (code == np.where(side_a, 1, 0)).astype(np.int64),
            "ties": (code == 2).astype(np.int64),
        }
    )
    out = frame.groupby("opponent", sort=False).sum().reset_index()
    out.insert(1, "battles", out[["wins", "losses", "ties"]].sum(axis=1))
    won = out["wins"] + 0.5 * out["ties"]
    out["win_rate"] = won / out["battles"]
    out["win_lower"], out["win_upper"] = scores.wilson_interval(
        won.to_numpy(), out["battles"].to_numpy(), level
    )
    return out.sort_values(["battles", "opponent"], ascending=[False, True], ignore_index=True)


def pair_battle_ids(votes: pd.DataFrame, model: str, opponent: str) -> list[str]:
    """The battle ids of every vote between ``model`` and ``opponent`` (either side), in the
    order of ``votes``."""
    pair = ((votes["model_a"] == model) & (votes["model_b"] == opponent)) | (
        (votes["model_a"] == opponent) & (votes["model_b"] == model)
    )
    return votes.loc[pair, "battle_id"].astype(str).tolist()

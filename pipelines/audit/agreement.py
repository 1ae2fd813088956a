"""Judge agreement: where several judges voted on the same items, how often do they agree?

An *item* is one prompt with one unordered model pair: ``(prompt_id, {model_a, model_b})``. Every
vote's outcome is re-expressed relative to the item's *first* model (the lexicographically smaller
name, i.e. the lower index in ``AuditVotes.models``): label 0 'first' won, 1 'second' won, 2 tie.
Both tie kinds ('tie' and 'tie_bothbad') are one label, 'tie': judges' use of 'both bad' is a
separate question (the ties audit), and an LLM judge that never says 'both bad' would otherwise
disagree with every human 'both bad'. A judge who voted several times on one item gets its most
frequent label; when two labels are equally frequent (e.g. 'first' in one order and 'second' in
the swapped order) the judge's label is 'tie'.

The *human majority* of an item is the plurality label of its human judges (judge_kind 'human');
items whose plurality is tied (e.g. two humans who disagree) have no majority and are left out of
every comparison against it (their count is reported).

Statistics: agreement = share of shared items with the same label, with a Wilson interval; Cohen's
kappa (scikit-learn's ``cohen_kappa_score`` for the judge-group rows; the per-judge-pair rows and
every bootstrap replicate use :func:`kappa_from_confusion`, the same formula on a confusion matrix,
batched, because scikit-learn computes one kappa per call); Krippendorff's alpha (nominal) from the
coincidence matrix (:func:`krippendorff_alpha`). Kappa and alpha intervals are percentile
intervals of one bootstrap over items (all statistics resampled with the same item draws).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import sparse, stats
from sklearn.metrics import cohen_kappa_score

from ..scores import ancestor_matrix
from ..stats import bh_adjust, percentile_interval, wilson_interval
from .frame import MODEL_A, MODEL_B, AuditVotes
from .result import EXAMPLE_IDS, Finding, not_applicable

AUDIT = "judge_agreement"
TITLE = "Agreement between judges (humans and LLM judges)"
LABELS: tuple[str, ...] = ("first", "second", "tie")  # relative to the item's first model
N_LABELS = len(LABELS)
MAJORITY = "human majority"
BOOT_CHUNK_ELEMENTS = 20_000_000  # bootstrap weights held at once (rounds x items)
MAX_PAIRS = 30_000_000  # within-item judge pairs built at once before restricting to busy judges


class JudgeLabels(NamedTuple):
    """One row per (item, judge): every judge's label of every item it voted on.

    ``item``, ``judge``: int64 codes (items 0..n_items-1, judges index ``AuditVotes.judges``);
    ``label``: int64 in 0..2 (:data:`LABELS`); ``vote``: row of the judge's first vote on the
    item in ``AuditVotes.votes``; ``votes``: how many votes it cast on the item. Sorted by
    (item, judge). ``item_vote``: (n_items,) first vote row of each item (for its prompt / node).
    """

    item: np.ndarray
    judge: np.ndarray
    label: np.ndarray
    vote: np.ndarray
    votes: np.ndarray
    n_items: int
    item_vote: np.ndarray


def oriented_labels(v: AuditVotes) -> tuple[np.ndarray, np.ndarray]:
    """(item, label) of every vote, each (n_votes,) int64: the item code (prompt and unordered
    model pair, numbered in order of first appearance) and the outcome relative to the item's
    first model (0 first won, 1 second won, 2 tie of either kind)."""
    lo, hi = np.minimum(v.a, v.b), np.maximum(v.a, v.b)
    prompt, _ = pd.factorize(v.votes["prompt_id"].astype(str))
    m = max(len(v.models), 1)
    item, _ = pd.factorize((prompt.astype(np.int64) * m + lo) * m + hi)
    out = v.outcome.astype(np.int64)
    swapped = v.a != lo  # the left answer is the item's second model
    label = np.where(out >= 2, 2, np.where(swapped & (out <= MODEL_B), MODEL_B - out, out - MODEL_A))
    return item.astype(np.int64), label.astype(np.int64)


def judge_labels(v: AuditVotes) -> JudgeLabels:
    """Every judge's label of every item (see :class:`JudgeLabels`); ties between a judge's
    repeated votes on one item resolve to 'tie'."""
    item, label = oriented_labels(v)
    n_items = int(item.max(initial=-1)) + 1
    n_judges = max(len(v.judges), 1)
    key = item * n_judges + v.judge
    uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    counts = np.bincount(inverse * N_LABELS + label, minlength=len(uniq) * N_LABELS).reshape(-1, N_LABELS)
    top = counts.max(axis=1)
    unique_top = (counts == top[:, None]).sum(axis=1) == 1
    lab = np.where(unique_top, counts.argmax(axis=1), 2)
    _, item_vote = np.unique(item, return_index=True)
    return JudgeLabels(
        item=uniq // n_judges,
        judge=uniq % n_judges,
        label=lab.astype(np.int64),
        vote=first.astype(np.int64),
        votes=counts.sum(axis=1),
        n_items=n_items,
        item_vote=item_vote.astype(np.int64),
    )


def kappa_from_confusion(conf: np.ndarray) -> np.ndarray:
    """Cohen's kappa of confusion matrices ``conf`` (..., L, L) (counts or weights; rows one
    judge's labels, columns the other's) -> (...). NaN when undefined (chance agreement 1 or no
    items). Same formula as ``sklearn.metrics.cohen_kappa_score`` (unweighted)."""
    conf = np.asarray(conf, dtype=np.float64)
    n = conf.sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        po = np.trace(conf, axis1=-2, axis2=-1) / n
        pe = (conf.sum(axis=-1) * conf.sum(axis=-2)).sum(axis=-1) / (n * n)
        return (po - pe) / (1 - pe)


def item_coincidences(counts: np.ndarray) -> np.ndarray:
    """Each item's contribution to Krippendorff's coincidence matrix: ``counts`` (n_items, L) =
    how many judges gave each label -> (n_items, L, L) with ``o_u[c, k] = (n_uc n_uk - [c=k] n_uc)
    / (m_u - 1)``, m_u the item's number of labels; zero for items with fewer than two labels."""
    counts = np.asarray(counts, dtype=np.float64)
    m = counts.sum(axis=1)
    pairs = counts[:, :, None] * counts[:, None, :]
    idx = np.arange(counts.shape[1])
    pairs[:, idx, idx] -= counts
    scale = np.divide(1.0, m - 1, out=np.zeros_like(m), where=m >= 2)
    return pairs * scale[:, None, None]


def alpha_from_coincidence(o: np.ndarray) -> np.ndarray:
    """Krippendorff's alpha (nominal) of coincidence matrices ``o`` (..., L, L) -> (...): 1 -
    (n - 1) * (n - trace o) / (n^2 - sum_c n_c^2), n_c the row sums. NaN when undefined (fewer
    than two pairable values or a single label used)."""
    o = np.asarray(o, dtype=np.float64)
    n_c = o.sum(axis=-1)
    n = n_c.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 1 - (n - 1) * (n - np.trace(o, axis1=-2, axis2=-1)) / (n * n - (n_c * n_c).sum(axis=-1))
    return np.where(n > 1, out, np.nan)


def krippendorff_alpha(counts: np.ndarray) -> float:
    """Krippendorff's alpha (nominal) from per-item label counts (n_items, L) (the 'value by
    unit' matrix); items with fewer than two labels do not count."""
    return float(alpha_from_coincidence(item_coincidences(counts).sum(axis=0)))


def _within_item_pairs(item: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j), i < j, of rows sharing an item; ``item`` sorted. Returns row indices."""
    n = len(item)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    bounds = np.flatnonzero(np.r_[True, item[1:] != item[:-1], True])
    size = np.diff(bounds)
    end = np.repeat(bounds[1:], size)
    after = end - np.arange(n) - 1
    total = int(after.sum())
    left = np.repeat(np.arange(n), after)
    start = np.cumsum(after) - after
    right = left + 1 + (np.arange(total) - np.repeat(start, after))
    return left, right


def _boot_weights(n_items: int, rounds: int, seed: int):
    """Yield (rounds_chunk, n_items) float arrays: how often each item is drawn in a bootstrap
    resample of the items (multinomial, n_items draws)."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(rounds, BOOT_CHUNK_ELEMENTS // max(n_items, 1)))
    done = 0
    while done < rounds:
        r = min(chunk, rounds - done)
        idx = rng.integers(0, n_items, size=(r, n_items)) + (np.arange(r) * n_items)[:, None]
        yield np.bincount(idx.ravel(), minlength=r * n_items).reshape(r, n_items).astype(np.float64)
        done += r


def _group_lists(groups: np.ndarray, values: np.ndarray) -> dict:
    """{group: list of values} for ``values`` already sorted by ``groups`` (equal groups adjacent)."""
    if not len(groups):
        return {}
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    return dict(zip(groups[starts].tolist(), (a.tolist() for a in np.split(values, starts[1:])), strict=True))


def _binom_two_sided(k: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Two-sided binomial p-value, doubled smaller tail (capped at 1); NaN where n == 0."""
    k, n, p = (np.asarray(x, dtype=np.float64) for x in (k, n, p))
    lower = stats.binom.cdf(k, n, p)
    upper = stats.binom.sf(k - 1, n, p)
    return np.where(n > 0, np.minimum(1.0, 2 * np.minimum(lower, upper)), np.nan)


def judge_agreement(
    v: AuditVotes,
    *,
    level: float = 0.95,
    rounds: int = 200,
    seed: int = 0,
    min_items: int = 20,
    alpha: float = 0.05,
    fdr: bool = True,
    min_votes: int = 20,
    min_node_votes: int = 50,
) -> Finding:
    """How often judges who voted on the same items agree (see the module docstring).

    Tables (rates are shares of items in [0, 1]; intervals at ``level``):

    - ``groups``: each LLM judge vs the human majority, all LLM judges pooled vs the human
      majority, and pooled human-human / human-LLM / LLM-LLM comparisons over every pair of judges
      that shared an item: comparison, items (compared items; for pooled rows item-judge-pair
      comparisons), agree, agreement, lower, upper (Wilson; for pooled rows the item bootstrap,
      because one item enters several comparisons), kappa (scikit-learn), kappa_lower,
      kappa_upper, battle_ids (disagreeing votes, both sides, clearest human majority first).
    - ``pairs``: every pair of judges sharing at least ``min_items`` items: judge_1, kind_1,
      judge_2, kind_2, items, agree, agreement, lower, upper, kappa, kappa_lower, kappa_upper,
      battle_ids (disagreeing votes of the two judges).
    - ``alpha``: Krippendorff's alpha (nominal) among the human judges, the LLM judges (when two
      or more) and all judges: group, judges, items (with at least two labels), values (labels
      in those items), alpha, lower, upper.
    - ``nodes`` (with a tree and LLM judges): per LLM judge and node (the root, every top-level
      node, deeper nodes with at least ``min_node_votes`` compared items; ``min_node_votes`` = 50
      keeps a Wilson half-width under about 0.14): judge, node_id, depth, description, items,
      disagree, disagreement, lower, upper, p_value (two-sided binomial against the judge's
      overall disagreement rate), q_value (BH over the non-root rows), flagged, battle_ids (the
      LLM vote then the human majority's votes of each disagreeing item). Sorted by
      disagreement, highest first.
    - ``voters`` (human judges): judge, votes, items, crowd_items (items with a majority of the
      *other* humans), crowd_agree, crowd_agreement, llm_comparisons, llm_agreement (share of
      LLM judges' labels equal to the voter's), expected (pooled crowd agreement of all other
      humans), p_value (one-sided binomial: agrees with the crowd less often than expected),
      q_value (BH across voters), flagged (q <= ``alpha``, or p <= ``alpha`` when ``fdr`` is
      False; never with fewer than ``min_votes`` crowd items), battle_ids (votes against a
      crowd majority, clearest majority first).

    Headline: agreement of the LLM judges (pooled) with the human majority, with its bootstrap
    interval; without LLM judges or humans, Krippendorff's alpha among all judges. Not applicable
    when no prompt ids or no two judges share ``min_items`` items.
    """
    params = {
        "level": level,
        "rounds": rounds,
        "seed": seed,
        "min_items": min_items,
        "alpha": alpha,
        "fdr": fdr,
        "min_votes": min_votes,
        "min_node_votes": min_node_votes,
        "both_bad": "counted as tie",
        "human_majority_ties": "item left out",
    }
    if v.n == 0 or "prompt_id" not in v.votes or v.votes["prompt_id"].isna().all():
        return not_applicable(AUDIT, TITLE, "The votes have no prompt ids, so no shared items.", **params)
    jl = judge_labels(v)
    n_judges = len(v.judges)
    left, right = _within_item_pairs(jl.item)
    if len(left) > MAX_PAIRS:  # keep only judges in pairs that can reach min_items (rare, huge items)
        busy = np.bincount(jl.judge, minlength=n_judges) >= min_items
        keep = busy[jl.judge[left]] & busy[jl.judge[right]]
        left, right = left[keep], right[keep]
    pair_key = jl.judge[left] * n_judges + jl.judge[right]
    keys, pair_row, shared = np.unique(pair_key, return_inverse=True, return_counts=True)
    if not (shared >= min_items).any():
        most = int(shared.max(initial=0))
        return not_applicable(
            AUDIT,
            TITLE,
            f"No two judges voted on at least {min_items} of the same items (prompt and model pair); "
            f"the most any two judges share is {most}. Agreement needs several judges per item.",
            **params,
        )

    # judge kinds: human when most of its votes are
    human_share = np.bincount(v.judge, weights=v.human.astype(float), minlength=n_judges) / np.maximum(
        np.bincount(v.judge, minlength=n_judges), 1
    )
    is_human = human_share > 0.5
    kind = np.where(is_human, "human", "llm")
    battle_ids = v.votes["battle_id"].astype(str).to_numpy()

    # human label counts per item and the human majority
    h_rows = is_human[jl.judge]
    hc = np.zeros((jl.n_items, N_LABELS))
    np.add.at(hc, (jl.item[h_rows], jl.label[h_rows]), 1)
    top = hc.max(axis=1)
    unique_top = ((hc == top[:, None]).sum(axis=1) == 1) & (top > 0)
    majority = np.where(unique_top, hc.argmax(axis=1), -1)
    margin = top - np.sort(hc, axis=1)[:, -2]
    n_humans = hc.sum(axis=1)
    no_majority = int(((n_humans > 0) & ~unique_top).sum())

    # comparisons: (row, item, x, y, vote_x, vote_y); vote_y -1 for the human majority
    comp: list[pd.DataFrame] = []
    group_names: list[str] = []

    def add(names: list[str], row, item, x, y, vx, vy) -> None:
        """Comparisons of rows ``len(group_names) + row`` (row: scalar or per comparison)."""
        frame = {"row": len(group_names) + row, "item": item, "x": x, "y": y, "vx": vx, "vy": vy}
        comp.append(pd.DataFrame(frame, copy=False))
        group_names.extend(names)

    # each LLM judge with >= min_items items that have a human majority, vs that majority
    llm_rows = ~h_rows & (majority[jl.item] >= 0)
    per_judge = np.bincount(jl.judge[llm_rows], minlength=n_judges)
    shown = np.flatnonzero(per_judge >= min_items)
    rank = np.full(n_judges, -1)
    rank[shown] = np.arange(len(shown))
    majority_rows = list(range(len(group_names), len(group_names) + len(shown)))
    sel = llm_rows & (rank[jl.judge] >= 0)
    add(
        [f"{v.judges[j]} vs {MAJORITY}" for j in shown],
        rank[jl.judge[sel]],
        jl.item[sel],
        jl.label[sel],
        majority[jl.item[sel]],
        jl.vote[sel],
        np.full(sel.sum(), -1),
    )
    pooled_majority = None
    if len(majority_rows) > 1:
        pooled_majority = len(group_names)
        add(
            [f"LLM judges (pooled) vs {MAJORITY}"],
            0,
            jl.item[llm_rows],
            jl.label[llm_rows],
            majority[jl.item[llm_rows]],
            jl.vote[llm_rows],
            np.full(llm_rows.sum(), -1),
        )
    elif majority_rows:
        pooled_majority = majority_rows[0]
    kl, kr = kind[jl.judge[left]], kind[jl.judge[right]]
    pooled_kind_rows = {}
    for name, sel in (
        ("human vs human (pooled over pairs)", (kl == "human") & (kr == "human")),
        ("human vs LLM (pooled over pairs)", kl != kr),
        ("LLM vs LLM (pooled over pairs)", (kl == "llm") & (kr == "llm")),
    ):
        if sel.sum() >= min_items:
            pooled_kind_rows[name] = len(group_names)
            # orient human-LLM comparisons as (human, llm)
            flip = sel & (kl == "llm") & (kr == "human")
            a_rows, b_rows = np.where(flip, right, left)[sel], np.where(flip, left, right)[sel]
            add(
                [name],
                0,
                jl.item[a_rows],
                jl.label[a_rows],
                jl.label[b_rows],
                jl.vote[a_rows],
                jl.vote[b_rows],
            )
    n_group_rows = len(group_names)
    eligible = np.flatnonzero(shared >= min_items)
    el_rank = np.full(len(keys), -1)
    el_rank[eligible] = np.arange(len(eligible))
    in_el = el_rank[pair_row] >= 0
    comp.append(
        pd.DataFrame(
            {
                "row": n_group_rows + el_rank[pair_row[in_el]],
                "item": jl.item[left[in_el]],
                "x": jl.label[left[in_el]],
                "y": jl.label[right[in_el]],
                "vx": jl.vote[left[in_el]],
                "vy": jl.vote[right[in_el]],
            }
        )
    )
    c = pd.concat(comp, ignore_index=True)
    n_rows = n_group_rows + len(eligible)
    cx, cy, crow, citem = (c[k].to_numpy(np.int64) for k in ("x", "y", "row", "item"))
    cell = crow * N_LABELS * N_LABELS + cx * N_LABELS + cy
    conf = np.bincount(cell, minlength=n_rows * N_LABELS * N_LABELS).reshape(n_rows, N_LABELS, N_LABELS)
    n_comp = conf.sum(axis=(1, 2))
    agree = np.trace(conf, axis1=1, axis2=2)
    kappa = kappa_from_confusion(conf)

    # items in any comparison; per-item coincidences for Krippendorff's alpha
    used, used_idx = np.unique(citem, return_inverse=True)
    ac = np.zeros((jl.n_items, N_LABELS))
    np.add.at(ac, (jl.item, jl.label), 1)
    llm_c = ac - hc
    alpha_groups = []
    if is_human.sum() >= 2:
        alpha_groups.append(("human judges", hc, int(is_human.sum())))
    if (~is_human).sum() >= 2:
        alpha_groups.append(("LLM judges", llm_c, int((~is_human).sum())))
    alpha_groups.append(("all judges", ac, n_judges))
    coinc = [item_coincidences(cnt[used]).reshape(len(used), -1) for _, cnt, _ in alpha_groups]

    # one bootstrap over the compared items for every kappa, pooled agreement and alpha
    design = sparse.csr_matrix(
        (np.ones(len(c)), (used_idx, cell)), shape=(len(used), n_rows * N_LABELS * N_LABELS)
    ).T.tocsr()
    boot_kappa = np.empty((rounds, n_rows))
    boot_agree = np.empty((rounds, n_rows))
    boot_alpha = np.empty((rounds, len(alpha_groups)))
    done = 0
    for w in _boot_weights(len(used), rounds, seed):
        r = len(w)
        bc = (design @ w.T).T.reshape(r, n_rows, N_LABELS, N_LABELS)
        boot_kappa[done : done + r] = kappa_from_confusion(bc)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot_agree[done : done + r] = np.trace(bc, axis1=2, axis2=3) / bc.sum(axis=(2, 3))
        for g, o in enumerate(coinc):
            boot_alpha[done : done + r, g] = alpha_from_coincidence((w @ o).reshape(r, N_LABELS, N_LABELS))
        done += r
    k_lo, k_hi = percentile_interval(boot_kappa, level)
    a_lo, a_hi = percentile_interval(boot_agree, level)
    w_lo, w_hi = wilson_interval(agree, n_comp, level)

    # evidence: disagreeing comparisons, clearest human majority first
    c["margin"] = margin[citem]
    dis = c[c["x"] != c["y"]].sort_values(["row", "margin"], ascending=[True, False], kind="stable")
    maj_votes = _majority_votes(jl, is_human, majority, np.unique(dis.loc[dis["vy"] < 0, "item"]))
    evidence = [[battle_ids[r] for r in rows] for rows in _evidence(dis, maj_votes, n_rows)]

    pooled = np.zeros(n_rows, bool)
    pooled[[pooled_majority] if pooled_majority is not None and len(majority_rows) > 1 else []] = True
    pooled[list(pooled_kind_rows.values())] = True
    groups = pd.DataFrame(
        {
            "comparison": group_names,
            "items": n_comp[:n_group_rows],
            "agree": agree[:n_group_rows],
            "agreement": agree[:n_group_rows] / n_comp[:n_group_rows],
            "lower": np.where(pooled, a_lo, w_lo)[:n_group_rows],
            "upper": np.where(pooled, a_hi, w_hi)[:n_group_rows],
            "interval": np.where(pooled[:n_group_rows], "item bootstrap", "wilson"),
            "kappa": [
                float(cohen_kappa_score(g["x"], g["y"], labels=list(range(N_LABELS))))
                for _, g in c[c["row"] < n_group_rows].groupby("row", sort=True)
            ]
            if n_group_rows
            else [],
            "kappa_lower": k_lo[:n_group_rows],
            "kappa_upper": k_hi[:n_group_rows],
            "battle_ids": evidence[:n_group_rows],
        }
    )
    ja, jb = keys[eligible] // n_judges, keys[eligible] % n_judges
    sl = slice(n_group_rows, n_rows)
    pairs = pd.DataFrame(
        {
            "judge_1": np.asarray(v.judges, dtype=object)[ja],
            "kind_1": kind[ja],
            "judge_2": np.asarray(v.judges, dtype=object)[jb],
            "kind_2": kind[jb],
            "items": n_comp[sl],
            "agree": agree[sl],
            "agreement": agree[sl] / n_comp[sl],
            "lower": w_lo[sl],
            "upper": w_hi[sl],
            "kappa": kappa[sl],
            "kappa_lower": k_lo[sl],
            "kappa_upper": k_hi[sl],
            "battle_ids": evidence[sl],
        }
    ).sort_values(["kappa", "items"], ascending=[True, False], kind="stable", ignore_index=True)
    al_lo, al_hi = percentile_interval(boot_alpha, level)
    pairs_alpha = []
    for g, (name, cnt, n_j) in enumerate(alpha_groups):
        m = cnt.sum(axis=1)
        pairs_alpha.append(
            {
                "group": name,
                "judges": n_j,
                "items": int((m >= 2).sum()),
                "values": int(m[m >= 2].sum()),
                "alpha": krippendorff_alpha(cnt),
                "lower": float(al_lo[g]),
                "upper": float(al_hi[g]),
            }
        )
    alpha_table = pd.DataFrame(pairs_alpha)
    tables = {"groups": groups, "pairs": pairs, "alpha": alpha_table}

    if majority_rows and v.tree_id is not None and len(v.nodes):
        tables["nodes"] = _node_table(
            v, jl, c, majority_rows, group_names, maj_votes, level, alpha, fdr, min_node_votes
        )
    voters = _voter_table(v, jl, is_human, hc, llm_c, alpha, fdr, min_votes)
    if len(voters):
        tables["voters"] = voters

    # headline and summary
    if pooled_majority is not None:
        row = groups.iloc[pooled_majority]
        headline = {
            "label": "LLM judges' agreement with the human majority",
            "estimate": float(row["agreement"]),
            "lower": float(row["lower"]),
            "upper": float(row["upper"]),
            "p_value": None,
            "n": int(row["items"]),
            "unit": "share of items (LLM judge x item)",
        }
    else:
        a_row = alpha_table.iloc[-1]
        headline = {
            "label": "Krippendorff's alpha among all judges",
            "estimate": float(a_row["alpha"]),
            "lower": float(a_row["lower"]),
            "upper": float(a_row["upper"]),
            "p_value": None,
            "n": int(a_row["items"]),
            "unit": "alpha (1 perfect agreement, 0 chance)",
        }
    summary = _summary(groups, alpha_table, tables.get("nodes"), tables.get("voters"), headline, no_majority)
    params["items"] = int(jl.n_items)
    params["items_without_human_majority"] = no_majority
    return Finding(
        audit=AUDIT,
        title=TITLE,
        summary=summary,
        headline=headline,
        tables=tables,
        plot={
            "table": "groups",
            "kind": "interval",
            "x": "agreement",
            "y": "comparison",
            "lower": "lower",
            "upper": "upper",
            "label": "share of shared items on which the judges agree",
        },
        params=params,
    )


def _majority_votes(
    jl: JudgeLabels, is_human: np.ndarray, majority: np.ndarray, items: np.ndarray
) -> pd.Series:
    """For each item in ``items``: vote rows of the human judges whose label is the majority."""
    sel = is_human[jl.judge] & np.isin(jl.item, items)
    sel &= jl.label == majority[jl.item]
    frame = pd.DataFrame({"item": jl.item[sel], "vote": jl.vote[sel]})
    return frame.groupby("item")["vote"].agg(lambda s: s.to_numpy())


def _evidence(dis: pd.DataFrame, maj_votes: pd.Series, n_rows: int) -> list[list[int]]:
    """Vote rows per comparison row: for each disagreeing item, x's vote then y's (the human
    majority's votes when y is the majority), at most EXAMPLE_IDS."""
    out: list[list[int]] = [[] for _ in range(n_rows)]
    head = dis.groupby("row", sort=False).head(EXAMPLE_IDS)
    for row, item, vx, vy in zip(
        head["row"].to_numpy(),
        head["item"].to_numpy(),
        head["vx"].to_numpy(),
        head["vy"].to_numpy(),
        strict=True,
    ):
        ids = out[row]
        if len(ids) >= EXAMPLE_IDS:
            continue
        ids.append(int(vx))
        ids.extend(int(x) for x in (maj_votes.get(item, []) if vy < 0 else [vy]))
        del ids[EXAMPLE_IDS:]
    return out


def _node_table(
    v: AuditVotes,
    jl: JudgeLabels,
    c: pd.DataFrame,
    majority_rows: list[int],
    group_names: list[str],
    maj_votes: pd.Series,
    level: float,
    alpha: float,
    fdr: bool,
    min_node_votes: int,
) -> pd.DataFrame:
    """Disagreement of each LLM judge with the human majority per tree node (see judge_agreement)."""
    nodes = v.nodes
    anc = ancestor_matrix(nodes["parent_row"].to_numpy())
    depth = nodes["depth"].to_numpy()
    battle_ids = v.votes["battle_id"].astype(str).to_numpy()
    root = int(np.flatnonzero(nodes["parent_row"].to_numpy() < 0)[0])
    rows = []
    for r in majority_rows:
        cr = c[c["row"] == r].sort_values("margin", ascending=False, kind="stable")
        items = cr["item"].to_numpy()
        leaf = v.member_row[jl.item_vote[items]]
        leaf = np.where(leaf >= 0, leaf, root)
        member = (
            anc
            @ sparse.csr_matrix(
                (np.ones(len(items)), (leaf, np.arange(len(items)))), shape=(len(nodes), len(items))
            )
        ).tocsr()
        dis = (cr["x"] != cr["y"]).to_numpy()
        n = np.asarray(member.sum(axis=1)).ravel()
        k = member @ dis.astype(float)
        judge = group_names[r].removesuffix(f" vs {MAJORITY}")
        for i in np.flatnonzero((n > 0) & ((depth <= 1) | (n >= min_node_votes))):
            hit = member.indices[member.indptr[i] : member.indptr[i + 1]]
            hit = np.sort(hit[dis[hit]])[:EXAMPLE_IDS]  # sorted by margin already
            ids: list[str] = []
            for j in hit:
                ids.append(battle_ids[cr["vx"].iat[j]])
                ids.extend(battle_ids[x] for x in maj_votes.get(items[j], []))
                if len(ids) >= EXAMPLE_IDS:
                    break
            rows.append(
                {
                    "judge": judge,
                    "node_id": int(nodes["node_id"].iat[i]),
                    "depth": int(depth[i]),
                    "description": nodes["description"].iat[i],
                    "items": int(n[i]),
                    "disagree": int(k[i]),
                    "overall": k[root] / n[root],
                    "battle_ids": ids[:EXAMPLE_IDS],
                }
            )
    table = pd.DataFrame(rows)
    table["disagreement"] = table["disagree"] / table["items"]
    table["lower"], table["upper"] = wilson_interval(table["disagree"], table["items"], level)
    is_root = (table["depth"] == 0).to_numpy()
    p = _binom_two_sided(table["disagree"], table["items"], table["overall"])
    table["p_value"] = np.where(is_root, np.nan, p)
    table["q_value"] = bh_adjust(table["p_value"].to_numpy())
    test = table["q_value"] if fdr else table["p_value"]
    table["flagged"] = (test <= alpha) & ~is_root & (table["items"] >= min_node_votes)
    cols = ["judge", "node_id", "depth", "description", "items", "disagree", "disagreement", "lower", "upper"]
    cols += ["overall", "p_value", "q_value", "flagged", "battle_ids"]
    return table[cols].sort_values("disagreement", ascending=False, kind="stable", ignore_index=True)


def _voter_table(
    v: AuditVotes,
    jl: JudgeLabels,
    is_human: np.ndarray,
    hc: np.ndarray,
    llm_c: np.ndarray,
    alpha: float,
    fdr: bool,
    min_votes: int,
) -> pd.DataFrame:
    """Each human judge's agreement with the majority of the other humans on its items and with
    the LLM judges (see judge_agreement)."""
    sel = is_human[jl.judge]
    item, label, judge, vote = jl.item[sel], jl.label[sel], jl.judge[sel], jl.vote[sel]
    if not len(item):
        return pd.DataFrame()
    other = hc[item].copy()
    other[np.arange(len(item)), label] -= 1
    top = other.max(axis=1)
    has = ((other == top[:, None]).sum(axis=1) == 1) & (top > 0)
    if not has.any():
        return pd.DataFrame()
    loo_margin = top - np.sort(other, axis=1)[:, -2]
    agrees = has & (other.argmax(axis=1) == label)
    n_j = len(v.judges)
    crowd_n = np.bincount(judge, weights=has, minlength=n_j)
    crowd_k = np.bincount(judge, weights=agrees, minlength=n_j)
    llm_n_row = llm_c[item].sum(axis=1)
    llm_n = np.bincount(judge, weights=llm_n_row, minlength=n_j)
    llm_k = np.bincount(judge, weights=llm_c[item, label], minlength=n_j)
    items = np.bincount(judge, minlength=n_j)
    votes = np.bincount(v.judge, minlength=n_j)
    humans = np.flatnonzero(is_human & (items > 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = (crowd_k.sum() - crowd_k) / (crowd_n.sum() - crowd_n)
        p = np.where(crowd_n > 0, stats.binom.cdf(crowd_k, crowd_n, expected), np.nan)
        table = pd.DataFrame(
            {
                "judge": np.asarray(v.judges, dtype=object)[humans],
                "votes": votes[humans],
                "items": items[humans],
                "crowd_items": crowd_n[humans].astype(np.int64),
                "crowd_agree": crowd_k[humans].astype(np.int64),
                "crowd_agreement": (crowd_k / crowd_n)[humans],
                "llm_comparisons": llm_n[humans].astype(np.int64),
                "llm_agreement": (llm_k / llm_n)[humans],
                "expected": expected[humans],
                "p_value": p[humans],
            }
        )
    table["q_value"] = bh_adjust(table["p_value"].to_numpy())
    test = table["q_value"] if fdr else table["p_value"]
    table["flagged"] = (test <= alpha) & (table["crowd_items"] >= min_votes)
    bad = has & ~agrees
    ev = pd.DataFrame({"judge": judge[bad], "margin": loo_margin[bad], "id": vote[bad]})
    ev = ev.sort_values(["judge", "margin"], ascending=[True, False], kind="stable")
    ev = ev.groupby("judge").head(EXAMPLE_IDS)
    ids = v.votes["battle_id"].astype(str).to_numpy()
    lists = _group_lists(ev["judge"].to_numpy(), ids[ev["id"].to_numpy()])
    table["battle_ids"] = [lists.get(j, []) for j in humans]
    return table.sort_values(
        ["flagged", "p_value"], ascending=[False, True], kind="stable", ignore_index=True
    )


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.0f}%"


def _summary(
    groups: pd.DataFrame,
    alpha_table: pd.DataFrame,
    nodes: pd.DataFrame | None,
    voters: pd.DataFrame | None,
    headline: dict,
    no_majority: int,
) -> str:
    parts = []
    maj = groups[groups["comparison"].str.endswith(MAJORITY)]
    for _, r in maj.iterrows():
        parts.append(
            f"{r['comparison']}: agree on {_pct(r['agreement'])} of {r['items']} items "
            f"({_pct(r['lower'])}–{_pct(r['upper'])}), kappa {r['kappa']:.2f} "
            f"({r['kappa_lower']:.2f}–{r['kappa_upper']:.2f})."
        )
    for _, r in groups[groups["comparison"].str.contains("pooled over pairs")].iterrows():
        parts.append(
            f"{r['comparison'].removesuffix(' (pooled over pairs)')}, pooled over judge pairs: "
            f"{_pct(r['agreement'])} agreement, kappa {r['kappa']:.2f}."
        )
    parts.append(
        "Krippendorff's alpha: "
        + ", ".join(
            f"{r['group']} {r['alpha']:.2f} ({r['lower']:.2f}–{r['upper']:.2f}, {r['items']} items)"
            for _, r in alpha_table.iterrows()
        )
        + "."
    )
    if nodes is not None and len(nodes):
        deep = nodes[nodes["depth"] > 0]
        if len(deep):
            top = deep.iloc[0]
            parts.append(
                f"Most disagreement with the human majority: {top['judge']} at node {top['node_id']} "
                f"({_pct(top['disagreement'])} of {top['items']} items vs {_pct(top['overall'])} overall; "
                f"{int(deep['flagged'].sum())} node rows significantly off the judge's overall rate)."
            )
    if voters is not None and len(voters):
        parts.append(
            f"{int(voters['flagged'].sum())} of {len(voters)} human judges agree with the rest of the crowd "
            "significantly less often than the others."
        )
    note = "Labels are relative to each prompt's model pair; 'both bad' counts as a tie"
    if len(maj):
        note += (
            f"; {no_majority} items with a tied human vote have no majority and are left out of "
            "majority comparisons"
        )
    parts.append(note + ".")
    return " ".join(parts)

"""Design checks: can these votes identify what an analysis would report?

A number must not be shown where the data cannot identify it. Each check reads only the votes'
design (who met whom, on which side, judged by whom) and answers in one sentence:

* :func:`comparison_groups`: models that never meet, directly or through others, form separate
  groups; ratings of different groups are not comparable (each group's scale floats freely).
* :func:`position_identifiable`: a left-side advantage is told apart from the models' strengths
  only if the pairs are not always shown the same way round (AlpacaEval puts its baseline on one
  side in every vote: there, "left wins more" is the baseline's strength).
* :func:`thin_models`: models with too few battles for their interval to mean much.
* :func:`node_sentence`: a capability node with fewer than :data:`MIN_NODE_ITEMS` prompts gets no
  interval in the node scores (EvalTree's rule); a leaderboard scoped to it says so.
* :func:`judges_sentence`: votes that all come from LLM judges, or all from one judge, measure
  those judges' preferences; intervals resample their votes, not judges.

(Audits that need several judges already say so themselves, e.g. "Needs votes from at least two
judges to compare them".)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from .ratings import index_models

MIN_BATTLES = 20  # a model with fewer battles gets a warning beside its interval
MIN_NODE_ITEMS = 5  # a node with fewer prompts has no interval in the node scores (scores.MIN_N, EvalTree)


def comparison_groups(votes: pd.DataFrame) -> list[list[str]]:
    """The groups of models linked by battles (connected components of the comparison graph),
    biggest first; one group when every model is compared, directly or not, with every other."""
    if votes.empty:
        return []
    models, a, b = index_models(votes)
    n = len(models)
    graph = sparse.csr_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    count, label = connected_components(graph, directed=False)
    groups = [sorted(m for m, g in zip(models, label, strict=True) if g == k) for k in range(count)]
    return sorted(groups, key=lambda g: (-len(g), g))


def groups_sentence(groups: list[list[str]]) -> str | None:
    """One sentence when the models fall into several groups, else None."""
    if len(groups) <= 1:
        return None
    shown = "; ".join(", ".join(g[:4]) + (f" (+{len(g) - 4} more)" if len(g) > 4 else "") for g in groups[:4])
    return (
        f"The models fall into {len(groups)} groups that never meet ({shown}): ratings are comparable "
        "only within a group, so compare ranks and intervals inside the 'group' column only."
    )


def position_identifiable(votes: pd.DataFrame) -> bool:
    """Whether a constant left-side term can be told apart from the models' strengths: the
    design rows (e_a - e_b, 1) of the distinct ordered pairs must gain rank from the constant.

    False when, e.g., one baseline is always on the same side (then "1" equals the baseline's
    strength difference on every row), or a single ordered pair is all there is."""
    decisive = votes[votes["winner"].isin(["model_a", "model_b"])]
    models, a, b = index_models(decisive)
    return left_term_identifiable(a, b, len(models))


def left_term_identifiable(a: np.ndarray, b: np.ndarray, n_models: int) -> bool:
    """:func:`position_identifiable` on model codes: ``a``, ``b`` (n,) the left and right model
    of each decisive vote."""
    if len(a) == 0:
        return False
    pairs = np.unique(np.column_stack([a, b]), axis=0)
    design = np.zeros((len(pairs), n_models))
    design[np.arange(len(pairs)), pairs[:, 0]] += 1.0
    design[np.arange(len(pairs)), pairs[:, 1]] -= 1.0
    with_left = np.column_stack([design, np.ones(len(pairs))])
    return np.linalg.matrix_rank(with_left) > np.linalg.matrix_rank(design)


POSITION_SENTENCE = (
    "The left-side effect cannot be told apart from the models' strengths here: the pairs are "
    "always shown the same way round (for example a baseline always on one side), so a left "
    "advantage and that model's strength predict the same votes and no estimate is shown."
)


def thin_models(table: pd.DataFrame, min_battles: int = MIN_BATTLES) -> list[str]:
    """The models of a leaderboard table (model, battles) with fewer than ``min_battles``."""
    if "battles" not in table.columns:
        return []
    return table.loc[table["battles"] < min_battles, "model"].astype(str).tolist()


def thin_sentence(models: list[str], min_battles: int = MIN_BATTLES) -> str | None:
    """One sentence naming the models with too few battles, else None."""
    if not models:
        return None
    names = ", ".join(models[:6]) + (f" and {len(models) - 6} more" if len(models) > 6 else "")
    return (
        f"{names} {'has' if len(models) == 1 else 'have'} fewer than {min_battles} battles: "
        "such intervals rest on a handful of votes and their rank can move a lot."
    )


def node_sentence(
    node: int, description: str | None, items: int, min_items: int = MIN_NODE_ITEMS
) -> str | None:
    """One sentence when capability node ``node`` holds fewer than ``min_items`` prompts with data
    (``items``: prompts with votes, or items with results, under the node), else None."""
    if items >= min_items:
        return None
    name = f"Node {node}" + (f" ({description})" if description else "")
    return (
        f"{name} holds {items} {'prompt' if items == 1 else 'prompts'} with data, fewer than the {min_items} "
        "a node needs for an interval: its node scores show none, and the numbers here describe those "
        "prompts, not the capability."
    )


def judges_sentence(votes: pd.DataFrame) -> str | None:
    """One sentence when every vote comes from LLM judges or from a single judge, else None.
    ``votes`` has ``judge`` and ``judge_kind`` ('human' | 'llm') columns (missing: no check)."""
    if votes.empty or "judge" not in votes.columns:
        return None
    judges = sorted(votes["judge"].astype(str).unique())
    llm = "judge_kind" in votes.columns and bool((votes["judge_kind"] == "llm").all())
    if llm:
        who = f"one LLM judge ({judges[0]})" if len(judges) == 1 else f"{len(judges)} LLM judges"
        return (
            f"Every vote comes from {who}: these ratings measure LLM-judge preference, with its known "
            "biases (answer length, position, the judge's own family), not human preference."
        )
    if len(judges) == 1:
        return (
            f"Every vote comes from one judge ({judges[0]}): that judge's own biases cannot average "
            "out, and the intervals resample their votes, not judges."
        )
    return None


def leaderboard_notes(votes: pd.DataFrame, table: pd.DataFrame) -> tuple[list[str], dict[str, int]]:
    """(sentences, group of each model) for a pairwise leaderboard: separate comparison groups,
    thin models, an all-LLM or single-judge jury. The group map is empty when all models form one group."""
    groups = comparison_groups(votes)
    found = (groups_sentence(groups), thin_sentence(thin_models(table)), judges_sentence(votes))
    notes = [s for s in found if s]
    group_of = {m: k + 1 for k, g in enumerate(groups) for m in g} if len(groups) > 1 else {}
    return notes, group_of

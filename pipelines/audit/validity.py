"""Audit validity on the simulator: votes with planted voter biases, and detection scores.

:func:`simulated_votes` runs :func:`pipelines.simulate.simulate` and turns its
``votes_truth.parquet`` into :class:`~.frame.AuditVotes` (no store needed), with a one-level
tree whose nodes are the simulator's capability groups (each prompt in its first group, the
rest in 'other'), so per-node audits have nodes with known content. :func:`detection` scores a
per-voter table against the planted voter types.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..simulate import simulate
from .frame import AuditVotes

WINNER_LABELS = {"tie (bothbad)": "tie_bothbad"}


def group_tree(truth: dict) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(nodes, members, other) of a one-level tree over the truth's groups: root 0, group g -> node g+1,
    'other' last. Each prompt belongs to the first group that lists it."""
    groups = truth["groups"]
    rows = [{"node_id": 0, "parent_id": None, "depth": 0, "size": 0, "description": "all prompts"}]
    seen: dict[str, int] = {}
    for g, group in enumerate(groups, start=1):
        rows.append(
            {"node_id": g, "parent_id": 0, "depth": 1, "size": 0, "description": group["description"]}
        )
        for pid in group["prompt_ids"]:
            seen.setdefault(pid, g)
    other = len(groups) + 1
    rows.append({"node_id": other, "parent_id": 0, "depth": 1, "size": 0, "description": "other prompts"})
    nodes = pd.DataFrame(rows)
    members = pd.DataFrame({"prompt_id": list(seen), "node_id": list(seen.values())})
    return nodes, members.assign(node_id=members["node_id"].astype(np.int64)), other


def simulated_votes(out_dir: Path, **simulate_args) -> tuple[AuditVotes, dict]:
    """Simulate (``simulate_args`` as :func:`pipelines.simulate.simulate`; vote truth on) and
    return the votes as AuditVotes (with a ``voter_type`` column) and the truth dict."""
    simulate(Path(out_dir), vote_truth=True, **simulate_args)
    truth = json.loads((Path(out_dir) / "truth.json").read_text())
    votes = pd.read_parquet(Path(out_dir) / "votes_truth.parquet")
    votes = votes.rename(columns={"identity_leak_a": "leak_a", "identity_leak_b": "leak_b"})
    for col in ("prompt_id", "model_a", "model_b", "judge", "voter_type", "winner"):
        votes[col] = votes[col].astype(str)
    votes["winner"] = votes["winner"].replace(WINNER_LABELS)
    votes["battle_id"] = votes["question_id"]
    nodes, members, other = group_tree(truth)
    members = pd.concat(
        [
            members,
            pd.DataFrame({"prompt_id": sorted(set(votes["prompt_id"]) - set(members["prompt_id"]))}).assign(
                node_id=other
            ),
        ],
        ignore_index=True,
    )
    av = AuditVotes.from_frame(
        votes, dataset="simulated", tree_id="simulated-groups", nodes=nodes, members=members
    )
    return av, truth


def voter_truth(truth: dict) -> pd.DataFrame:
    """Planted voters: judge, type, votes, and each type's parameters as columns."""
    rows = [
        {"judge": v["judge"], "type": v["type"], "votes": v["votes"], **v["params"]} for v in truth["voters"]
    ]
    return pd.DataFrame(rows)


def detection(
    table: pd.DataFrame,
    truth: dict,
    positive_types: tuple[str, ...],
    *,
    min_votes: int = 20,
    flag_column: str = "flagged",
) -> dict:
    """Recall and precision of a per-voter table's flags (``judge``, ``flag_column``) against the
    planted types, over voters with at least ``min_votes`` votes. A flagged voter of a type not in
    ``positive_types`` is a false positive; voters missing from ``table`` count as not flagged.
    Returns {recall, precision, tp, fp, fn, positives, eligible}."""
    planted = voter_truth(truth)
    planted = planted[planted["votes"] >= min_votes]
    flagged = set(table.loc[table[flag_column].astype(bool), "judge"].astype(str))
    is_pos = planted["type"].isin(positive_types).to_numpy()
    hit = planted["judge"].isin(flagged).to_numpy()
    tp, fp, fn = int((is_pos & hit).sum()), int((~is_pos & hit).sum()), int((is_pos & ~hit).sum())
    return {
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "positives": int(is_pos.sum()),
        "eligible": len(planted),
    }

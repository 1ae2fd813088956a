"""Run the voter audits on one dataset: load the votes once, call each audit, time it.

``run_audit(con, dataset)`` is what ``arenatree audit`` and the dashboard's Voter audit page call.
The audits are listed in :data:`AUDITS` (key -> module, function, what it asks); each is a plain
function of :class:`~.frame.AuditVotes` returning a :class:`~.result.Finding`, called with the
shared parameters its signature accepts.
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import duckdb

from .. import __version__
from ..battles import NO_FILTERS, Filters
from ..errors import ArenatreeError
from ..tree.read import list_trees, resolve_tree
from .frame import AuditVotes, load_audit_votes
from .result import Finding

# key -> (module under pipelines.audit, function). Order = the order of the report and the page.
AUDITS: dict[str, tuple[str, str]] = {
    "anomalous_voters": ("anomalous", "anomalous_voters"),
    "voter_types": ("voter_types", "voter_types"),
    "position": ("position", "position_preference"),
    "style": ("style_bias", "style_preference"),
    "refusal": ("refusal", "refusal_handling"),
    "inversions": ("inversions", "ranking_inversions"),
    "ties": ("ties", "ties_and_bothbad"),
    "identity_leakage": ("leakage", "identity_leakage"),
    "concentrated_voters": ("concentrated", "concentrated_voters"),
    "robustness": ("robustness", "robustness"),
    "judge_agreement": ("agreement", "judge_agreement"),
}

ProgressFn = Callable[[str, int, int], None]


def audit_function(key: str) -> Callable[..., Finding]:
    """The function of audit ``key`` (ArenatreeError for an unknown key)."""
    if key not in AUDITS:
        raise ArenatreeError(f"unknown audit {key!r}; choose from {', '.join(AUDITS)}")
    module, name = AUDITS[key]
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


def call_audit(key: str, votes: AuditVotes, params: dict) -> Finding:
    """Run one audit with the ``params`` its signature accepts; the finding gets its wall time."""
    fn = audit_function(key)
    accepted = inspect.signature(fn).parameters
    t0 = time.perf_counter()
    finding = fn(votes, **{k: v for k, v in params.items() if k in accepted and v is not None})
    return replace(finding, seconds=time.perf_counter() - t0)


@dataclass
class Audit:
    """Every finding of one audit run, with what produced it."""

    dataset: str
    filters: Filters
    tree_id: str | None
    params: dict
    votes: int
    voters: int
    models: int
    findings: list[Finding] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    run_id: str | None = None  # set when the audit is stored (pipelines.audit.stored)

    def finding(self, key: str) -> Finding | None:
        """The finding of audit ``key``, or None when it was not run."""
        return next((f for f in self.findings if f.audit == key), None)

    @classmethod
    def from_dict(cls, doc: dict) -> Audit:
        """The inverse of :meth:`as_dict` (e.g. a stored run)."""
        return cls(
            dataset=doc["dataset"],
            filters=Filters.from_key(doc["filters"]),
            tree_id=doc["tree_id"],
            params=dict(doc["params"]),
            votes=int(doc["votes"]),
            voters=int(doc["voters"]),
            models=int(doc["models"]),
            findings=[Finding.from_dict(f) for f in doc["findings"]],
            seconds=dict(doc.get("seconds", {})),
            run_id=doc.get("run_id"),
        )

    def as_dict(self) -> dict:
        """JSON-able dict: what ``arenatree audit --json`` prints."""
        return {
            "dataset": self.dataset,
            "run_id": self.run_id,
            "filters": self.filters.key(),
            "tree_id": self.tree_id,
            "params": self.params,
            "votes": self.votes,
            "voters": self.voters,
            "models": self.models,
            "tool_version": __version__,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "findings": [f.as_dict() for f in self.findings],
        }


def default_tree(con: duckdb.DuckDBPyConnection, dataset: str, tree_id: str | None) -> str | None:
    """``tree_id`` checked against the dataset, else the dataset's newest tree, else None."""
    if tree_id:
        return resolve_tree(con, dataset, tree_id)
    trees = list_trees(con, dataset)  # newest first
    return None if trees.empty else str(trees["tree_id"].iloc[0])


def check_settings(*, alpha: float, min_votes: int, rounds: int, level: float) -> None:
    """Raise ArenatreeError (one line) unless 0 < alpha, level < 1 and rounds, min_votes >= 1."""
    if not 0 < alpha < 1 or not 0 < level < 1:
        raise ArenatreeError(f"need 0 < alpha < 1 and 0 < level < 1 (got {alpha}, {level})")
    if rounds < 1 or min_votes < 1:
        raise ArenatreeError(f"need rounds >= 1 and min_votes >= 1 (got {rounds}, {min_votes})")


def audit_votes(
    votes: AuditVotes,
    *,
    only: Sequence[str] | None = None,
    alpha: float = 0.05,
    fdr: bool = True,
    min_votes: int = 20,
    seed: int = 0,
    rounds: int = 100,
    level: float = 0.95,
    progress: ProgressFn | None = None,
) -> list[Finding]:
    """Run the audits ``only`` (default all, in :data:`AUDITS` order) on encoded votes.

    ``alpha``: test level (per-voter and per-node flags; BH false-discovery rate when ``fdr``).
    ``min_votes``: voters with fewer votes are reported but never flagged. ``rounds``: bootstrap
    rounds. ``level``: interval coverage. ``progress(key, done, total)`` after each audit."""
    keys = list(AUDITS) if not only else list(only)
    for key in keys:
        audit_function(key)  # unknown keys fail before any work
    check_settings(alpha=alpha, min_votes=min_votes, rounds=rounds, level=level)
    params = {
        "alpha": alpha,
        "fdr": fdr,
        "min_votes": min_votes,
        "seed": seed,
        "rounds": rounds,
        "level": level,
    }
    findings = []
    for i, key in enumerate(keys):
        if progress is not None:
            progress(key, i, len(keys))
        findings.append(call_audit(key, votes, params))
    if progress is not None:
        progress("done", len(keys), len(keys))
    return findings


def run_audit(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    *,
    filters: Filters = NO_FILTERS,
    tree_id: str | None = None,
    use_tree: bool = True,
    only: Sequence[str] | None = None,
    alpha: float = 0.05,
    fdr: bool = True,
    min_votes: int = 20,
    seed: int = 0,
    rounds: int = 100,
    level: float = 0.95,
    progress: ProgressFn | None = None,
) -> Audit:
    """Load the dataset's votes under ``filters`` once and run the audits on them.

    The tree (for per-node findings) is ``tree_id``, else the dataset's newest tree, else none
    (per-node audits then say they need one); ``use_tree=False`` skips it. Other parameters as
    :func:`audit_votes`. Raises ArenatreeError for an unknown / non-pairwise dataset, filters that
    leave no vote, or an unknown audit key."""
    settings = {
        "alpha": alpha,
        "fdr": fdr,
        "min_votes": min_votes,
        "seed": seed,
        "rounds": rounds,
        "level": level,
    }
    t0 = time.perf_counter()
    tree = default_tree(con, dataset, tree_id) if use_tree else None
    votes = load_audit_votes(con, dataset, filters, tree)
    t1 = time.perf_counter()
    findings = audit_votes(votes, only=only, progress=progress, **settings)
    seconds = {"load": t1 - t0, **{f.audit: f.seconds for f in findings}, "total": time.perf_counter() - t0}
    return Audit(
        dataset=dataset,
        filters=filters,
        tree_id=tree,
        params={**settings, "only": list(only) if only else list(AUDITS)},
        votes=votes.n,
        voters=len(votes.judges),
        models=len(votes.models),
        findings=findings,
        seconds=seconds,
    )

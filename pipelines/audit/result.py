"""What every audit returns: a :class:`Finding` with its size, uncertainty and the votes behind it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..queries import records

EXAMPLE_IDS = 20  # battle ids kept per table row as evidence in JSON output


@dataclass
class Finding:
    """The result of one audit.

    ``audit``: short key ('anomalous_voters', 'position', ...). ``title``: heading for people.
    ``summary``: one or two sentences in plain words with the numbers. ``headline``: the main
    effect as ``{'label', 'estimate', 'lower', 'upper', 'p_value', 'n', 'unit'}`` (missing parts
    None). ``tables``: named dataframes (e.g. 'voters', 'nodes', 'pairs'); a row that is a
    finding names what it is about (``judge``, ``node_id``, ``model``...) and, in a
    ``battle_ids`` column, up to :data:`EXAMPLE_IDS` votes behind it. ``plot``: how the page
    draws it, ``{'table', 'kind': 'interval'|'bar'|'scatter'|'heatmap', 'x', 'y', 'lower',
    'upper', 'color', 'label'}`` (keys as needed). ``params``: every parameter used.
    ``applicable``: False (with ``summary`` saying why) when the data cannot answer it, e.g. no
    tree or only one judge.
    """

    audit: str
    title: str
    summary: str
    headline: dict = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    plot: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    applicable: bool = True
    seconds: float = 0.0

    def as_dict(self) -> dict:
        """JSON-able dict (tables as lists of records)."""
        return {
            "audit": self.audit,
            "title": self.title,
            "summary": self.summary,
            "applicable": self.applicable,
            "headline": {k: _plain(v) for k, v in self.headline.items()},
            "params": self.params,
            "seconds": round(self.seconds, 3),
            "tables": {name: records(df) for name, df in self.tables.items()},
        }


def not_applicable(audit: str, title: str, why: str, **params) -> Finding:
    """A finding that says why the data cannot answer the audit."""
    return Finding(audit=audit, title=title, summary=why, applicable=False, params=params)


def example_ids(battle_ids: pd.Series, groups: pd.Series, limit: int = EXAMPLE_IDS) -> pd.Series:
    """Up to ``limit`` battle ids per group (in vote order), as lists, indexed by group."""
    frame = pd.DataFrame({"g": groups.to_numpy(), "id": battle_ids.astype(str).to_numpy()})
    return frame.groupby("g", sort=False)["id"].agg(lambda s: list(s.iloc[:limit]))


def _plain(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value

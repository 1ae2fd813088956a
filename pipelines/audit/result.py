"""What every audit returns: a :class:`Finding` with its size, uncertainty and the votes behind it."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field

import pandas as pd

from ..queries import records

EXAMPLE_IDS = 20  # battle ids kept per table row as evidence in JSON output


@dataclass(frozen=True)
class Finding:
    """The result of one audit (immutable: a changed finding is a new one, ``dataclasses.replace``).

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

    @property
    def flagged(self) -> int:
        """Rows flagged across the finding's tables (voters, nodes, pairs...)."""
        return sum(int(t["flagged"].sum()) for t in self.tables.values() if "flagged" in t)

    def as_dict(self) -> dict:
        """JSON-able dict: tables as lists of records (``columns`` keeps each table's column order,
        so an empty table survives a round trip), plus the plot spec."""
        return {
            "audit": self.audit,
            "title": self.title,
            "summary": self.summary,
            "applicable": self.applicable,
            "headline": {k: _plain(v) for k, v in self.headline.items()},
            "params": self.params,
            "seconds": round(self.seconds, 3),
            "plot": self.plot,
            "columns": {name: [str(c) for c in df.columns] for name, df in self.tables.items()},
            "dtypes": {name: [str(t) for t in df.dtypes] for name, df in self.tables.items()},
            "tables": {name: records(df) for name, df in self.tables.items()},
        }

    @classmethod
    def from_dict(cls, doc: dict) -> Finding:
        """The inverse of :meth:`as_dict` (tables back as dataframes; missing numbers as NaN)."""
        columns, dtypes = doc.get("columns", {}), doc.get("dtypes", {})
        tables = {
            name: _typed(pd.DataFrame.from_records(rows, columns=columns.get(name) or None), dtypes.get(name))
            for name, rows in doc.get("tables", {}).items()
        }
        return cls(
            audit=doc["audit"],
            title=doc["title"],
            summary=doc["summary"],
            headline=dict(doc.get("headline", {})),
            tables=tables,
            plot=dict(doc.get("plot", {})),
            params=dict(doc.get("params", {})),
            applicable=bool(doc.get("applicable", True)),
            seconds=float(doc.get("seconds", 0.0)),
        )


def headline_text(headline: dict) -> str:
    """A finding's headline as one line of plain text: 'label: estimate unit [lower, upper], p = ..
    (n = ..)', the parts that are known ('' without an estimate)."""

    def known(x) -> bool:
        return x is not None and not pd.isna(x)

    h = headline or {}
    if not known(h.get("estimate")):
        return ""
    text = f"{h.get('label') or 'estimate'}: {h['estimate']:.4g}" + (f" {h['unit']}" if h.get("unit") else "")
    if known(h.get("lower")) and known(h.get("upper")):
        text += f" [{h['lower']:.4g}, {h['upper']:.4g}]"
    if known(h.get("p_value")):
        text += f", p = {h['p_value']:.2g}"
    if h.get("n") is not None:
        text += f" (n = {h['n']:,})"
    return text


def not_applicable(audit: str, title: str, why: str, **params) -> Finding:
    """A finding that says why the data cannot answer the audit."""
    return Finding(audit=audit, title=title, summary=why, applicable=False, params=params)


def example_ids(battle_ids: pd.Series, groups: pd.Series, limit: int = EXAMPLE_IDS) -> pd.Series:
    """Up to ``limit`` battle ids per group (in vote order), as lists, indexed by group."""
    frame = pd.DataFrame({"g": groups.to_numpy(), "id": battle_ids.astype(str).to_numpy()})
    return frame.groupby("g", sort=False)["id"].agg(lambda s: list(s.iloc[:limit]))


_RESTORABLE = ("int64", "Int64", "float64", "bool", "boolean")


def _typed(df: pd.DataFrame, dtypes: list[str] | None) -> pd.DataFrame:
    """``df`` with its numeric / boolean columns cast back to the dtypes they had (JSON keeps
    integers with missing values as floats); text and list columns stay as read."""
    if not dtypes or len(dtypes) != df.shape[1]:
        return df
    out = df.copy()
    for col, dtype in zip(df.columns, dtypes, strict=True):
        if dtype in _RESTORABLE:
            target = "Int64" if dtype == "int64" and df[col].isna().any() else dtype
            with suppress(TypeError, ValueError):  # leave a column that does not convert as read
                out[col] = df[col].astype(target)
    return out


def _plain(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value

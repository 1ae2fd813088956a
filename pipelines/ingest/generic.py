"""Generic long-format tables: ``votes`` (one pairwise vote per row) and ``scores`` (one
per-instance score per row), from CSV, JSON Lines / JSON arrays, or Parquet (read by DuckDB).

Options (the CLI's ``--map target=source``):

* a column mapping ``{target: source_column}``; unmapped targets use the canonical name.
  votes — required ``model_a, model_b, winner``; optional ``judge, judge_kind, prompt``
  (``prompt_text`` also accepted), ``response_a, response_b, source_id, battle_key, tstamp,
  language, turns, anony``. scores — required ``instance_id, model, score``; optional
  ``prompt``. Source columns not mapped to anything are kept as JSON in the vote's metadata.
* ``winner_labels`` — e.g. ``A=model_a,B=model_b,draw=tie``; canonical labels always work.
* ``judge_kind`` — ``human`` (default) or ``llm``, used when there is no judge_kind column.
* ``default_judge`` — the judge when there is no judge column (default ``unknown``).

Without a ``battle_key`` column a vote's id hashes its identity (source_id, prompt, models,
judge, tstamp, turns) plus its occurrence number among rows with the same identity, so that
identical votes in one file stay separate votes while re-importing the same rows adds nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pandas as pd

from ..errors import ArenatreeError, InputError
from .base import WINNERS, Adapter, Batch
from .readers import is_parquet, peek_fields, read_csv, read_records

VOTE_REQUIRED = ("model_a", "model_b", "winner")
VOTE_OPTIONAL = (
    "judge",
    "judge_kind",
    "prompt",
    "response_a",
    "response_b",
    "source_id",
    "battle_key",
    "tstamp",
    "language",
    "turns",
    "anony",
)
SCORE_REQUIRED = ("instance_id", "model", "score")
SCORE_OPTIONAL = ("prompt",)
SETTINGS = ("winner_labels", "judge_kind", "default_judge")
# Fields of the Chatbot Arena / LMArena formats (read by arena.py / kaggle.py): never claimed.
ARENA_FIELDS = {"conversation_a", "conversation_b", "conv_metadata", "question_id", "winner_tie"}
DEFAULT_LABELS = {"tie (bothbad)": "tie_bothbad"}


def detect_votes(path: Path) -> bool:
    """A table file whose columns already are model_a, model_b, winner (and no arena fields)."""
    if not path.is_file():
        return False
    fields = peek_fields(path)
    return set(VOTE_REQUIRED) <= fields and not fields & ARENA_FIELDS


def detect_scores(path: Path) -> bool:
    """A table file whose columns already are instance_id, model, score."""
    return path.is_file() and set(SCORE_REQUIRED) <= peek_fields(path)


def read_table(path: Path) -> pd.DataFrame:
    """Any supported table as a frame with a ``line`` column (line, or record number)."""
    if path.stat().st_size and is_parquet(path):
        con = duckdb.connect()
        try:
            df = con.execute("SELECT * FROM read_parquet(?)", [str(path)]).df()
        except duckdb.Error as exc:
            raise InputError(path, f"unreadable Parquet file ({exc})") from None
        finally:
            con.close()
        df.insert(0, "line", range(1, len(df) + 1))
        return df
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] in (b"{", b"["):
        recs = read_records(path)
        df = pd.DataFrame([r for _, r in recs])
        df.insert(0, "line", [n for n, _ in recs])
        return df
    return read_csv(path)


def parse_labels(spec: str | None) -> dict[str, str]:
    """``"A=model_a,B=model_b,draw=tie"`` -> ``{"A": "model_a", ...}`` (targets checked)."""
    labels = dict(DEFAULT_LABELS)
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        source, sep, target = part.partition("=")
        if not sep or target.strip() not in WINNERS:
            raise ArenatreeError(
                f"winner_labels: {part.strip()!r} is not LABEL=TARGET with TARGET one of {', '.join(WINNERS)}"
            )
        labels[source.strip()] = target.strip()
    return labels


def _mapping(options: dict[str, str], required: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, str]:
    """target -> source column, from the options (unknown option names are an error)."""
    known = set(required) | set(optional) | {"prompt_text"}
    unknown = [k for k in options if k not in known and k not in SETTINGS]
    if unknown:
        raise ArenatreeError(
            f"unknown option(s) {', '.join(unknown)}; map one of: {', '.join(sorted(known))}"
        )
    out = {t: t for t in (*required, *optional)}
    out.update({t: s for t, s in options.items() if t in known})
    if "prompt_text" in out:
        out["prompt"] = out.pop("prompt_text")
    return out


def _columns(path: Path, df: pd.DataFrame, mapping: dict[str, str], required) -> dict[str, str]:
    """Check required source columns exist (error names line 1); drop absent optional ones."""
    for target in required:
        source = mapping[target]
        if source not in df.columns:
            via = f" (mapped to {target})" if source != target else ""
            raise InputError(
                path,
                f"missing required column {source!r}{via}; columns: "
                + ", ".join(c for c in df.columns if c != "line"),
                line=1,
                field=source,
            )
    return {t: s for t, s in mapping.items() if s in df.columns}


def _text(s: pd.Series) -> pd.Series:
    """Values as strings (integral floats without '.0'), nulls kept as None."""

    def conv(v):
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return None
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    return s.map(conv).astype(object)


def _tstamps(path: Path, df: pd.DataFrame, col: str) -> pd.Series:
    """Unix seconds from numbers, numeric strings, ISO dates or timestamps."""
    s = df[col]
    if pd.api.types.is_datetime64_any_dtype(s):
        ts = pd.to_datetime(s, utc=True)
        return (ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    num = pd.to_numeric(s, errors="coerce")
    rest = num.isna() & s.notna() & (s.astype(str).str.strip() != "")
    if rest.any():
        dates = pd.to_datetime(s[rest], utc=True, errors="coerce", format="mixed")
        bad = dates.isna()
        if bad.any():
            row = df[rest][bad.to_numpy()].iloc[0]
            raise InputError(path, f"not a timestamp: {row[col]!r}", line=int(row["line"]), field=col)
        num[rest] = (dates - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return num


def _bools(path: Path, df: pd.DataFrame, col: str) -> pd.Series:
    truth = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

    def conv(v):
        if v is None or (isinstance(v, float) and pd.isna(v)) or str(v).strip() == "":
            return None
        return truth.get(str(v).strip().lower(), "?")

    out = df[col].map(conv)
    bad = out == "?"
    if bad.any():
        row = df[bad.to_numpy()].iloc[0]
        raise InputError(path, f"not a boolean: {row[col]!r}", line=int(row["line"]), field=col)
    return out.astype(object)


def _keys(out: pd.DataFrame) -> pd.Series:
    """Identity hash plus occurrence number, for votes without a source id."""
    ident = ["source_id", "prompt_text", "model_a", "model_b", "judge", "tstamp", "turns"]
    cells = [out[c].map(lambda v: "" if v is None or v != v else str(v)) for c in ident]
    parts = cells[0].str.cat(cells[1:], sep="\x1f")
    occurrence = parts.groupby(parts).cumcount().astype(str)
    return (parts + "\x1e" + occurrence).map(lambda s: hashlib.sha256(s.encode("utf-8")).hexdigest()[:16])


def read_votes(path: Path, options: dict[str, str]) -> Batch:
    """A long table of pairwise votes as a pairwise Batch."""
    labels = parse_labels(options.get("winner_labels"))
    kind = options.get("judge_kind", "human")
    if kind not in ("human", "llm"):
        raise ArenatreeError(f"judge_kind option {kind!r}: use human or llm")
    df = read_table(path)
    cols = _columns(path, df, _mapping(options, VOTE_REQUIRED, VOTE_OPTIONAL), VOTE_REQUIRED)
    out = pd.DataFrame({"line": df["line"], "source_file": str(path)})
    for target in ("model_a", "model_b", "winner", "source_id", "language", "judge"):
        out[target] = _text(df[cols[target]]) if target in cols else None
    for target, dest in (("prompt", "prompt_text"), ("response_a", None), ("response_b", None)):
        out[dest or target] = _text(df[cols[target]]) if target in cols else None
    out["winner"] = out["winner"].map(lambda v: labels.get(v.strip(), v.strip()) if v else v)
    if "judge" not in cols:
        out["judge"] = options.get("default_judge", "unknown")
    out["judge_kind"] = _text(df[cols["judge_kind"]]) if "judge_kind" in cols else kind
    out["tstamp"] = _tstamps(path, df, cols["tstamp"]) if "tstamp" in cols else None
    out["turns"] = pd.to_numeric(df[cols["turns"]], errors="coerce") if "turns" in cols else None
    out["anony"] = _bools(path, df, cols["anony"]) if "anony" in cols else None
    extras = [c for c in df.columns if c != "line" and c not in cols.values()]
    if extras:
        out["metadata"] = [
            json.dumps(r, default=str, ensure_ascii=False)
            for r in df[extras].astype(object).where(df[extras].notna(), None).to_dict("records")
        ]
    if "battle_key" in cols:
        out["battle_key"] = _text(df[cols["battle_key"]])
    else:
        out["battle_key"] = _keys(out)
    return Batch(kind="pairwise", format="votes", path=path, rows_read=len(df), battles=out)


def read_scores(path: Path, options: dict[str, str]) -> Batch:
    """A long table of per-instance scores (instance_id, model, score) as an instances Batch."""
    df = read_table(path)
    cols = _columns(path, df, _mapping(options, SCORE_REQUIRED, SCORE_OPTIONAL), SCORE_REQUIRED)
    out = pd.DataFrame(
        {
            "line": df["line"],
            "source_file": str(path),
            "instance_id": _text(df[cols["instance_id"]]),
            "model": _text(df[cols["model"]]),
            "score": df[cols["score"]].map(lambda v: float(v) if isinstance(v, bool) else v),
        }
    )
    out["prompt_text"] = _text(df[cols["prompt"]]) if "prompt" in cols else None
    prompts = None
    if "prompt" in cols:
        has = out["prompt_text"].notna()
        prompts = out.loc[has, ["line", "source_file", "prompt_text", "instance_id"]].rename(
            columns={"prompt_text": "text", "instance_id": "source_id"}
        )
    return Batch(
        kind="instances",
        format="scores",
        path=path,
        rows_read=len(df),
        results=out,
        prompts=prompts,
    )


ADAPTERS = [
    Adapter(
        name="votes",
        description="long table of votes (CSV / JSONL / Parquet): model_a, model_b, winner, ...",
        detect=detect_votes,
        read=read_votes,
    ),
    Adapter(
        name="scores",
        description="long table of per-instance scores (CSV / JSONL / Parquet): instance_id, model, score",
        detect=detect_scores,
        read=read_scores,
    ),
]

"""Generic long-format tables: ``votes`` (one pairwise vote per row) and ``scores`` (one
per-instance score per row), from CSV, JSON Lines / JSON arrays, or Parquet (read by DuckDB).

Options (the CLI's ``--map target=source``):

* a column mapping ``{target: source_column}``; unmapped targets use the canonical name.
  votes — required ``model_a, model_b, winner``; optional ``judge, judge_kind, prompt``
  (``prompt_text`` also accepted), ``response_a, response_b, source_id, battle_key, tstamp,
  language, turns, anony``. scores — required ``instance_id, model, score``; optional
  ``prompt``. Source columns not mapped to anything are kept as JSON in the vote's metadata.
* ``winner_labels`` — e.g. ``A=model_a,B=model_b,draw=tie``; canonical labels always work.
* ``judge_kind`` — ``human`` (default) or ``llm``, used when there is no judge_kind column
  (a setting, never a column mapping: a judge_kind column is read under that name).
* ``default_judge`` — the judge when there is no judge column (default ``unknown``).
* constants (the CLI's ``--set FIELD=VALUE``), as ``{"set:FIELD": VALUE}``: the same value for
  every row, for a field the file has no column for — votes: ``model_a, model_b, winner, judge,
  judge_kind, language, turns, anony, tstamp`` (Auto-J's pairwise set names no models);
  scores: ``model``. A field both mapped and set is an error; a column named like a set field
  is kept in the metadata, the constant wins.
* ``wide`` (the CLI's ``--wide``; scores only): one row per item and one score column per model
  (:mod:`pipelines.ingest.wide`).

Score cells may be True/False, yes/no, 1/0 or numbers in [0, 1] (:mod:`pipelines.ingest.cells`).
A winner label that is neither canonical nor in ``winner_labels`` is refused with the labels the
file holds and a ``--winner-labels`` spec to complete.

Without a ``battle_key`` column a vote's id hashes its identity (source_id, prompt, models,
judge, tstamp, turns) plus its occurrence number among rows with the same identity, so that
identical votes in one file stay separate votes while re-importing the same rows adds nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ..errors import ArenatreeError, InputError, plain
from .base import WINNERS, Adapter, Batch
from .cells import score_column
from .readers import is_parquet, peek_fields, read_csv, read_records
from .wide import prompt_instance_ids, wide_results

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
SETTINGS = ("winner_labels", "judge_kind", "default_judge", "wide")
SET_PREFIX = "set:"  # options key of a constant: {"set:model_a": "gpt-4"}
VOTE_CONSTANTS = (
    "model_a",
    "model_b",
    "winner",
    "judge",
    "judge_kind",
    "language",
    "turns",
    "anony",
    "tstamp",
)
SCORE_CONSTANTS = ("model",)
WIDE_FIELDS = ("instance_id", "prompt")
MAX_LABELS_SHOWN = 20
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


def read_table(path: Path) -> tuple[pd.DataFrame, str]:
    """Any supported table as a frame with a ``line`` column, and what ``line`` counts: 'line'
    (CSV, JSON Lines) or 'record' (Parquet, JSON arrays)."""
    if path.stat().st_size and is_parquet(path):
        con = duckdb.connect()
        try:
            df = con.execute("SELECT * FROM read_parquet(?)", [str(path)]).df()
        except duckdb.Error as exc:
            raise InputError(path, f"unreadable Parquet file ({exc})") from None
        finally:
            con.close()
        df.insert(0, "line", range(1, len(df) + 1))
        return df, "record"
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] in (b"{", b"["):
        recs = read_records(path)
        df = pd.DataFrame([r for _, r in recs])
        df.insert(0, "line", [n for n, _ in recs])
        return df, "record" if head[:1] == b"[" else "line"
    return read_csv(path), "line"


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
    unknown = [k for k in options if k not in known and k not in SETTINGS and not k.startswith(SET_PREFIX)]
    if unknown:
        raise ArenatreeError(
            f"unknown option(s) {', '.join(unknown)}; map one of: {', '.join(sorted(known))}"
        )
    out = {t: t for t in (*required, *optional)}
    out.update({t: s for t, s in options.items() if t in known and t not in SETTINGS})
    if "prompt_text" in out:
        out["prompt"] = out.pop("prompt_text")
    return out


def constants(options: dict[str, str], allowed: tuple[str, ...]) -> dict[str, str]:
    """field -> constant value from the ``set:FIELD`` options; a field that takes no constant,
    or one also mapped to a column (``--map``) or given by ``--judge-kind``, is an error."""
    consts = {k[len(SET_PREFIX) :]: v for k, v in options.items() if k.startswith(SET_PREFIX)}
    for field, value in consts.items():
        if field not in allowed:
            choice = f"--set one of: {', '.join(allowed)}" if allowed else "this format takes no --set"
            raise ArenatreeError(f"--set {field}={value}: {field} takes no constant here; {choice}")
        if field in options or (field == "prompt" and "prompt_text" in options):
            given = (
                f"--judge-kind {options[field]}"
                if field == "judge_kind"
                else f"--map {field}={options[field]}"
            )
            raise ArenatreeError(f"{field} is given twice, by {given} and by --set {field}={value}; give one")
    return consts


def _with_constants(df: pd.DataFrame, cols: dict[str, str], consts: dict[str, str]):
    """``df`` with one column ``--set FIELD`` per constant, and ``cols`` pointing at them."""
    if not consts:
        return df, cols
    df = df.assign(**{f"--set {t}": v for t, v in consts.items()})
    return df, {**cols, **{t: f"--set {t}" for t in consts}}


def _columns(
    path: Path, df: pd.DataFrame, mapping: dict[str, str], required, consts: dict[str, str] | None = None
) -> dict[str, str]:
    """target -> source column present in ``df``. Required targets (but those given as
    constants) and explicitly mapped ones (source != target) must exist (error names line 1);
    absent optional ones are dropped. Targets in ``consts`` are left out."""
    consts = consts or {}
    mapping = {t: s for t, s in mapping.items() if t not in consts}
    for target, source in mapping.items():
        if source not in df.columns and (target in required or source != target):
            via = f" (mapped to {target})" if source != target else ""
            raise InputError(
                path,
                f"missing {'required' if target in required else 'mapped'} column {source!r}{via}; columns: "
                + ", ".join(str(c) for c in df.columns if c != "line"),
                line=1,
                field=source,
            )
    return {t: s for t, s in mapping.items() if s in df.columns}


def _label_order(label: str) -> tuple:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def unknown_label_message(label: str, seen: list[str], labels: dict[str, str]) -> str:
    """One line for an unknown winner ``label``: the ``seen`` labels (sorted, numbers by value)
    and a ``--winner-labels`` spec that keeps the given ``labels`` and gives each unknown one a
    winner not yet used (in the order model_a, model_b, tie, tie_bothbad) for the user to fix."""
    seen = sorted(set(seen), key=_label_order)
    user = {k: v for k, v in labels.items() if k not in DEFAULT_LABELS}
    unknown = [x for x in seen if labels.get(x, x) not in WINNERS]
    free = [w for w in WINNERS if w not in user.values()] or list(WINNERS)
    spec = {**user, **{x: free[i % len(free)] for i, x in enumerate(unknown)}}
    shown = ", ".join(seen[:MAX_LABELS_SHOWN])
    if len(seen) > MAX_LABELS_SHOWN:
        shown += f", ... ({len(seen)} labels)"
    return (
        f"unknown winner label {label!r} (labels seen: {shown}); say what they mean with "
        f"--winner-labels {','.join(f'{k}={v}' for k, v in spec.items())}"
    )


def _winners(path: Path, lines: pd.Series, raw: pd.Series, labels: dict[str, str], unit: str) -> pd.Series:
    """Canonical winners of the ``raw`` labels (strings or None); InputError at the first label
    that is neither canonical nor in ``labels``."""
    stripped = raw.map(lambda v: v.strip() if isinstance(v, str) else v)
    out = stripped.map(lambda v: labels.get(v, v) if v else v)
    bad = (out.notna() & (out != "") & ~out.isin(WINNERS)).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        seen = [v for v in stripped.dropna().unique().tolist() if v]
        raise InputError(
            path,
            unknown_label_message(stripped.iloc[i], seen, labels),
            line=int(lines.iloc[i]),
            field="winner",
            unit=unit,
        )
    return out


def _text(s: pd.Series) -> pd.Series:
    """Values as strings (integral floats without '.0'), nulls kept as None."""

    def conv(v):
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return None
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    return s.map(conv).astype(object)


def _tstamps(path: Path, df: pd.DataFrame, col: str, unit: str = "line") -> pd.Series:
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
            raise InputError(
                path, f"not a timestamp: {plain(row[col])!r}", line=int(row["line"]), field=col, unit=unit
            )
        num[rest] = (dates - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return num


def _bools(path: Path, df: pd.DataFrame, col: str, unit: str = "line") -> pd.Series:
    truth = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

    def conv(v):
        if v is None or (isinstance(v, float) and pd.isna(v)) or str(v).strip() == "":
            return None
        return truth.get(str(v).strip().lower(), "?")

    out = df[col].map(conv)
    bad = out == "?"
    if bad.any():
        row = df[bad.to_numpy()].iloc[0]
        raise InputError(
            path, f"not a boolean: {plain(row[col])!r}", line=int(row["line"]), field=col, unit=unit
        )
    return out.astype(object)


def _keys(out: pd.DataFrame) -> pd.Series:
    """Identity hash plus occurrence number, for votes without a source id."""
    ident = ["source_id", "prompt_text", "model_a", "model_b", "judge", "tstamp", "turns"]
    cells = [out[c].map(lambda v: "" if v is None or v != v else str(v)) for c in ident]
    parts = cells[0].str.cat(cells[1:], sep="\x1f")
    occurrence = parts.groupby(parts).cumcount().astype(str)
    return (parts + "\x1e" + occurrence).map(lambda s: hashlib.sha256(s.encode("utf-8")).hexdigest()[:16])


def _flag(options: dict[str, str], name: str) -> bool:
    """Whether the switch option ``name`` is on (present and not '', '0', 'false' or 'no')."""
    return str(options.get(name, "")).strip().lower() not in ("", "0", "false", "no")


def read_votes(path: Path, options: dict[str, str]) -> Batch:
    """A long table of pairwise votes as a pairwise Batch."""
    labels = parse_labels(options.get("winner_labels"))
    kind = options.get("judge_kind", "human")
    if kind not in ("human", "llm"):
        raise ArenatreeError(f"judge_kind option {kind!r}: use human or llm")
    if _flag(options, "wide"):
        raise ArenatreeError("--wide is for per-instance scores tables (--format scores); votes are long")
    consts = constants(options, VOTE_CONSTANTS)
    df, unit = read_table(path)
    cols = _columns(path, df, _mapping(options, VOTE_REQUIRED, VOTE_OPTIONAL), VOTE_REQUIRED, consts)
    extras = [c for c in df.columns if c != "line" and c not in cols.values()]
    df, cols = _with_constants(df, cols, consts)
    out = pd.DataFrame({"line": df["line"], "source_file": str(path)})
    for target in ("model_a", "model_b", "winner", "source_id", "language", "judge"):
        out[target] = _text(df[cols[target]]) if target in cols else None
    for target, dest in (("prompt", "prompt_text"), ("response_a", None), ("response_b", None)):
        out[dest or target] = _text(df[cols[target]]) if target in cols else None
    out["winner"] = _winners(path, out["line"], out["winner"], labels, unit)
    if "judge" not in cols:
        out["judge"] = options.get("default_judge", "unknown")
    out["judge_kind"] = _text(df[cols["judge_kind"]]) if "judge_kind" in cols else kind
    out["tstamp"] = _tstamps(path, df, cols["tstamp"], unit) if "tstamp" in cols else None
    out["turns"] = pd.to_numeric(df[cols["turns"]], errors="coerce") if "turns" in cols else None
    out["anony"] = _bools(path, df, cols["anony"], unit) if "anony" in cols else None
    if extras:
        out["metadata"] = [
            json.dumps(r, default=str, ensure_ascii=False)
            for r in df[extras].astype(object).where(df[extras].notna(), None).to_dict("records")
        ]
    if "battle_key" in cols:
        out["battle_key"] = _text(df[cols["battle_key"]])
    else:
        out["battle_key"] = _keys(out)
    return Batch(kind="pairwise", format="votes", path=path, rows_read=len(df), battles=out, line_unit=unit)


def _prompts(results: pd.DataFrame) -> pd.DataFrame | None:
    """The prompts frame (line, source_file, text, source_id) of the results rows with a text."""
    has = results["prompt_text"].notna()
    if not has.any():
        return None
    return results.loc[has, ["line", "source_file", "prompt_text", "instance_id"]].rename(
        columns={"prompt_text": "text", "instance_id": "source_id"}
    )


def _long_scores(path: Path, df: pd.DataFrame, options: dict[str, str], unit: str) -> pd.DataFrame:
    """Results frame of a long table: one row per (instance_id, model, score) row of ``df``."""
    consts = constants(options, SCORE_CONSTANTS)
    cols = _columns(path, df, _mapping(options, SCORE_REQUIRED, SCORE_OPTIONAL), SCORE_REQUIRED, consts)
    df, cols = _with_constants(df, cols, consts)
    score = score_column(path, df, cols["score"], unit)
    empty = np.isnan(score)
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise InputError(
            path, "missing required value", line=int(df["line"].iloc[i]), field=cols["score"], unit=unit
        )
    out = pd.DataFrame(
        {
            "line": df["line"],
            "source_file": str(path),
            "instance_id": _text(df[cols["instance_id"]]),
            "model": _text(df[cols["model"]]),
            "score": score,
        }
    )
    out["prompt_text"] = _text(df[cols["prompt"]]) if "prompt" in cols else None
    return out


def _wide_scores(path: Path, df: pd.DataFrame, options: dict[str, str], unit: str) -> pd.DataFrame:
    """Results frame of a wide table (:mod:`pipelines.ingest.wide`): item columns ``instance_id``
    (else ids from the prompt texts) and ``prompt``; every other column is a model."""
    mapped = [t for t in ("model", "score") if t in options]
    if mapped:
        raise ArenatreeError(
            f"--wide: every column not mapped is a model's score column; drop --map {mapped[0]}=..."
        )
    constants(options, ())
    mapping = {t: s for t, s in _mapping(options, (), WIDE_FIELDS).items() if t in WIDE_FIELDS}
    cols = _columns(path, df, mapping, ())
    prompts = _text(df[cols["prompt"]]).rename(cols["prompt"]) if "prompt" in cols else None
    if "instance_id" in cols:
        ids = _text(df[cols["instance_id"]]).rename(cols["instance_id"])
    elif prompts is not None:
        blank = prompts.isna() | (prompts.fillna("").str.strip() == "")
        if blank.any():
            i = int(np.flatnonzero(blank.to_numpy())[0])
            raise InputError(
                path,
                "missing prompt text, the item's id in a --wide table without an instance_id column",
                line=int(df["line"].iloc[i]),
                field=cols["prompt"],
                unit=unit,
            )
        ids = prompt_instance_ids(prompts)
        ids.name = None
    else:
        raise InputError(
            path,
            "a --wide table needs an item column: instance_id or prompt "
            "(--map instance_id=COLUMN or --map prompt=COLUMN); columns: "
            + ", ".join(str(c) for c in df.columns if c != "line"),
            line=1,
            unit=unit,
        )
    return wide_results(path, df, ids, prompts, unit)


def read_scores(path: Path, options: dict[str, str]) -> Batch:
    """A table of per-instance scores as an instances Batch: long (instance_id, model, score
    per row) or, with the ``wide`` option, one row per item and one score column per model."""
    df, unit = read_table(path)
    wide = _flag(options, "wide")
    out = _wide_scores(path, df, options, unit) if wide else _long_scores(path, df, options, unit)
    if wide and out.empty:
        raise InputError(path, "no scores: every model cell is empty", unit=unit)
    return Batch(
        kind="instances",
        format="scores",
        path=path,
        rows_read=len(df),
        results=out,
        prompts=_prompts(out),
        line_unit=unit,
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

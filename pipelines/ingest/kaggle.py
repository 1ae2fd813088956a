"""Importer for the Kaggle ``lmsys-chatbot-arena`` / ``lmarena-ai/arena-human-preference-55k``
``train.csv`` (Kaggle "LMSYS - Chatbot Arena Human Preference Predictions", 2024).

Columns (competition data description): id (int, unique per row), model_a, model_b,
prompt, response_a, response_b (each a JSON-encoded list of strings, one per turn; an entry
may be null), winner_model_a, winner_model_b, winner_tie (0/1 flags, exactly one is 1; the
release folds 'tie' and 'tie (bothbad)' into winner_tie).

Mapping to the battles frame: source_id = battle_key = id; prompt_text = the user turns
joined by a blank line; response_a/b = the answers joined by a blank line (null turns
skipped); turns = number of prompt turns; winner from the flag that is 1 ('tie' for
winner_tie); judge = ``'kaggle-55k:unknown'`` (the release has no voter id, so every vote
shares this documented placeholder and per-voter audits do not apply); judge_kind 'human';
tstamp, anony and language are not in the release (None). line = the CSV line where the
record starts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..errors import InputError
from .base import Adapter, Batch
from .readers import peek_fields, read_csv

FORMAT = "arena-55k"
ORIGIN = "https://www.kaggle.com/competitions/lmsys-chatbot-arena/data"
LICENSE = "Apache-2.0 (lmarena-ai/arena-human-preference-55k)"
PLACEHOLDER_JUDGE = "kaggle-55k:unknown"
FLAGS = {"winner_model_a": "model_a", "winner_model_b": "model_b", "winner_tie": "tie"}
TEXT_COLUMNS = ("prompt", "response_a", "response_b")
COLUMNS = ("id", "model_a", "model_b", *TEXT_COLUMNS, *FLAGS)


def _clean(text: str) -> str:
    """``text`` with lone UTF-16 surrogates (present in the release) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def _turns(path: Path, line: int, field: str, raw: str) -> list[str | None]:
    """The JSON list of turn texts in one cell; InputError naming line and field otherwise."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(
            path,
            f"not a JSON list of strings ({exc.msg}, column {exc.colno})",
            line=line,
            field=field,
        ) from None
    if not isinstance(value, list) or not all(v is None or isinstance(v, str) for v in value):
        raise InputError(path, "expected a JSON list of strings (or nulls)", line=line, field=field)
    return [None if v is None else _clean(v) for v in value]


def _join(turns: list[str | None]) -> str | None:
    """Non-null turns joined by a blank line; None when there are none."""
    kept = [t for t in turns if t is not None]
    return "\n\n".join(kept) if kept else None


def _winner(path: Path, line: int, row: dict) -> str:
    """The one label whose flag is 1; InputError when zero, two or three flags are set."""
    set_flags = []
    for col in FLAGS:
        raw = str(row[col]).strip()
        try:
            value = float(raw)
        except ValueError:
            value = None
        if value not in (0.0, 1.0):
            raise InputError(path, f"expected 0 or 1, got {raw!r}", line=line, field=col)
        if value == 1.0:
            set_flags.append(col)
    if len(set_flags) != 1:
        names = ", ".join(set_flags) if set_flags else "none"
        raise InputError(
            path,
            f"exactly one of {', '.join(FLAGS)} must be 1 (set: {names})",
            line=line,
            field=set_flags[-1] if set_flags else "winner_model_a",
        )
    return FLAGS[set_flags[0]]


def _battle(path: Path, row: dict) -> dict:
    line = int(row["line"])
    texts = {c: _turns(path, line, c, row[c]) for c in TEXT_COLUMNS}
    return {
        "line": line,
        "battle_key": str(row["id"]).strip(),
        "source_id": str(row["id"]).strip(),
        "prompt_text": _join(texts["prompt"]),
        "model_a": row["model_a"],
        "model_b": row["model_b"],
        "winner": _winner(path, line, row),
        "judge": PLACEHOLDER_JUDGE,
        "judge_kind": "human",
        "turns": len(texts["prompt"]),
        "response_a": _join(texts["response_a"]),
        "response_b": _join(texts["response_b"]),
    }


def read(path: Path, options: dict[str, str]) -> Batch:
    """Read a Kaggle arena train.csv into a pairwise Batch (one battle per CSV record)."""
    path = Path(path)
    df = read_csv(path, required=COLUMNS)
    if len(df) == 0:
        raise InputError(path, "no records (only a header)")
    battles = pd.DataFrame([_battle(path, row) for row in df.to_dict("records")])
    return Batch(
        kind="pairwise",
        format=FORMAT,
        path=path,
        rows_read=len(df),
        battles=battles,
        origin=ORIGIN,
        license=LICENSE,
    )


def detect(path: Path) -> bool:
    """A .csv whose header has the competition's train columns."""
    if not path.is_file() or path.suffix.lower() != ".csv":
        return False
    return set(COLUMNS) <= peek_fields(path)


ADAPTERS = [
    Adapter(FORMAT, "Kaggle lmsys-chatbot-arena / arena-human-preference-55k train.csv", detect, read)
]

"""Wide per-instance tables (``--format scores --wide``): one row per item, one column per model.

RouteLLM's MMLU files look like ``prompt, gpt-4-1106-preview, mistral-7b-instruct`` with
True/False cells. Every column that is not claimed by a mapped field (``instance_id``,
``prompt``) is one model's score column, its header the model's name; a nameless column (a
pandas index written as ``""`` or ``Unnamed: 0``) is skipped. Cells are read by
:mod:`pipelines.ingest.cells`; an empty cell is no result for that model.

Without an ``instance_id`` column an item's id is the content hash of its prompt text (so the
same question in two files is one item), plus ``#2``, ``#3``, ... for repeats inside one file.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .cells import score_column
from .load import text_hash

INDEX_COLUMN = re.compile(r"^(Unnamed: \d+)?$")  # how pandas writes its index to CSV


def model_columns(df: pd.DataFrame, claimed: set[str]) -> list[str]:
    """Columns of ``df`` that hold a model's scores, in file order: all but ``line``, the
    ``claimed`` ones and nameless index columns."""
    return [c for c in df.columns if c != "line" and c not in claimed and not INDEX_COLUMN.match(str(c))]


def prompt_instance_ids(prompts: pd.Series) -> pd.Series:
    """Item ids from prompt texts: the text's 16-hex content hash, ``#k`` added to its k-th
    repeat (k >= 2) in file order."""
    hashes = prompts.map(text_hash)
    repeat = hashes.groupby(hashes).cumcount() + 1
    return hashes.where(repeat == 1, hashes + "#" + repeat.astype(str))


def wide_results(
    path: Path, df: pd.DataFrame, ids: pd.Series, prompts: pd.Series | None, unit: str = "line"
) -> pd.DataFrame:
    """The long results frame (line, source_file, instance_id, prompt_text, model, score) of a
    wide table: one row per non-empty model cell, row-major (each item's models in column order).

    ``ids`` and ``prompts`` are aligned with ``df``'s rows (``prompts`` None: no texts); the model
    columns are those :func:`model_columns` finds besides ``df``'s claimed columns (``ids.name``,
    ``prompts.name``)."""
    claimed = {n for n in (ids.name, getattr(prompts, "name", None)) if n}
    models = model_columns(df, claimed)
    if not models:
        raise InputError(
            path,
            "a --wide table needs a score column per model besides "
            + (", ".join(sorted(claimed)) or "its item columns")
            + "; columns: "
            + ", ".join(str(c) for c in df.columns if c != "line"),
            line=1,
            unit=unit,
        )
    scores = np.column_stack([score_column(path, df, m, unit) for m in models])  # (rows, models)
    row, col = np.nonzero(~np.isnan(scores))
    return pd.DataFrame(
        {
            "line": df["line"].to_numpy()[row],
            "source_file": str(path),
            "instance_id": ids.to_numpy()[row],
            "prompt_text": prompts.to_numpy()[row] if prompts is not None else None,
            "model": np.asarray([str(m) for m in models], dtype=object)[col],
            "score": scores[row, col],
        }
    )

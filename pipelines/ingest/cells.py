"""Per-instance score cells as tables write them: ``True``/``False``, ``true``/``false``,
``yes``/``no``, ``1``/``0``, ``1.0``/``0.0`` or any number in [0, 1] (strings from CSV, JSON
booleans and numbers, Parquet booleans, integers and floats). An empty cell means no result."""

from __future__ import annotations

import math
from numbers import Real
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError, plain

WORDS = {"true": 1.0, "yes": 1.0, "false": 0.0, "no": 0.0}
ACCEPTED = "true/false, yes/no, 1/0 or a number in [0, 1]"
EMPTY = -1.0  # code of an empty cell (no result)
BAD = -2.0  # code of a cell that is not a score


def cell_score(value: object) -> float:
    """The score in [0, 1] a cell holds, :data:`EMPTY` for an empty cell (None, NaN, blank), or
    :data:`BAD` when it is not a score."""
    value = plain(value)
    if value is None or value is pd.NA or value is pd.NaT:
        return EMPTY
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if not text:
            return EMPTY
        if text in WORDS:
            return WORDS[text]
        try:
            number = float(text)
        except ValueError:
            return BAD
        return number if 0.0 <= number <= 1.0 else BAD  # 'nan' and 'inf' fail the test
    if isinstance(value, Real):
        number = float(value)
        if math.isnan(number):
            return EMPTY
        return number if 0.0 <= number <= 1.0 else BAD
    return BAD


def score_column(path: Path, df: pd.DataFrame, col: str, unit: str = "line") -> np.ndarray:
    """float64 array (len(df),) of the scores in ``df[col]``, NaN where a cell is empty.

    Each distinct value is read once (a wide table holds few). The first cell that is not a
    score raises InputError naming the file, its ``line`` (``unit``: 'line' or 'record') and the
    column ``col``."""
    codes, uniques = pd.factorize(df[col], use_na_sentinel=True)
    values = np.array([cell_score(v) for v in uniques], dtype=np.float64)
    bad = np.flatnonzero(values == BAD)
    if len(bad):
        row = int(np.flatnonzero(np.isin(codes, bad))[0])
        shown = plain(df[col].iloc[row])
        raise InputError(
            path,
            f"score {shown!r} is not {ACCEPTED}",
            line=int(df["line"].iloc[row]),
            field=col,
            unit=unit,
        )
    values[values == EMPTY] = np.nan
    out = np.full(len(df), np.nan)
    known = codes >= 0
    out[known] = values[codes[known]]
    return out

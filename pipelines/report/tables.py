"""Every table of a report as CSV (formula-neutralised) or Parquet files, in a folder or a zip."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

from .content import Report

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (starts with = + - @, tab or CR) gets a
    leading apostrophe; other values pass unchanged. The dashboard's CSV downloads use it too."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _cell_text(value: Any) -> Any:
    """Lists / arrays (e.g. keywords) as '; '-joined text, so CSV and Parquet both take them."""
    if isinstance(value, list | tuple) or (hasattr(value, "tolist") and not isinstance(value, str | bytes)):
        items = value.tolist() if hasattr(value, "tolist") else value
        if isinstance(items, list):
            return "; ".join(map(str, items))
    return value


def _is_text(column: pd.Series) -> bool:
    return column.dtype == object or pd.api.types.is_string_dtype(column)


def plain_table(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with list cells joined to text and object columns as strings (None kept)."""
    out = df.copy()
    out.columns = [str(c) for c in out.columns]
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = (
                out[col].map(_cell_text).map(lambda v: v if v is None or isinstance(v, str) else str(v))
            )
    return out


def csv_bytes(df: pd.DataFrame) -> bytes:
    """``df`` as UTF-8 CSV with formula-looking text cells and headers neutralised."""
    safe = plain_table(df)
    safe.columns = [neutralise_cell(c) for c in safe.columns]
    for col in safe.columns:
        if _is_text(safe[col]):
            safe[col] = safe[col].map(neutralise_cell)
    return safe.to_csv(index=False).encode("utf-8")


def parquet_bytes(df: pd.DataFrame) -> bytes:
    """``df`` as Parquet (pyarrow); text is stored as data, lists joined to text."""
    buf = io.BytesIO()
    plain_table(df).to_parquet(buf, index=False)
    return buf.getvalue()


def file_name(name: str, ext: str) -> str:
    """A safe file name for a table called ``name``."""
    return (re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "table") + "." + ext


def table_files(report: Report, fmt: str) -> dict[str, bytes]:
    """File name -> bytes of every table of ``report`` in ``fmt`` ('csv' | 'parquet')."""
    encode = csv_bytes if fmt == "csv" else parquet_bytes
    return {file_name(name, fmt): encode(df) for name, df in report.tables().items()}


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """``files`` (name -> bytes) as one zip archive."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            z.writestr(name, content)
    return buf.getvalue()


def write_tables(report: Report, out: Path, fmt: str) -> list[Path]:
    """Write every table to ``out``: a .zip archive when ``out`` ends in .zip, else a folder
    (created). Returns the paths written."""
    files = table_files(report, fmt)
    if out.suffix.lower() == ".zip":
        out.write_bytes(zip_bytes(files))
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in files.items():
        (out / name).write_bytes(content)
        written.append(out / name)
    return written

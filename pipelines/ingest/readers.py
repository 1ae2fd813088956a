"""Line-aware readers for JSON, JSONL and CSV: every problem becomes an InputError naming
the file, the line and (where there is one) the field."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError
from ..text import clean_json

PARQUET_MAGIC = b"PAR1"
MAX_FIELD_BYTES = 64 * 1024 * 1024  # csv module's per-field limit; a 2 MB prompt must pass
PEEK_LINE_BYTES = 16 * 1024 * 1024  # how far peek_fields reads to finish a long first line


def read_text(path: Path) -> str:
    """The whole file as UTF-8 text. Empty, binary or non-UTF-8 files raise InputError."""
    data = path.read_bytes()
    check_bytes(path, data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            path, f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})", line=line
        ) from None


def check_bytes(path: Path, head: bytes) -> None:
    """Reject empty and binary files early with a one-line reason."""
    if not head.strip():
        raise InputError(path, "empty file")
    nul = head.find(b"\x00", 0, 65536)
    if nul >= 0:
        line = head.count(b"\n", 0, nul) + 1
        raise InputError(path, f"binary data, not a text file (NUL byte at offset {nul})", line=line)


def read_json(path: Path) -> Any:
    """Parse a whole JSON document; a syntax error names its line."""
    text = read_text(path)
    try:
        return clean_json(json.loads(text), text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"malformed JSON ({exc.msg}, column {exc.colno})", line=exc.lineno) from None


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON Lines file."""
    text = read_text(path)
    # split on "\n" only: str.splitlines() also breaks at U+2028/U+2029, \x85, \x0b, ...,
    # which JSON allows raw inside strings (a real arena-hard v2.0 prompt holds U+2028)
    for n, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = clean_json(json.loads(raw), raw)
        except json.JSONDecodeError as exc:
            raise InputError(path, f"malformed JSON ({exc.msg}, column {exc.colno})", line=n) from None
        if not isinstance(obj, dict):
            raise InputError(path, f"expected a JSON object, got {type(obj).__name__}", line=n)
        yield n, obj


def read_records(path: Path) -> list[tuple[int, dict]]:
    """``(position, record)`` pairs from a JSON array file or a JSON Lines file.

    For JSON Lines the position is the line number; for a JSON array it is the 1-based
    record number (there is no reliable line per record).
    """
    text = read_text(path)
    if text.lstrip().startswith("["):
        data = read_json(path)
        if not isinstance(data, list):
            raise InputError(path, "expected a JSON array of records")
        for i, rec in enumerate(data, start=1):
            if not isinstance(rec, dict):
                raise InputError(path, f"record {i} is {type(rec).__name__}, not an object")
        return list(enumerate(data, start=1))
    return list(iter_jsonl(path))


def read_csv(path: Path, required: Iterable[str] = ()) -> pd.DataFrame:
    """Read a CSV as strings, with a ``line`` column holding each record's first line.

    Missing required columns, ragged rows and encoding problems raise InputError.
    """
    text = read_text(path)
    csv.field_size_limit(min(sys.maxsize, MAX_FIELD_BYTES))
    # newline="" keeps U+2028 & co. inside fields (splitlines() would break rows there)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(path, "empty file") from None
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(
            path,
            f"missing required column(s) {', '.join(missing)} (header has: {', '.join(header)})",
            line=1,
            field=missing[0],
        )
    rows, lines = [], []
    start = reader.line_num + 1
    try:
        for row in reader:
            if not row:
                start = reader.line_num + 1
                continue
            if len(row) != len(header):
                raise InputError(path, f"{len(row)} fields where the header has {len(header)}", line=start)
            rows.append(row)
            lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(path, f"malformed CSV ({exc})", line=start) from None
    df = pd.DataFrame(rows, columns=header, dtype=object)
    df.insert(0, "line", lines)
    return df


def need(path: Path, line: int, record: dict, key: str, kinds: type | tuple = object) -> Any:
    """``record[key]``, or an InputError naming the line and the missing/mistyped field."""
    if key not in record or record[key] is None:
        raise InputError(path, "missing required field", line=line, field=key)
    value = record[key]
    if not isinstance(value, kinds):
        raise InputError(
            path,
            f"expected {getattr(kinds, '__name__', kinds)}, got {type(value).__name__}",
            line=line,
            field=key,
        )
    return value


def is_parquet(path: Path) -> bool:
    """True when the file starts with Parquet's magic bytes."""
    with open(path, "rb") as fh:
        return fh.read(4) == PARQUET_MAGIC


def peek_fields(path: Path) -> set[str]:
    """Field names of the first record of a JSON / JSONL / CSV / Parquet file (empty if unknown).

    Reads only the start of the file; never raises (detection must not fail on bad files).
    """
    try:
        if is_parquet(path):
            import duckdb

            con = duckdb.connect()
            try:
                cols = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
            finally:
                con.close()
            return {c[0] for c in cols}
        with open(path, "rb") as fh:
            raw = fh.read(1 << 20)
            if b"\n" not in raw.lstrip():  # a first record longer than 1 MB: finish its line
                raw += fh.readline(PEEK_LINE_BYTES)
            head = raw.decode("utf-8-sig", errors="replace")
        stripped = head.lstrip()
        if stripped.startswith("["):
            dec = json.JSONDecoder()
            body = stripped[1:].lstrip()
            obj, _ = dec.raw_decode(body)
            return set(obj) if isinstance(obj, dict) else set()
        if stripped.startswith("{"):
            first = stripped.split("\n")[0]
            obj = json.loads(first)
            return set(obj) if isinstance(obj, dict) else set()
        if path.suffix.lower() in {".csv", ".tsv"}:
            first = next(csv.reader([head.splitlines()[0]]))
            return {c.strip() for c in first}
    except Exception:  # noqa: BLE001 - detection is best effort by design
        return set()
    return set()

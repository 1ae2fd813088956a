"""Importers: detect a file's format, read it into a normalised Batch, load it in one transaction.

Adapter modules each export ``ADAPTERS: list[Adapter]``. Auto-detection tries them in the
order of ``ADAPTER_MODULES`` (most specific first) and takes the first whose ``detect`` says yes.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from pathlib import Path

from ..errors import ArenatreeError, InputError, SnapshotError, StoreWriteError
from ..store import writer
from .base import Adapter, Batch
from .load import ImportReport, load_batches, path_sha256, validate_batch
from .readers import check_bytes, is_parquet

ADAPTER_MODULES = [
    "llmfao",
    "pandalm",
    "math_results",
    "alpaca_eval",
    "arena_hard",
    "arena",
    "kaggle",
    "generic",
]
DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def adapters() -> dict[str, Adapter]:
    """All adapters by name, in detection order."""
    out: dict[str, Adapter] = {}
    for mod in ADAPTER_MODULES:
        for a in importlib.import_module(f"{__name__}.{mod}").ADAPTERS:
            out[a.name] = a
    return out


def detect(path: Path) -> Adapter:
    """The first adapter that recognises ``path``; InputError if none does."""
    for a in adapters().values():
        if a.detect(path):
            return a
    raise InputError(
        path,
        "cannot tell the format from the file's name and fields; pass --format "
        f"(one of: {', '.join(adapters())})",
    )


def read(path: str | Path, fmt: str = "auto", options: dict[str, str] | None = None) -> Batch:
    """Read one path with the named adapter (or the detected one) into a Batch."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such file or folder")
    if p.is_file():  # empty and binary files get their own message, whatever the format
        with open(p, "rb") as fh:
            head = fh.read(65536)
        if not is_parquet(p):
            check_bytes(p, head)
    if fmt == "auto":
        adapter = detect(p)
    else:
        known = adapters()
        if fmt not in known:
            raise ArenatreeError(f"unknown format {fmt!r} (one of: auto, {', '.join(known)})")
        adapter = known[fmt]
    return adapter.read(p, dict(options or {}))


def ingest(
    paths: Iterable[str | Path],
    dataset: str,
    fmt: str = "auto",
    options: dict[str, str] | None = None,
    db: str | Path | None = None,
) -> list[ImportReport]:
    """Read every path, then write them all to the store in one transaction.

    Nothing is written unless every path reads and validates cleanly.
    """
    if not DATASET_NAME.match(dataset):
        raise ArenatreeError(
            f"dataset name {dataset!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    batches = []
    for path in paths:
        batch = read(path, fmt, options)
        validate_batch(batch)
        batches.append((batch, path_sha256(Path(path))))
    reports: list[ImportReport] = []
    try:
        with writer(db) as con:
            reports = load_batches(con, dataset, batches, validated=True)
    except SnapshotError as exc:  # committed: say what is stored
        raise exc.about(f"the import into {dataset!r} is stored ({_added(reports)})") from None
    except StoreWriteError as exc:  # one transaction: none of it is stored
        raise exc.about(f"nothing of the import into {dataset!r} is stored") from None
    return reports


def _added(reports: list[ImportReport]) -> str:
    """'1,234 battles, 56 prompts added' over ``reports`` (or 'nothing new')."""
    totals = {
        what: sum(getattr(r, f"added_{what}") for r in reports)
        for what in ("battles", "results", "prompts", "responses")
    }
    parts = [f"{n:,} {what}" for what, n in totals.items() if n]
    return ", ".join(parts) + " added" if parts else "nothing new"

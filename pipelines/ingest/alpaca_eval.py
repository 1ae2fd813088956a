"""AlpacaEval annotations (github.com/tatsu-lab/alpaca_eval): LLM-judge pairwise verdicts.

Input: one ``annotations.json``; a ``results/`` folder of ``<model>/<annotator>/annotations.json``
(the alpaca_eval repository's layout) or of ``<model>/annotations.json`` (one annotator, as
``alpaca_eval --output_path`` writes it); or the alpaca_eval folder that holds ``results/``.
Option ``annotator=NAME`` keeps only that annotator's sub-folders.

The baseline's own file (the baseline against itself, which AlpacaEval scores 50% by
construction) cannot be a battle: its records are skipped with the reason
:data:`SELF_COMPARISON` and counted in the import log, never an error.

Each record ``{instruction, output_1, generator_1, dataset, output_2, generator_2, annotator,
preference, ...}`` is one vote: model_a = generator_1 (the reference, output_1), model_b =
generator_2, judge = ``annotator`` (judge_kind llm).

``preference`` arrives as a number or a string ("2.0", 1, 1.5, 0, None). AlpacaEval's own
``metrics.helpers.BaseScoringRule.describe_head2head`` (behind ``pairwise_to_winrate``) counts
0 and 1.5 as draws, ``preference - 1 > 0.5`` as a win of output_2 and ``< 0.5`` as a win of
output_1, and drops values that are missing or outside [1, 2]. We map the same way:
1 <= p < 1.5 -> model_a, 1.5 < p <= 2 -> model_b, 0 and 1.5 -> tie. Missing, None, NaN,
unparseable or out-of-range preferences are skipped and recorded in ``Batch.skipped``.
The raw preference, the AlpacaEval ``dataset`` (helpful_base, koala, ...) and the record's
``index`` in its file (AlpacaEval's instruction index, 0-based) go to metadata.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ..errors import InputError
from .base import Adapter, Batch, Skip
from .readers import peek_fields, read_json

FIELDS = {"generator_1", "generator_2", "preference"}
ORIGIN = "https://github.com/tatsu-lab/alpaca_eval"
LICENSE = "CC BY-NC 4.0"
LAYOUTS = ("*/*/annotations.json", "*/annotations.json")  # <model>/<annotator>/ and <model>/
SELF_COMPARISON = "self-comparison: the baseline against itself (AlpacaEval scores it 50% by construction)"


def _results_dir(path: Path) -> tuple[Path, str] | None:
    """(folder, glob) of the annotations files at or under ``path`` (see :data:`LAYOUTS`), if any."""
    for cand in (path / "results", path):  # results/ first: from above it looks like <model>/<x>/
        for layout in LAYOUTS:
            if cand.is_dir() and next(cand.glob(layout), None) is not None:
                return cand, layout
    return None


def detect(path: Path) -> bool:
    """An annotations JSON file (generator_1/generator_2/preference) or a results folder."""
    if path.is_dir():
        return _results_dir(path) is not None
    return path.suffix.lower() == ".json" and peek_fields(path) >= FIELDS


def winner(preference: object) -> tuple[str | None, str]:
    """``(winner, reason)`` for a raw AlpacaEval preference; winner None means skip."""
    if preference is None:
        return None, "missing preference"
    if isinstance(preference, bool):
        return None, f"preference {preference!r} is not a number"
    try:
        p = float(preference)
    except (TypeError, ValueError):
        return None, f"preference {preference!r} is not a number"
    if math.isnan(p):
        return None, "preference is NaN"
    if p == 0 or p == 1.5:
        return "tie", ""
    if 1 <= p < 1.5:
        return "model_a", ""
    if 1.5 < p <= 2:
        return "model_b", ""
    return None, f"preference {preference!r} is outside [1, 2] (and not 0)"


def _files(path: Path, annotator: str | None) -> list[tuple[Path, bool]]:
    """The annotations files of ``path``, each with whether its folder names the annotator."""
    if path.is_file():
        return [(path, path.name == "annotations.json")]
    found = _results_dir(path)
    if found is None:
        raise InputError(
            path,
            "no <model>/<annotator>/annotations.json or <model>/annotations.json files found; "
            "pass the annotations files themselves (arenatree ingest FILE [FILE ...] --format alpaca-eval)",
        )
    root, layout = found
    files = sorted(root.glob(layout))
    nested = layout == LAYOUTS[0]
    if annotator and nested:
        files = [f for f in files if f.parent.name == annotator]
        if not files:
            raise InputError(path, f"no annotations.json for annotator {annotator!r}")
    return [(f, nested) for f in files]


def _str(path: Path, n: int, rec: dict, key: str, default: str | None = None) -> str:
    value = rec.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise InputError(path, "missing or not a string", line=n, field=key, unit="record")
    return value


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _read_file(path: Path, nested: bool, rows: list[dict], skipped: list[Skip]) -> int:
    """Append the votes of one annotations file; returns the number of records read. ``nested``:
    the file sits in ``<model>/<annotator>/``, whose name is the annotator of records without one."""
    data = read_json(path)
    if not isinstance(data, list):
        raise InputError(path, "expected a JSON array of annotation records")
    folder_annotator = path.parent.name if nested else None
    for n, rec in enumerate(data, start=1):
        if not isinstance(rec, dict):
            raise InputError(path, f"expected an object, got {type(rec).__name__}", line=n, unit="record")
        raw = rec.get("preference")
        win, reason = winner(raw)
        if win is None:
            skipped.append(Skip(n, "preference", reason, str(path)))
            continue
        if rec.get("generator_1") == rec.get("generator_2"):
            skipped.append(Skip(n, "generator_2", SELF_COMPARISON, str(path)))
            continue
        rows.append(
            {
                "line": n,
                "source_file": str(path),
                "prompt_text": _str(path, n, rec, "instruction"),
                "model_a": _str(path, n, rec, "generator_1"),
                "model_b": _str(path, n, rec, "generator_2"),
                "winner": win,
                "judge": _str(path, n, rec, "annotator", folder_annotator),
                "judge_kind": "llm",
                "turns": 1,
                "response_a": _opt_str(rec.get("output_1")),
                "response_b": _opt_str(rec.get("output_2")),
                "metadata": json.dumps({"dataset": rec.get("dataset"), "preference": raw, "index": n - 1}),
            }
        )
    return len(data)


def read(path: Path, options: dict[str, str]) -> Batch:
    """All annotation records under ``path`` as one pairwise Batch of LLM-judge votes."""
    rows: list[dict] = []
    skipped: list[Skip] = []
    n = sum(_read_file(f, nested, rows, skipped) for f, nested in _files(path, options.get("annotator")))
    return Batch(
        kind="pairwise",
        format="alpaca-eval",
        path=path,
        rows_read=n,
        battles=pd.DataFrame(rows),
        skipped=skipped,
        origin=ORIGIN,
        license=LICENSE,
        line_unit="record",
    )


ADAPTERS = [
    Adapter(
        name="alpaca-eval",
        description="AlpacaEval annotations.json (files, or results/<model>/[<annotator>/])",
        detect=detect,
        read=read,
    )
]

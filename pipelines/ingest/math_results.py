"""Per-instance results in the EvalTree / MATH layout: an items file plus one 0/1 list per model.

Input: a folder holding an items file (JSON Lines, e.g. ``math_test.jsonl`` with ``problem,
level, type, solution, idx``) and ``eval_results/<model>/results.json`` (a JSON list whose
i-th value is the model's score on line i of the items file); or the items file itself with
``eval_results/`` beside it. When the folder holds several ``.jsonl`` files, option
``items=FILE`` names the items file.

instance_id = ``idx`` (the item's 0-based position when the file has no idx); prompts carry
metadata ``{type, level}`` and source_id = idx; one result row per (item, model).
A results list of the wrong length, or a value that is not 0/1 or a number in [0, 1], is an
InputError naming the file (and the position).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ..errors import InputError, plain
from .base import Adapter, Batch
from .readers import iter_jsonl, read_json

RESULTS = "eval_results"
TEXT_FIELDS = ("problem", "question", "prompt", "instruction")
META_FIELDS = ("type", "level", "subject", "category")


def _layout(path: Path, options: dict[str, str] | None = None) -> tuple[Path, Path] | None:
    """``(items_file, eval_results_dir)`` for ``path``, or None when it is not this layout."""
    folder = path if path.is_dir() else path.parent
    results = folder / RESULTS
    if not results.is_dir():
        return None
    if path.is_file():
        return (path, results) if path.suffix.lower() == ".jsonl" else None
    name = (options or {}).get("items")
    if name:
        return folder / name, results
    cands = sorted(p for p in folder.glob("*.jsonl") if p.is_file())
    if len(cands) == 1:
        return cands[0], results
    if not cands:
        return None
    raise InputError(
        folder,
        f"several items files ({', '.join(c.name for c in cands)}); pass the option items=FILE",
    )


def detect(path: Path) -> bool:
    """A folder (or items .jsonl) with an ``eval_results/`` folder of per-model results."""
    try:
        layout = _layout(path)
    except InputError:
        return True  # the layout is right; read() will ask which items file
    return layout is not None and next(layout[1].glob("*/results.json"), None) is not None


def _items(path: Path) -> pd.DataFrame:
    """The items file as a frame: line, source_file, text, source_id, turns, metadata."""
    rows = []
    for pos, (line, rec) in enumerate(iter_jsonl(path)):
        field = next((f for f in TEXT_FIELDS if f in rec), TEXT_FIELDS[0])
        text = rec.get(field)
        if not isinstance(text, str) or not text.strip():
            raise InputError(path, "missing or empty item text", line=line, field=field)
        idx = rec.get("idx", pos)
        if idx is None or str(idx).strip() == "":
            raise InputError(path, "missing item id", line=line, field="idx")
        meta = {k: rec[k] for k in META_FIELDS if k in rec}
        rows.append(
            {
                "line": line,
                "source_file": str(path),
                "text": text,
                "source_id": str(idx),
                "turns": 1,
                "metadata": json.dumps(meta),
            }
        )
    if not rows:
        raise InputError(path, "no items")
    items = pd.DataFrame(rows)
    dup = items["source_id"].duplicated()
    if dup.any():
        row = items[dup].iloc[0]
        raise InputError(
            path, f"item id {plain(row['source_id'])!r} repeats", line=int(row["line"]), field="idx"
        )
    return items


def _scores(path: Path, n_items: int, items_name: str) -> list[float]:
    """A model's results list, checked for length and values."""
    data = read_json(path)
    if not isinstance(data, list):
        raise InputError(path, f"expected a JSON list of scores, got {type(data).__name__}")
    if len(data) != n_items:
        raise InputError(
            path,
            f"{len(data)} results but {items_name} has {n_items} items; "
            "results must align with the items file line by line",
        )
    out = []
    for pos, value in enumerate(data, start=1):
        ok = isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value))
        if not ok or not 0 <= value <= 1:
            raise InputError(
                path,
                f"value {value!r} is not 0/1 or a number in [0, 1] (item {pos} of {items_name})",
                line=pos,
                field="score",
                unit="position",
            )
        out.append(float(value))
    return out


def read(path: Path, options: dict[str, str]) -> Batch:
    """Items as prompts, and every ``eval_results/<model>/results.json`` as result rows."""
    layout = _layout(path, options)
    if layout is None:
        raise InputError(path, f"expected an items .jsonl file and an {RESULTS}/ folder")
    items_path, results_dir = layout
    if not items_path.is_file():
        raise InputError(items_path, "no such items file")
    items = _items(items_path)
    frames = []
    for f in sorted(results_dir.glob("*/results.json")):
        scores = _scores(f, len(items), items_path.name)
        frames.append(
            pd.DataFrame(
                {
                    "line": range(1, len(scores) + 1),
                    "source_file": str(f),
                    "instance_id": items["source_id"],
                    "prompt_text": items["text"],
                    "model": f.parent.name,
                    "score": scores,
                }
            )
        )
    if not frames:
        raise InputError(results_dir, "no <model>/results.json files")
    results = pd.concat(frames, ignore_index=True)
    return Batch(
        kind="instances",
        format="math-results",
        path=path,
        rows_read=len(items) + len(results),
        prompts=items,
        results=results,
    )


ADAPTERS = [
    Adapter(
        name="math-results",
        description="items .jsonl + eval_results/<model>/results.json (MATH / EvalTree layout)",
        detect=detect,
        read=read,
    )
]

"""PandaLM test set (github.com/WeOpenML/PandaLM ``data/``): 3 human votes per item, plus the
gpt-3.5-turbo and PandaLM-7B verdicts on the same items.

Input: the folder, or ``testset-v1.json`` itself (then only the human votes are read).

* ``testset-v1.json`` — list of ``{idx, motivation_app, cmp_key, instruction, input,
  response1, response2, annotator1, annotator2, annotator3}``. Each annotator is one human
  vote, judge ``pandalm-annotator<N>``. ``cmp_key`` is ``"<model1>_<model2>"``; response1 is
  model1's (model_a).
* ``gpt-3.5-turbo-testset-v1.json`` (``gpt_result``: the strings ``"1"``, ``"2"``, ``"Tie"``
  and ``"garbage"``) and ``pandalm-7b-testset-v1.json`` (``pandalm_result``: 0/1/2) — LLM
  votes joined on ``idx``, judges ``gpt-3.5-turbo`` and ``pandalm-7b``.

Labels: 0 / "tie" -> tie, 1 -> model_a, 2 -> model_b. Anything else (the judge's unparseable
``"garbage"`` outputs, a missing label) is a tolerated skip recorded in ``Batch.skipped``.
The prompt is ``instruction``, plus a blank line and ``input`` when the input is non-empty.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..errors import InputError
from .base import Adapter, Batch, Skip
from .readers import peek_fields, read_json

TESTSET = "testset-v1.json"
JUDGE_FILES = {
    "gpt-3.5-turbo-testset-v1.json": ("gpt_result", "gpt-3.5-turbo", "gpt_reason"),
    "pandalm-7b-testset-v1.json": ("pandalm_result", "pandalm-7b", "pandalm_reason"),
}
ANNOTATORS = ("annotator1", "annotator2", "annotator3")
TESTSET_FIELDS = {"cmp_key", "response1", "response2", "annotator1"}
LABELS = {"0": "tie", "tie": "tie", "1": "model_a", "2": "model_b"}
ORIGIN = "https://github.com/WeOpenML/PandaLM"
LICENSE = "Apache-2.0"


def detect(path: Path) -> bool:
    """The PandaLM folder (holding testset-v1.json), or a JSON file of PandaLM test records."""
    if path.is_dir():
        return (path / TESTSET).is_file()
    if path.name == TESTSET:
        return True
    return path.suffix.lower() == ".json" and peek_fields(path) >= TESTSET_FIELDS


def label(value: object) -> str | None:
    """A PandaLM label (0/1/2 as int, float or string, or "Tie") as a winner; None if unknown."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return LABELS.get(str(value).strip().lower())


def _records(path: Path) -> list[dict]:
    data = read_json(path)
    if not isinstance(data, list):
        raise InputError(path, "expected a JSON array of records")
    for n, rec in enumerate(data, start=1):
        if not isinstance(rec, dict):
            raise InputError(path, f"expected an object, got {type(rec).__name__}", line=n, unit="record")
    return data


def _need_str(path: Path, n: int, rec: dict, key: str) -> str:
    """``rec[key]`` as text. The instruction may be blank and a response empty (a model may
    answer nothing); a response that is a JSON scalar (four are the literal ``true``) is kept
    as its JSON text."""
    value = rec.get(key)
    if key.startswith("response") and isinstance(value, bool | int | float):
        value = json.dumps(value)
    if not isinstance(value, str) or (key == "cmp_key" and not value.strip()):
        raise InputError(path, "missing or not a string", line=n, field=key, unit="record")
    return value


def _items(path: Path) -> dict[int, dict]:
    """The test items by idx, each with its record number, models, prompt and responses."""
    items: dict[int, dict] = {}
    for n, rec in enumerate(_records(path), start=1):
        if not isinstance(rec.get("idx"), int):
            raise InputError(path, "missing or not an integer", line=n, field="idx", unit="record")
        models = _need_str(path, n, rec, "cmp_key").split("_")
        if len(models) != 2 or not all(models):
            raise InputError(
                path,
                f"cmp_key {rec['cmp_key']!r} is not '<model1>_<model2>'",
                line=n,
                field="cmp_key",
                unit="record",
            )
        instruction = _need_str(path, n, rec, "instruction")
        extra = rec.get("input") or ""
        if not isinstance(extra, str):
            raise InputError(path, "not a string", line=n, field="input", unit="record")
        # one real item has a blank instruction and the task in ``input``: keep just the input
        parts = [t for t in (instruction, extra) if t.strip()]
        if not parts:
            raise InputError(path, "empty instruction and input", line=n, field="instruction", unit="record")
        prompt = "\n\n".join(parts)
        items[rec["idx"]] = {
            "n": n,
            "rec": rec,
            "model_a": models[0],
            "model_b": models[1],
            "prompt": prompt,
            "response_a": _need_str(path, n, rec, "response1"),
            "response_b": _need_str(path, n, rec, "response2"),
        }
    return items


def _vote(path: Path, n: int, item: dict, winner: str, judge: str, kind: str, meta: dict) -> dict:
    idx = item["rec"]["idx"]
    return {
        "line": n,
        "source_file": str(path),
        "battle_key": f"{idx}:{judge}",
        "source_id": str(idx),
        "prompt_text": item["prompt"],
        "model_a": item["model_a"],
        "model_b": item["model_b"],
        "winner": winner,
        "judge": judge,
        "judge_kind": kind,
        "turns": 1,
        "response_a": item["response_a"],
        "response_b": item["response_b"],
        "metadata": json.dumps(
            {
                "cmp_key": item["rec"]["cmp_key"],
                "motivation_app": item["rec"].get("motivation_app"),
                **meta,
            }
        ),
    }


def read(path: Path, options: dict[str, str]) -> Batch:
    """Human votes of the test set, and (for the folder) the two LLM judges' votes."""
    folder = path if path.is_dir() else path.parent
    testset = folder / TESTSET if path.is_dir() else path
    items = _items(testset)
    rows, skipped, read_n = [], [], len(items)
    for item in items.values():
        for ann in ANNOTATORS:
            winner = label(item["rec"].get(ann))
            if winner is None:
                skipped.append(Skip(item["n"], ann, f"label {item['rec'].get(ann)!r}", str(testset)))
                continue
            rows.append(_vote(testset, item["n"], item, winner, f"pandalm-{ann}", "human", {}))
    for name, (field, judge, reason) in JUDGE_FILES.items() if path.is_dir() else ():
        jpath = folder / name
        if not jpath.is_file():
            continue
        for n, rec in enumerate(_records(jpath), start=1):
            read_n += 1
            item = items.get(rec.get("idx"))
            if item is None:
                raise InputError(
                    jpath,
                    f"idx {rec.get('idx')!r} is not in {TESTSET}",
                    line=n,
                    field="idx",
                    unit="record",
                )
            winner = label(rec.get(field))
            if winner is None:
                skipped.append(Skip(n, field, f"unparseable verdict {rec.get(field)!r}", str(jpath)))
                continue
            meta = {"verdict": rec.get(field), "reason": rec.get(reason)}
            rows.append(_vote(jpath, n, item, winner, judge, "llm", meta))
    prompts = pd.DataFrame(
        [
            {
                "line": it["n"],
                "source_file": str(testset),
                "text": it["prompt"],
                "source_id": str(idx),
                "turns": 1,
                "metadata": json.dumps({"motivation_app": it["rec"].get("motivation_app")}),
            }
            for idx, it in items.items()
        ]
    )
    return Batch(
        kind="pairwise",
        format="pandalm",
        path=path,
        rows_read=read_n,
        battles=pd.DataFrame(rows),
        prompts=prompts,
        skipped=skipped,
        origin=ORIGIN,
        license=LICENSE,
        line_unit="record",
    )


ADAPTERS = [
    Adapter(
        name="pandalm",
        description="PandaLM test set: 3 human votes per item, plus gpt-3.5-turbo / PandaLM-7B",
        detect=detect,
        read=read,
    )
]

"""LLMFAO (github.com/dustalov/llmfao): crowd pairwise votes plus GPT verdicts on the same pairs.

Input: the LLMFAO folder (or ``crowd-comparisons.csv`` itself, which imports the crowd votes
only). Files used:

* ``crowd-comparisons.csv`` — ``id,prompt,model_x,model_y,worker,winner,left,right``; one
  human vote per row, judge ``llmfao-worker-<worker>``;
* ``gpt4-crowd-comparisons.csv`` / ``gpt3-crowd-comparisons.csv`` (folder input only) — the
  same pairs judged by GPT-4 (judge ``gpt-4``) and GPT-3.5 Turbo Instruct (judge
  ``gpt-3.5-turbo-instruct``, the model the LLMFAO README names for its ``gpt3`` requests);
* ``pairs-crowd.jsonl`` — prompt text and both outputs of each pair (joined on ``id``);
* ``prompts.jsonl`` — prompt ``type`` and ``slug`` (joined on the CSV ``prompt`` column);
* ``models.jsonl`` — model id -> name, to tell which pair output belongs to ``left``.

``left``/``right`` are model names and become model_a/model_b; ``winner`` left/right/tie
becomes model_a/model_b/tie. The vote identity is (pair id, judge).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..errors import InputError
from .base import Adapter, Batch
from .readers import iter_jsonl, read_csv

CROWD = "crowd-comparisons.csv"
LLM_FILES = {
    "gpt4-crowd-comparisons.csv": "gpt-4",
    "gpt3-crowd-comparisons.csv": "gpt-3.5-turbo-instruct",
}
WINNER_MAP = {"left": "model_a", "right": "model_b", "tie": "tie"}
ORIGIN = "https://github.com/dustalov/llmfao"
LICENSE = "CC BY 4.0"


def detect(path: Path) -> bool:
    """A folder holding ``crowd-comparisons.csv``, or that file itself."""
    if path.is_dir():
        return (path / CROWD).is_file()
    return path.name == CROWD


def _by_id(path: Path) -> dict[int, dict]:
    """Records of a JSONL side file keyed by their integer ``id`` (empty if the file is absent)."""
    if not path.is_file():
        return {}
    out = {}
    for line, rec in iter_jsonl(path):
        if "id" not in rec:
            raise InputError(path, "missing required field", line=line, field="id")
        out[int(rec["id"])] = rec
    return out


def _int(path: Path, line: int, field: str, value: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(path, f"expected an integer, got {value!r}", line=line, field=field) from None


def _votes(
    path: Path,
    judge: str | None,
    pairs: dict[int, dict],
    prompts: dict[int, dict],
    models: dict[int, str],
) -> list[dict]:
    """Battle rows of one comparisons CSV; ``judge`` None means crowd (judge from ``worker``)."""
    required = ["id", "prompt", "winner", "left", "right"] + (["worker"] if judge is None else [])
    df = read_csv(path, required=required)
    rows = []
    for rec in df.to_dict("records"):
        line = rec["line"]
        pair_id = _int(path, line, "id", rec["id"])
        prompt_id = _int(path, line, "prompt", rec["prompt"])
        winner = WINNER_MAP.get(str(rec["winner"]).strip().lower())
        if winner is None:
            raise InputError(
                path,
                f"unknown winner {rec['winner']!r} (expected left, right or tie)",
                line=line,
                field="winner",
            )
        pair = pairs.get(pair_id)
        prompt = prompts.get(prompt_id, {})
        text = pair.get("text") if pair else prompt.get("text")
        outputs = {}
        if pair and models:
            outputs = {
                models.get(pair.get("model_x")): pair.get("result_x"),
                models.get(pair.get("model_y")): pair.get("result_y"),
            }
        if judge is None:
            worker = str(rec["worker"]).strip()
            if not worker:
                raise InputError(path, "missing worker id", line=line, field="worker")
            who, kind = f"llmfao-worker-{worker}", "human"
        else:
            who, kind = judge, "llm"
        meta = {"pair": pair_id, "prompt": prompt_id, "slug": prompt.get("slug")}
        rows.append(
            {
                "line": line,
                "source_file": str(path),
                "battle_key": f"{pair_id}:{who}",
                "source_id": str(pair_id),
                "prompt_text": text,
                "model_a": rec["left"],
                "model_b": rec["right"],
                "winner": winner,
                "judge": who,
                "judge_kind": kind,
                "turns": 1,
                "response_a": outputs.get(rec["left"]),
                "response_b": outputs.get(rec["right"]),
                "metadata": json.dumps(meta),
            }
        )
    return rows


def _prompt_rows(prompts: dict[int, dict], used: set[int], path: Path) -> pd.DataFrame:
    """One prompts row (with type/slug metadata) for every prompt the votes refer to."""
    rows = []
    for n, pid in enumerate(sorted(used), start=1):
        rec = prompts.get(pid)
        if not rec or not rec.get("text"):
            continue
        meta = {"type": rec.get("type"), "slug": rec.get("slug"), "llmfao_prompt": pid}
        if rec.get("note"):
            meta["note"] = rec["note"]
        rows.append(
            {
                "line": n,
                "source_file": str(path),
                "text": rec["text"],
                "source_id": None,  # prompt_sources keeps the pair ids, as the votes give them
                "turns": 1,
                "metadata": json.dumps(meta),
            }
        )
    return pd.DataFrame(rows)


def read(path: Path, options: dict[str, str]) -> Batch:
    """Read the crowd votes (and, for a folder, the GPT verdicts) into one pairwise Batch."""
    folder = path if path.is_dir() else path.parent
    files: list[tuple[Path, str | None]] = [(folder / CROWD, None)]
    if path.is_dir():
        files += [(folder / name, judge) for name, judge in LLM_FILES.items()]
    pairs = _by_id(folder / "pairs-crowd.jsonl")
    prompts = _by_id(folder / "prompts.jsonl")
    models = {k: v.get("name") for k, v in _by_id(folder / "models.jsonl").items()}
    rows: list[dict] = []
    for f, judge in files:
        if f.is_file():
            rows += _votes(f, judge, pairs, prompts, models)
    battles = pd.DataFrame(rows)
    used = {json.loads(m)["prompt"] for m in battles["metadata"]} if rows else set()
    return Batch(
        kind="pairwise",
        format="llmfao",
        path=path,
        rows_read=len(rows),
        battles=battles,
        prompts=_prompt_rows(prompts, used, folder / "prompts.jsonl"),
        origin=ORIGIN,
        license=LICENSE,
    )


ADAPTERS = [
    Adapter(
        name="llmfao",
        description="LLMFAO crowd votes (crowd-comparisons.csv) plus GPT-4 / GPT-3.5 verdicts",
        detect=detect,
        read=read,
    )
]

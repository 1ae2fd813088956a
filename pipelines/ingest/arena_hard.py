"""Arena-Hard-Auto prompts (github.com/lmarena/arena-hard-auto ``data/``), and model answers.

Input: a ``question.jsonl``; the folder holding it (e.g. ``v0.1/``); or a folder of such
version folders (``arena_hard/`` with ``v0.1/`` and ``v2.0/``).

* ``question.jsonl`` — v0.1 ``{uid, category, cluster, prompt}``; v2.0 ``{uid, category,
  subcategory, prompt}``. The older FastChat layout ``{question_id, category, turns:
  [{content}]}`` is read too (turns joined by blank lines). source_id = uid; metadata keeps
  every other field (category, cluster, subcategory, ...) plus ``version`` (the name of the
  folder holding the file when it looks like ``v0.1``, else null).
* ``model_answer/<model>.jsonl`` beside it (optional) — ``{uid, model, messages: [{role,
  content}]}`` where an assistant ``content`` is ``{"answer": ...}`` or a string (older
  files: ``{question_id, model_id, choices: [{turns: [{content}]}]}``). Imported as
  ``responses``. Answers to unknown uids, and empty answers, are skipped and recorded.

The batch kind is 'prompts': there are no judgements here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from ..errors import InputError
from .base import Adapter, Batch, Skip
from .readers import iter_jsonl, peek_fields

QUESTIONS = "question.jsonl"
VERSION = re.compile(r"^v\d+(\.\d+)*$")
ORIGIN = "https://github.com/lmarena/arena-hard-auto"
LICENSE = "Apache-2.0"


def _question_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if (path / QUESTIONS).is_file():
        return [path / QUESTIONS]
    return sorted(p for p in path.glob(f"*/{QUESTIONS}") if p.is_file())


def detect(path: Path) -> bool:
    """A ``question.jsonl`` with uid/question_id and prompt/turns fields, or a folder of them."""
    if path.is_dir():
        files = _question_files(path)
        return bool(files) and all(_looks_like_questions(f) for f in files)
    return path.name == QUESTIONS and _looks_like_questions(path)


def _looks_like_questions(path: Path) -> bool:
    fields = peek_fields(path)
    return bool(fields & {"uid", "question_id"}) and bool(fields & {"prompt", "turns"})


def _text(path: Path, line: int, rec: dict) -> tuple[str, int]:
    """The prompt text and its number of turns."""
    if isinstance(rec.get("prompt"), str) and rec["prompt"].strip():
        return rec["prompt"], 1
    turns = rec.get("turns")
    if isinstance(turns, list) and turns:
        parts = [t.get("content") if isinstance(t, dict) else t for t in turns]
        if all(isinstance(p, str) for p in parts) and "".join(parts).strip():
            return "\n\n".join(parts), len(parts)
    raise InputError(path, "missing or empty prompt", line=line, field="prompt")


def _uid(path: Path, line: int, rec: dict) -> str:
    uid = rec.get("uid", rec.get("question_id"))
    if uid is None or str(uid).strip() == "":
        raise InputError(path, "missing required field", line=line, field="uid")
    return str(uid)


def _questions(path: Path) -> tuple[list[dict], dict[str, str]]:
    """Prompt rows of one question file, and uid -> prompt text."""
    version = path.parent.name if VERSION.match(path.parent.name) else None
    rows, texts = [], {}
    for line, rec in iter_jsonl(path):
        uid = _uid(path, line, rec)
        text, turns = _text(path, line, rec)
        meta = {k: v for k, v in rec.items() if k not in ("uid", "question_id", "prompt", "turns")}
        meta["version"] = version
        rows.append(
            {
                "line": line,
                "source_file": str(path),
                "text": text,
                "source_id": uid,
                "turns": turns,
                "metadata": json.dumps(meta),
            }
        )
        texts[uid] = text
    return rows, texts


def _answer_text(rec: dict) -> str:
    """Assistant turns of one answer record, joined by blank lines ('' if none)."""
    parts = []
    for msg in rec.get("messages") or []:
        if isinstance(msg, dict) and msg.get("role") == "assistant":
            content = msg.get("content")
            if isinstance(content, dict):
                content = content.get("answer")
            if isinstance(content, str):
                parts.append(content)
    if not parts:
        for choice in (rec.get("choices") or [])[:1]:
            for turn in choice.get("turns") or []:
                content = turn.get("content") if isinstance(turn, dict) else turn
                if isinstance(content, str):
                    parts.append(content)
    return "\n\n".join(parts)


def _answers(folder: Path, texts: dict[str, str], skipped: list[Skip]) -> tuple[list[dict], int]:
    """Response rows of every ``model_answer/*.jsonl`` in ``folder``, and records read."""
    rows, n = [], 0
    for f in sorted(folder.glob("model_answer/*.jsonl")):
        for line, rec in iter_jsonl(f):
            n += 1
            uid = _uid(f, line, rec)
            model = rec.get("model", rec.get("model_id")) or f.stem
            text = _answer_text(rec)
            if uid not in texts:
                skipped.append(Skip(line, "uid", f"no question with uid {uid!r}", str(f)))
            elif not text.strip():
                skipped.append(Skip(line, "messages", "empty answer", str(f)))
            else:
                rows.append(
                    {
                        "line": line,
                        "source_file": str(f),
                        "prompt_text": texts[uid],
                        "model": str(model),
                        "text": text,
                    }
                )
    return rows, n


def read(path: Path, options: dict[str, str]) -> Batch:
    """Prompts of every question file under ``path``, and the answers beside them."""
    files = _question_files(path)
    if not files:
        raise InputError(path, f"no {QUESTIONS} here or in its sub-folders")
    prompts, responses, skipped, n = [], [], [], 0
    for f in files:
        rows, texts = _questions(f)
        answers, n_answers = _answers(f.parent, texts, skipped)
        prompts += rows
        responses += answers
        n += len(rows) + n_answers
    return Batch(
        kind="prompts",
        format="arena-hard",
        path=path,
        rows_read=n,
        prompts=pd.DataFrame(prompts),
        responses=pd.DataFrame(responses),
        skipped=skipped,
        origin=ORIGIN,
        license=LICENSE,
    )


ADAPTERS = [
    Adapter(
        name="arena-hard",
        description="Arena-Hard-Auto question.jsonl (v0.1 / v2.0), with model_answer/ if present",
        detect=detect,
        read=read,
    )
]

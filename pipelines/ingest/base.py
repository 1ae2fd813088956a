"""What an adapter hands to the loader: a :class:`Batch` of normalised frames.

Adapters only read and normalise; they never touch the store. The loader
(:mod:`pipelines.ingest.load`) validates, hashes, deduplicates, computes style features and
writes the whole batch in one transaction.

Frames and their columns (missing optional columns are filled with nulls by the loader):

``battles`` — one row per vote
    line (int, 1-based line or record number in ``path``, used in error messages),
    source_file (str, optional: the file the row came from when ``path`` is a folder),
    battle_key (str|None: the source's own unique id of this vote; None lets the loader hash
    the vote's identity), source_id (str|None: question_id / id / idx / row as in the source),
    prompt_text (str|None), model_a, model_b (str), winner (one of WINNERS),
    judge (str), judge_kind ('human'|'llm'), tstamp (float unix seconds|None),
    anony (bool|None), language (str|None), turns (int|None),
    response_a, response_b (str|None: the answers, turns joined by blank lines; these three
    text columns may be pandas Categoricals, ideally sharing one set of categories, so that a
    text repeated across votes is held once — the arena reader does this),
    tokens_a, tokens_b, headers_a, headers_b, lists_a, lists_b, bold_a, bold_b
    (int|None: counts the source already gives, e.g. LMArena ``conv_metadata``; the loader
    computes missing ones from the responses), refusal_a, refusal_b (bool|None: a source flag;
    otherwise the loader's heuristic), metadata (str|None: JSON object of source extras).

``prompts`` — one row per prompt occurrence (texts may repeat; the loader dedups by hash)
    line, source_file, text (str), source_id (str|None), language, turns, metadata (JSON str).

``results`` — per-instance scores
    line, source_file, instance_id (str), prompt_text (str|None), model (str), score (float in [0, 1]).

``responses`` — answers that are not part of a vote (e.g. arena-hard model answers)
    line, source_file, prompt_text (str), model (str), text (str).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

WINNERS = ("model_a", "model_b", "tie", "tie_bothbad")
JUDGE_KINDS = ("human", "llm")

BATTLE_COLUMNS = [
    "line",
    "source_file",
    "battle_key",
    "source_id",
    "prompt_text",
    "model_a",
    "model_b",
    "winner",
    "judge",
    "judge_kind",
    "tstamp",
    "anony",
    "language",
    "turns",
    "response_a",
    "response_b",
    "tokens_a",
    "tokens_b",
    "headers_a",
    "headers_b",
    "lists_a",
    "lists_b",
    "bold_a",
    "bold_b",
    "refusal_a",
    "refusal_b",
    "metadata",
]
PROMPT_COLUMNS = ["line", "source_file", "text", "source_id", "language", "turns", "metadata"]
RESULT_COLUMNS = ["line", "source_file", "instance_id", "prompt_text", "model", "score"]
RESPONSE_COLUMNS = ["line", "source_file", "prompt_text", "model", "text"]


@dataclass
class Skip:
    """A row the adapter chose to leave out (a tolerated, documented row-level problem)."""

    line: int
    field: str
    reason: str
    source_file: str | None = None


@dataclass
class Batch:
    """Everything one adapter read from one input path, normalised.

    ``kind`` is 'pairwise' (votes), 'instances' (per-instance scores) or 'prompts'
    (prompts and possibly answers, no judgements). ``rows_read`` counts source records.
    """

    kind: str
    format: str
    path: Path
    rows_read: int
    battles: pd.DataFrame | None = None
    prompts: pd.DataFrame | None = None
    results: pd.DataFrame | None = None
    responses: pd.DataFrame | None = None
    skipped: list[Skip] = field(default_factory=list)
    origin: str | None = None
    license: str | None = None
    line_unit: str = "line"  # what ``line`` counts: 'line' (text lines) or 'record'


@dataclass(frozen=True)
class Adapter:
    """One input format: ``detect(path)`` says whether ``path`` looks like it (cheaply, from
    names and fields); ``read(path, options)`` returns a :class:`Batch` or raises InputError."""

    name: str
    description: str
    detect: object  # Callable[[Path], bool]
    read: object  # Callable[[Path, dict[str, str]], Batch]

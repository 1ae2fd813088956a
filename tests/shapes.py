"""Valid datasets of unusual shapes, for the shape-matrix tests (tests/test_shapes.py).

Every shape is a small, legal dataset a user could import: no ties, only ties, one vote, one
model pair, two groups of models that never meet, votes without answer texts, votes without
prompts (FastChat's clean_battle files), one judge, only LLM judges, no timestamps, a model that
never wins, a baseline always on the same side, and per-instance scores that are all 0 or all 1
or of one model only.
Prompts vary by topic so every shape that has them gets a tree.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
from helpers import MODELS, battles_frame, topic_prompts

from pipelines.ingest.base import Batch


def _votes(n: int = 48, **kwargs) -> pd.DataFrame:
    df = battles_frame(n, **kwargs)
    df["prompt_text"] = topic_prompts(n)
    return df


def _winners(df: pd.DataFrame, labels) -> pd.DataFrame:
    return df.assign(winner=[labels[i % len(labels)] for i in range(len(df))])


def _pairwise(df: pd.DataFrame) -> Batch:
    return Batch(kind="pairwise", format="test", path=Path("votes.jsonl"), rows_read=len(df), battles=df)


def _never_wins(df: pd.DataFrame) -> pd.DataFrame:
    loser = MODELS[-1]
    win = [
        "model_b" if a == loser else "model_a" if b == loser else w
        for a, b, w in zip(df["model_a"], df["model_b"], df["winner"], strict=True)
    ]
    return df.assign(winner=win)


def _fixed_side(df: pd.DataFrame) -> pd.DataFrame:
    """AlpacaEval's shape: one baseline, always model_b; the others always model_a."""
    others = [m for m in MODELS if m != "baseline"]
    return df.assign(model_a=[others[i % len(others)] for i in range(len(df))], model_b="baseline")


def _disconnected(df: pd.DataFrame) -> pd.DataFrame:
    pairs = [("m1", "m2"), ("m3", "m4")]
    return df.assign(
        model_a=[pairs[i % 2][0] for i in range(len(df))], model_b=[pairs[i % 2][1] for i in range(len(df))]
    )


def _scores(value: float | None, n: int = 30, models: tuple[str, ...] = MODELS) -> Batch:
    rows = [
        {
            "line": j * n + i + 1,
            "instance_id": str(i),
            "prompt_text": topic_prompts(n)[i],
            "model": m,
            "score": float((i + j) % 2) if value is None else value,
        }
        for j, m in enumerate(models)
        for i in range(n)
    ]
    return Batch(
        kind="instances",
        format="test",
        path=Path("scores.csv"),
        rows_read=len(rows),
        results=pd.DataFrame(rows),
    )


SHAPES: dict[str, Callable[[], Batch]] = {
    "no-ties": lambda: _pairwise(_winners(_votes(), ["model_a", "model_b"])),
    "all-ties": lambda: _pairwise(_winners(_votes(), ["tie", "tie_bothbad"])),
    "one-vote": lambda: _pairwise(_votes(1)),
    "one-pair": lambda: _pairwise(_votes(models=MODELS[:2])),
    "disconnected": lambda: _pairwise(_disconnected(_votes())),
    "no-texts": lambda: _pairwise(_votes().assign(response_a=None, response_b=None)),
    "no-prompts": lambda: _pairwise(_votes().assign(prompt_text=None, response_a=None, response_b=None)),
    "one-judge": lambda: _pairwise(_votes(judges=(("voter-1", "human"),))),
    "llm-judges": lambda: _pairwise(_votes(judges=(("gpt-4", "llm"), ("claude", "llm")))),
    "no-timestamps": lambda: _pairwise(_votes().assign(tstamp=None)),
    "never-wins": lambda: _pairwise(_never_wins(_votes())),
    "fixed-side": lambda: _pairwise(_fixed_side(_votes(models=(*MODELS, "baseline")))),
    "scores-all-0": lambda: _scores(0.0),
    "scores-all-1": lambda: _scores(1.0),
    "scores-mixed": lambda: _scores(None),
    "scores-one-model": lambda: _scores(None, models=MODELS[:1]),
}
PAIRWISE = [name for name in SHAPES if not name.startswith("scores")]

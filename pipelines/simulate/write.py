"""Writers of simulated votes in the ``lmsys/chatbot_arena_conversations`` schema.

Fields per vote, in the release's order: question_id, model_a, model_b, winner ('model_a' |
'model_b' | 'tie' | 'tie (bothbad)'), judge, conversation_a, conversation_b (each ``[{content,
role: 'user'}, {content, role: 'assistant'}]``), turn (1), anony (true), language, tstamp
(unix seconds), and with ``moderation=True`` openai_moderation and toxic_chat_tag (never
flagged). Three containers, all read by the ``arena-conversations`` adapter:

* ``jsonl`` — one JSON object per line (UTF-8, no ASCII escaping); the conversations of a
  (model, prompt) pair are serialised once and reused in every vote that shows them;
* ``json`` — the same objects as one JSON array (FastChat's ``clean_battle_conv_*.json``);
* ``parquet`` — as Hugging Face ships the release; texts are dictionary-encoded per row group
  and zstd-compressed, so repeated answers cost almost nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .votes import OUTCOMES

FORMATS = {"jsonl": "conversations.jsonl", "json": "conversations.json", "parquet": "conversations.parquet"}
CHUNK = 50_000  # votes per progress report (JSON)
GATHER = 200  # votes per os.writev call (5 buffers each, under IOV_MAX = 1024)
ROW_GROUP = 1_000_000  # votes per Parquet row group (each stores the texts it uses once)
MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


def moderation_fields() -> dict:
    """Never-flagged openai_moderation and toxic_chat_tag values."""
    return {
        "openai_moderation": {
            "categories": dict.fromkeys(MODERATION_CATEGORIES, False),
            "category_scores": dict.fromkeys(MODERATION_CATEGORIES, 0.0001),
            "flagged": False,
        },
        "toxic_chat_tag": {
            "roberta-large": {"flagged": False, "probability": 0.001},
            "t5-large": {"flagged": False, "score": 0.001},
        },
    }


def _js(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _heads_tails(
    start: int,
    stop: int,
    v: dict[str, np.ndarray],
    text: dict[str, list[str]],
    extra: str,
    sep: str,
    last: bool,
) -> tuple[list[bytes], list[bytes]]:
    """UTF-8 pieces of votes ``start:stop`` around their conversations: the heads (up to
    ``"conversation_a": ``) and the tails (after conversation_b: turn, anony, language, tstamp,
    ``extra`` fields, then ``sep``, except ``}\n`` for the final vote when ``last``)."""
    qid, judge, names, langs = text["qid"], text["judge"], text["models"], text["languages"]
    winners = [_js(w) for w in OUTCOMES]
    a, b = v["a"][start:stop].tolist(), v["b"][start:stop].tolist()
    w, j, p, ts = (v[k][start:stop].tolist() for k in ("winner", "judge", "prompt", "tstamp"))
    heads = [
        f'{{"question_id": {qid[start + i]}, "model_a": {names[a[i]]}, "model_b": {names[b[i]]}, '
        f'"winner": {winners[w[i]]}, "judge": {judge[j[i]]}, "conversation_a": '.encode()
        for i in range(stop - start)
    ]
    tails = [
        f', "turn": 1, "anony": true, "language": {langs[p[i]]}, "tstamp": {ts[i]:.4f}{extra}{sep}'.encode()
        for i in range(stop - start)
    ]
    if last:
        tails[-1] = tails[-1][: -len(sep)] + b"}\n"
    return heads, tails


def _write_all(fd: int, parts: list[bytes]) -> None:
    """Gather-write ``parts`` to file descriptor ``fd`` without joining them (os.writev where
    the platform has it), completing short writes."""
    if not hasattr(os, "writev"):
        os.write(fd, b"".join(parts))
        return
    total = sum(map(len, parts))
    done = os.writev(fd, parts)
    if done < total:
        rest = memoryview(b"".join(parts))[done:]
        while len(rest):
            rest = rest[os.write(fd, rest) :]


def write_votes(
    path: Path,
    fmt: str,
    v: dict[str, np.ndarray],
    prompts: list[str],
    languages: list[str],
    responses: list[str],
    resp_prompt: np.ndarray,
    question_ids: list[str],
    judges: list[str],
    models: list[str],
    *,
    moderation: bool = False,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write the votes to ``path`` in container ``fmt`` ('jsonl', 'json' or 'parquet').

    ``v`` holds arrays of shape (n_votes,): prompt, a, b, judge (indices), resp_a, resp_b
    (indices into ``responses``), winner (index into OUTCOMES), tstamp (unix seconds).
    ``resp_prompt[k]`` is the prompt index of response k. ``progress(done)`` is called after
    every chunk with the number of votes written so far.
    """
    if fmt == "parquet":
        _write_parquet(
            path,
            v,
            prompts,
            languages,
            responses,
            resp_prompt,
            question_ids,
            judges,
            models,
            moderation=moderation,
            progress=progress,
        )
        return
    n = len(v["a"])
    pj = [_js(t) for t in prompts]
    conv = [
        f'[{{"content": {pj[p]}, "role": "user"}}, {{"content": {_js(r)}, "role": "assistant"}}]'.encode()
        for r, p in zip(responses, resp_prompt.tolist(), strict=True)
    ]
    text = {
        "qid": [_js(q) for q in question_ids],
        "judge": [_js(j) for j in judges],
        "models": [_js(m) for m in models],
        "languages": [_js(x) for x in languages],
    }
    sep = "},\n" if fmt == "json" else "}\n"
    extra = ", " + json.dumps(moderation_fields(), ensure_ascii=False)[1:-1] if moderation else ""
    mid = b', "conversation_b": '
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        if fmt == "json":
            os.write(fd, b"[\n")
        for s in range(0, n, CHUNK):
            e = min(n, s + CHUNK)
            heads, tails = _heads_tails(s, e, v, text, extra, sep, last=fmt == "json" and e == n)
            ra, rb = v["resp_a"][s:e].tolist(), v["resp_b"][s:e].tolist()
            for g in range(0, e - s, GATHER):
                parts: list[bytes] = []
                for i in range(g, min(e - s, g + GATHER)):
                    parts += (heads[i], conv[ra[i]], mid, conv[rb[i]], tails[i])
                _write_all(fd, parts)
            if progress is not None:
                progress(e)
        if fmt == "json":
            os.write(fd, b"]\n")
    finally:
        os.close(fd)


def _dedup(values: list[str]) -> tuple[np.ndarray, list[str]]:
    """Codes (shape (len(values),), int64) into the list of distinct values, first-seen order."""
    code: dict[str, int] = {}
    codes = np.fromiter((code.setdefault(x, len(code)) for x in values), np.int64, len(values))
    return codes, list(code)


def _write_parquet(
    path: Path,
    v: dict[str, np.ndarray],
    prompts: list[str],
    languages: list[str],
    responses: list[str],
    resp_prompt: np.ndarray,
    question_ids: list[str],
    judges: list[str],
    models: list[str],
    *,
    moderation: bool,
    progress: Callable[[int], None] | None,
) -> None:
    """Parquet, one row group per ROW_GROUP votes. Every text column is an Arrow dictionary
    array whose dictionary holds each distinct text the row group uses once, so the writer
    stores each prompt and answer once per row group (a repeated dictionary value would make
    it fall back to plain encoding)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(v["a"])
    content_code, content = _dedup(prompts + responses)  # prompts first, then answers
    lang_code, langs = _dedup(languages)
    prompt_content = content_code[: len(prompts)]
    resp_content = content_code[len(prompts) :]

    def dict_col(codes: np.ndarray, values: list[str]) -> pa.DictionaryArray:
        used, inv = np.unique(codes, return_inverse=True)
        dictionary = pa.array([values[i] for i in used.tolist()], pa.string())
        return pa.DictionaryArray.from_arrays(pa.array(inv.astype(np.int32)), dictionary)

    def conversation(p: np.ndarray, r: np.ndarray) -> pa.ListArray:
        idx = np.empty(2 * len(p), dtype=np.int64)
        idx[0::2] = prompt_content[p]
        idx[1::2] = resp_content[r]
        roles = pa.DictionaryArray.from_arrays(
            pa.array(np.tile(np.array([0, 1], dtype=np.int8), len(p))), pa.array(["user", "assistant"])
        )
        msgs = pa.StructArray.from_arrays([dict_col(idx, content), roles], names=["content", "role"])
        return pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * len(p) + 1, 2, dtype=np.int32)), msgs)

    writer = None
    mod = moderation_fields() if moderation else None
    try:
        for s in range(0, n, ROW_GROUP):
            e = min(n, s + ROW_GROUP)
            sl = slice(s, e)
            cols = {
                "question_id": pa.array(question_ids[s:e], pa.string()),
                "model_a": dict_col(v["a"][sl], models),
                "model_b": dict_col(v["b"][sl], models),
                "winner": dict_col(v["winner"][sl].astype(np.int64), list(OUTCOMES)),
                "judge": dict_col(v["judge"][sl], judges),
                "conversation_a": conversation(v["prompt"][sl], v["resp_a"][sl]),
                "conversation_b": conversation(v["prompt"][sl], v["resp_b"][sl]),
                "turn": pa.array(np.ones(e - s, dtype=np.int64)),
                "anony": pa.array(np.ones(e - s, dtype=bool)),
                "language": dict_col(lang_code[v["prompt"][sl]], langs),
                "tstamp": pa.array(v["tstamp"][sl]),
            }
            if mod is not None:
                for key, value in mod.items():
                    cols[key] = pa.array([value] * (e - s))
            table = pa.table(cols)
            if writer is None:
                writer = pq.ParquetWriter(
                    path,
                    table.schema,
                    compression="zstd",
                    use_dictionary=True,
                    dictionary_pagesize_limit=1 << 31,
                    write_statistics=False,
                )
            writer.write_table(table, row_group_size=ROW_GROUP)
            if progress is not None:
                progress(e)
    finally:
        if writer is not None:
            writer.close()

"""Importers for the public Chatbot Arena / LMArena vote releases.

Every release is read through DuckDB's own readers (``read_json`` for JSON arrays and JSON
Lines, ``read_parquet`` for Parquet files or a folder of Parquet shards) and normalised with
one SQL projection, so a million votes read in seconds. When DuckDB cannot read a JSON file,
the line-aware Python readers (:mod:`.readers`) locate the bad line for the error message.

Adapters (published schemas, checked against the dataset cards and FastChat's source):

``arena-conversations`` — ``lmsys/chatbot_arena_conversations`` (33k votes, Apr-Jun 2023;
    HF ships Parquet, FastChat's ``clean_battle_conv_*.json`` is the JSON array it came from).
    Columns: question_id (str, unique per vote), model_a, model_b, winner ('model_a' |
    'model_b' | 'tie' | 'tie (bothbad)'), judge ('arena_user_<n>'), conversation_a/b
    (list of {role: 'user'|'assistant', content: str}), turn (int), anony (bool), language
    (detected language *name*, e.g. 'English'), tstamp (float unix seconds), openai_moderation
    ({categories: {...: bool}, category_scores: {...: float}, flagged: bool}), toxic_chat_tag
    ({roberta-large: {flagged, probability}, t5-large: {flagged, score}}).

``arena-100k`` — ``lmarena-ai/arena-human-preference-100k`` (Jun-Aug 2024, one Parquet file
    ``data/arena-explorer-preference-100k.parquet``). Columns: question_id, model_a, model_b,
    winner, conversation_a/b, turn, anony, language, tstamp, conv_metadata, is_code,
    is_refusal, dedup_tag ({high_freq, sampled}), category_tag, judge_hash (the voter id).

``arena-140k`` — ``lmarena-ai/arena-human-preference-140k`` (2025, Parquet shards
    ``data/train-0000k-of-00007.parquet``; pass the folder or one shard). Columns: id (uuid
    per vote), model_a, model_b, winner ('model_a' | 'model_b' | 'tie' | 'both_bad'),
    evaluation_session_id, evaluation_order, conversation_a/b (list of {role, content: list
    of {type, text, image, mimeType}}), full_conversation, conv_metadata, category_tag,
    language (ISO code), is_code, timestamp (datetime). There is no voter id: ``judge`` is
    ``'session:' + evaluation_session_id`` (all votes of one session come from one user).

``clean-battle`` — FastChat ``clean_battle_YYYYMMDD.json`` / the public
    ``clean_battle_YYYYMMDD_public.json`` (``fastchat/serve/monitor/clean_battle_data.py``):
    a JSON array of {model_a, model_b, winner, judge, turn, anony, language, tstamp} with,
    in newer files, conv_metadata, is_code, is_refusal, dedup_tag, category_tag. The
    'simple' mode deletes question_id and the conversations; the vote id is then None and
    the loader hashes the vote's identity.

Shared mapping to the battles frame (see :mod:`.base`):

* source_id = question_id (or id); battle_key = the same id (unique per vote in these
  releases), None when the file has neither.
* prompt_text = every user turn of conversation_a joined by a blank line; response_a/b =
  every assistant turn of conversation_a/b joined by a blank line (message parts of the 140k
  release are joined by a newline); turns = ``turn``, else conv_metadata.turns, else the
  number of user turns.
* winner: 'tie (bothbad)' and 'both_bad' become 'tie_bothbad'; other labels pass through
  unchanged so the loader rejects unknown ones with the file and line.
* judge_kind = 'human'; tstamp = unix seconds (``tstamp`` float, or ``timestamp`` read as UTC).
* style counts from conv_metadata: tokens = sum_assistant_{a,b}_tokens; headers = h1..h6 of
  header_count_{a,b}; lists = ordered + unordered of list_count_{a,b}; bold = '**' + '__' of
  bold_count_{a,b}. ``is_refusal`` is one flag for the whole battle (either side refused):
  false sets refusal_a = refusal_b = false, true leaves both to the loader's per-response
  heuristic (the flag is kept in metadata).
* metadata = JSON of category_tag, is_code, is_refusal, dedup_tag, the moderation flags
  (openai_moderation.flagged / categories, toxic_chat_tag), evaluation_session_id,
  evaluation_order and conv_metadata.sum_user_tokens, where present.
* line = the 1-based line of a JSON Lines record, else the record number (JSON array element
  or Parquet row, per shard for a folder).

Texts are dictionary-encoded: prompt_text, response_a and response_b are pandas Categoricals
sharing one set of categories (every distinct text once). Arena releases repeat the same
prompt and answer texts across many votes, so the frame holds each text once plus small
integer codes per vote; DuckDB finds the distinct texts (``GROUP BY`` in a second query over
the same rows, matched by ``WITH ORDINALITY``). Conversations stored as a list of
``{content: VARCHAR, role: VARCHAR}`` structs (Parquet, and JSON that DuckDB types that way)
are read with list functions directly; other shapes go through JSON as before, with the same
result.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError
from .base import Adapter, Batch
from .readers import check_bytes, is_parquet, peek_fields, read_records

HF = "https://huggingface.co/datasets/"
ORIGINS = {
    "arena-conversations": (
        HF + "lmsys/chatbot_arena_conversations",
        "prompts CC-BY-4.0, model outputs CC-BY-NC-4.0 (gated: accept the terms on HF)",
    ),
    "arena-100k": (HF + "lmarena-ai/arena-human-preference-100k", None),
    "arena-140k": (HF + "lmarena-ai/arena-human-preference-140k", "CC-BY-4.0"),
    "clean-battle": (
        "https://github.com/lm-sys/FastChat/blob/main/fastchat/serve/monitor/clean_battle_data.py",
        None,
    ),
}
REQUIRED = ("model_a", "model_b", "winner")
WINNER_ALIASES = {"tie (bothbad)": "tie_bothbad", "both_bad": "tie_bothbad"}
META_COLUMNS = (
    "category_tag",
    "is_code",
    "is_refusal",
    "dedup_tag",
    "toxic_chat_tag",
    "evaluation_session_id",
    "evaluation_order",
)
HEADER_KEYS = ("h1", "h2", "h3", "h4", "h5", "h6")
LIST_KEYS = ("ordered", "unordered")
BOLD_KEYS = ("**", "__")
NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL")
NL2 = "chr(10) || chr(10)"


# ---------------------------------------------------------------------------------- reading


def _shards(folder: Path) -> list[Path]:
    """The Parquet shards of a folder or of its ``data/`` subfolder (the HF layout), by name."""
    for pattern in ("*.parquet", "data/*.parquet"):
        shards = sorted(p for p in folder.glob(pattern) if p.is_file())
        if shards:
            return shards
    return []


def _files(path: Path) -> list[Path]:
    """The file itself, or the Parquet shards of a folder."""
    if path.is_dir():
        shards = _shards(path)
        if not shards:
            raise InputError(path, "folder holds no .parquet files (pass one file instead)")
        return shards
    return [path]


def _container(path: Path) -> str:
    """'parquet', 'array' (a JSON array of records) or 'jsonl' (one object per line)."""
    if path.is_dir() or is_parquet(path):
        return "parquet"
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    check_bytes(path, head)
    return "array" if head.decode("utf-8-sig", "replace").lstrip().startswith("[") else "jsonl"


def _source(kind: str, folder: bool = False, sample_all: bool = False, ordinality: bool = False) -> str:
    """A DuckDB table expression over the ``$files`` parameter. Parquet adds ``_row`` (the
    1-based row number) and, for a folder of shards, ``_file``. ``ordinality=True`` adds
    the 1-based position of each row in the whole input (DuckDB's ``WITH ORDINALITY``; its
    column is named ``ordinality`` unless the file has such a column, see :func:`_ordinality`)."""
    ordinal = " WITH ORDINALITY" if ordinality else ""
    if kind == "parquet":
        name = "filename AS _file, " if folder else ""
        return (
            "(SELECT * EXCLUDE (filename, file_row_number), " + name + "file_row_number + 1 AS _row "
            f"FROM read_parquet($files, filename = true, file_row_number = true){ordinal})"
        )
    fmt = "array" if kind == "array" else "newline_delimited"
    sample = ", sample_size = -1" if sample_all else ""
    return f"read_json($files, format = '{fmt}', records = true{sample}){ordinal}"


def _tree(typ: duckdb.typing.DuckDBPyType) -> dict | str:
    """A STRUCT type as nested {field: subtree}; other types as their type id."""
    if typ.id == "struct":
        return {name: _tree(child) for name, child in typ.children}
    return typ.id


def _describe(
    con: duckdb.DuckDBPyConnection, src: str, files: list[str]
) -> tuple[dict[str, str], dict | None, frozenset[str]]:
    """Column name -> DuckDB type name, conv_metadata's field tree when it is a STRUCT, and the
    conversation columns whose messages are plain ``{content, role}`` structs."""
    rel = con.sql(f"SELECT * FROM {src}", params={"files": files})  # noqa: S608
    types = dict(zip(rel.columns, rel.types, strict=True))
    tree = _tree(types["conv_metadata"]) if "conv_metadata" in types else None
    native = frozenset(name for name, _ in NESTED[:2] if name in types and _is_message_list(types[name]))
    return {k: str(v) for k, v in types.items()}, tree if isinstance(tree, dict) else None, native


def _is_message_list(typ: duckdb.typing.DuckDBPyType) -> bool:
    """A LIST of STRUCTs with VARCHAR ``content`` and ``role`` fields (FastChat's message shape)."""
    if typ.id != "list":
        return False
    child = typ.children[0][1]
    if child.id != "struct":
        return False
    fields = {name: str(t) for name, t in child.children}
    return fields.get("content") == "VARCHAR" and fields.get("role") == "VARCHAR"


def _ordinality(con: duckdb.DuckDBPyConnection, src: str, columns: set[str], files: list[str]) -> str:
    """The name DuckDB gave the ordinality column of ``src``, whose other columns are ``columns``
    ('ordinality', or a variant when the file has a column of that name)."""
    with_ord = con.sql(f"SELECT * FROM {src}", params={"files": files}).columns  # noqa: S608
    (name,) = [c for c in with_ord if c not in columns]
    return name


def _diagnose(path: Path, kind: str) -> None:
    """Re-read a JSON file that DuckDB refused with the line-aware reader: it raises an
    InputError at the first malformed line or non-object record."""
    if kind != "parquet" and not read_records(path):
        raise InputError(path, "no records")


def _error(path: Path, exc: duckdb.Error) -> InputError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InputError(path, f"cannot read the file ({first})")


# ------------------------------------------------------------------------------- expressions


def _q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    """A quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _as_json(col: str, typ: str) -> str:
    """``col`` as a JSON value: nested types are serialised, strings are parsed as JSON."""
    if typ == "JSON":
        return _q(col)
    if typ == "VARCHAR":
        return f"CASE WHEN json_valid({_q(col)}) THEN CAST({_q(col)} AS JSON) END"
    return f"to_json({_q(col)})"


def _path(*keys: str) -> str:
    return _lit("$" + "".join("." + '"' + k + '"' for k in keys))


def _turn_texts(conv: str, role: str) -> str:
    """Texts of the ``role`` messages of JSON conversation ``conv``, joined by a blank line.

    A message's content is a string (FastChat) or a list of parts with a ``text`` field
    (LMArena 140k; parts joined by a newline). NULL when there is no such message.
    """
    text = (
        "CASE json_type(m, '$.content') WHEN 'VARCHAR' THEN json_extract_string(m, '$.content') "
        "WHEN 'ARRAY' THEN array_to_string(json_extract_string(m, '$.content[*].text'), chr(10)) "
        "END"
    )
    picked = (
        f"list_filter(list_transform(json_extract({conv}, '$[*]'), lambda m: CASE WHEN "
        f"json_extract_string(m, '$.role') = {_lit(role)} THEN coalesce({text}, '') END), "
        "lambda t: t IS NOT NULL)"
    )
    return f"nullif(array_to_string({picked}, {NL2}), '')"


def _user_turns(conv: str) -> str:
    return (
        f"CAST(len(list_filter(json_extract({conv}, '$[*]'), "
        "lambda m: json_extract_string(m, '$.role') = 'user')) AS INTEGER)"
    )


def _message_texts(conv: str, role: str) -> str:
    """:func:`_turn_texts` for a list of ``{content: VARCHAR, role: VARCHAR}`` structs, read
    directly instead of through JSON (same result: NULL content counts as '', NULL messages
    and other roles are skipped). A two-message [user, assistant] conversation, the usual
    case, takes a shortcut."""
    general = (
        f"nullif(array_to_string(list_filter(list_transform({conv}, lambda m: CASE WHEN "
        f"m.role = {_lit(role)} THEN coalesce(m.content, '') END), lambda t: t IS NOT NULL), {NL2}), '')"
    )
    if role not in ("user", "assistant"):
        return general
    pos = 1 if role == "user" else 2
    return (
        f"CASE WHEN len({conv}) = 2 AND {conv}[1].role = 'user' AND {conv}[2].role = 'assistant' "
        f"THEN nullif(coalesce({conv}[{pos}].content, ''), '') ELSE {general} END"
    )


def _message_user_turns(conv: str) -> str:
    """:func:`_user_turns` for a list of ``{content, role}`` structs."""
    return f"CAST(len(list_filter({conv}, lambda m: m.role = 'user')) AS INTEGER)"


def _struct_path(keys: tuple[str, ...]) -> str:
    expr = _q("conv_metadata")
    for k in keys:
        expr = f"struct_extract({expr}, {_lit(k)})"
    return expr


def _node(tree: dict, keys: tuple[str, ...]) -> dict | str | None:
    """The sub-type of conv_metadata at ``keys`` (a dict for a struct), None if absent."""
    node: dict | str | None = tree
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


def _meta_int(tree: dict | None, *keys: str) -> str:
    """conv_metadata[keys...] as BIGINT: struct access when the column is a STRUCT (``tree``
    is its type), JSON extraction from ``_cm`` otherwise."""
    if tree is None:
        return f"TRY_CAST(json_extract_string(_cm, {_path(*keys)}) AS BIGINT)"
    node = _node(tree, keys)
    if node is None or isinstance(node, dict):
        return "CAST(NULL AS BIGINT)"
    return f"TRY_CAST({_struct_path(keys)} AS BIGINT)"


def _meta_sum(tree: dict | None, key: str, subkeys: tuple[str, ...]) -> str:
    """conv_metadata[key] summed over ``subkeys`` (an object of counts), or the number itself."""
    if tree is None:
        parts = " + ".join(f"coalesce({_meta_int(None, key, s)}, 0)" for s in subkeys)
        return (
            f"CASE json_type(_cm, {_path(key)}) WHEN 'OBJECT' THEN {parts} "
            f"WHEN 'NULL' THEN NULL ELSE {_meta_int(None, key)} END"
        )
    node = _node(tree, (key,))
    if not isinstance(node, dict):
        return _meta_int(tree, key)
    parts = " + ".join(f"coalesce({_meta_int(tree, key, s)}, 0)" for s in subkeys)
    return f"CASE WHEN {_struct_path((key,))} IS NULL THEN NULL ELSE {parts} END"


def _seconds(col: str, typ: str) -> str:
    """Unix seconds from a numeric, string or timestamp column (strings without a zone: UTC)."""
    c = _q(col)
    if typ.startswith("TIMESTAMP"):
        return f"epoch(CAST({c} AS TIMESTAMPTZ))"
    if typ.startswith(NUMERIC):
        return f"CAST({c} AS DOUBLE)"
    v = f"CAST({c} AS VARCHAR)"
    if typ == "JSON":
        v = f"json_extract_string({c}, '$')"
    return f"coalesce(TRY_CAST({v} AS DOUBLE), epoch(TRY_CAST({v} AS TIMESTAMPTZ)))"


def _text(col: str, typ: str) -> str:
    if typ == "JSON":
        return f"json_extract_string({_q(col)}, '$')"
    return f"CAST({_q(col)} AS VARCHAR)"


def _judge(cols: dict[str, str], placeholder: str) -> str:
    """The voter id: ``judge``, else ``judge_hash`` (100k), else 'session:' + session id (140k),
    else ``placeholder`` for every row."""
    for name in ("judge", "judge_hash"):
        if name in cols:
            return _text(name, cols[name])
    if "evaluation_session_id" in cols:
        sid = _text("evaluation_session_id", cols["evaluation_session_id"])
        return f"'session:' || {sid}"
    return _lit(placeholder)


def _metadata(cols: dict[str, str], tree: dict | None) -> str:
    """JSON text of the source extras present in ``cols`` (NULL when there are none)."""
    pairs = []
    for name in META_COLUMNS:
        if name in cols:
            pairs.append(f"{_lit(name)}, {_as_json(name, cols[name])}")
    if "openai_moderation" in cols:
        om = "_om"
        pairs.append(f"'openai_flagged', json_extract({om}, '$.flagged')")
        pairs.append(f"'openai_categories', json_extract({om}, '$.categories')")
    if "conv_metadata" in cols:
        pairs.append(f"'sum_user_tokens', {_meta_int(tree, 'sum_user_tokens')}")
    if not pairs:
        return "CAST(NULL AS VARCHAR)"
    return f"CAST(json_object({', '.join(pairs)}) AS VARCHAR)"


NULL_TEXT = "CAST(NULL AS VARCHAR)"


def _inner(cols: dict[str, str], tree: dict | None, native: frozenset[str] = frozenset()) -> str:
    """Select list that parses the nested columns to JSON once (``_ca``, ``_cb``, ``_om``, and
    ``_cm`` unless conv_metadata is a STRUCT; not the ``native`` message lists) and adds
    ``_file`` / ``_row`` where the reader does not give them."""
    out = ["*"]
    for name, alias in NESTED:
        if name in native or (name == "conv_metadata" and tree is not None):
            continue
        if name in cols:
            out.append(f"{_as_json(name, cols[name])} AS {alias}")
    if "_row" not in cols:
        out.append("CAST(NULL AS BIGINT) AS _row")
    return ", ".join(out)


NESTED = (
    ("conversation_a", "_ca"),
    ("conversation_b", "_cb"),
    ("conv_metadata", "_cm"),
    ("openai_moderation", "_om"),
)


def _turns(cols: dict[str, str], tree: dict | None, native: frozenset[str] = frozenset()) -> str:
    if "turn" in cols:
        return f"TRY_CAST({_text('turn', cols['turn'])} AS INTEGER)"
    if "conv_metadata" in cols:
        return f"CAST({_meta_int(tree, 'turns')} AS INTEGER)"
    if "conversation_a" in native:
        return _message_user_turns(_q("conversation_a"))
    if "conversation_a" in cols:
        return _user_turns("_ca")
    return "CAST(NULL AS INTEGER)"


TEXTS = ("prompt_text", "response_a", "response_b")  # the dictionary-encoded frame columns


def _texts(cols: dict[str, str], native: frozenset[str]) -> dict[str, str]:
    """SQL of each text column (``NULL_TEXT`` when the file has no conversation for it)."""

    def turn_texts(name: str, alias: str, role: str) -> str:
        if name in native:
            return _message_texts(_q(name), role)
        return _turn_texts(alias, role) if name in cols else NULL_TEXT

    return {
        "prompt_text": turn_texts("conversation_a", "_ca", "user"),
        "response_a": turn_texts("conversation_a", "_ca", "assistant"),
        "response_b": turn_texts("conversation_b", "_cb", "assistant"),
    }


def _style(cols: dict[str, str], tree: dict | None, side: str) -> list[str]:
    """tokens/headers/lists/bold of one side from conv_metadata (NULL without it)."""
    names = ("tokens", "headers", "lists", "bold")
    if "conv_metadata" not in cols:
        return [f"CAST(NULL AS BIGINT) AS {n}_{side}" for n in names]
    exprs = (
        _meta_int(tree, f"sum_assistant_{side}_tokens"),
        _meta_sum(tree, f"header_count_{side}", HEADER_KEYS),
        _meta_sum(tree, f"list_count_{side}", LIST_KEYS),
        _meta_sum(tree, f"bold_count_{side}", BOLD_KEYS),
    )
    return [f"{e} AS {n}_{side}" for e, n in zip(exprs, names, strict=True)]


def _refusal(cols: dict[str, str]) -> str:
    """false when the battle-level ``is_refusal`` flag is false, else NULL (unknown side)."""
    if "is_refusal" not in cols:
        return "CAST(NULL AS BOOLEAN)"
    flag = f"TRY_CAST({_text('is_refusal', cols['is_refusal'])} AS BOOLEAN)"
    return f"CASE WHEN {flag} = false THEN false END"


def _problems(cols: dict[str, str], tstamp: str, time_col: str | None) -> list[str]:
    """Boolean columns ``_bad_<field>`` flagging values that are present but unusable."""
    out = []
    if time_col:
        out.append(f"({_q(time_col)} IS NOT NULL AND {tstamp} IS NULL) AS {_q('_bad_' + time_col)}")
    for name, alias in NESTED[:3]:
        if name in cols and cols[name] == "VARCHAR":
            out.append(f"({_q(name)} IS NOT NULL AND {alias} IS NULL) AS {_q('_bad_' + name)}")
    return out


def _outer(
    cols: dict[str, str],
    tree: dict | None,
    placeholder: str,
    native: frozenset[str] = frozenset(),
    with_texts: bool = True,
) -> str:
    """Select list producing the battles frame columns (plus ``_file``, ``_row``, ``_bad_*``).

    ``with_texts=False`` leaves the text columns NULL (the caller fills them from
    :func:`_texts_sql`)."""
    key = next((c for c in ("question_id", "id") if c in cols), None)
    key_expr = _text(key, cols[key]) if key else NULL_TEXT
    winner = _text("winner", cols["winner"])
    aliases = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in WINNER_ALIASES.items())
    time_col = next((c for c in ("tstamp", "timestamp") if c in cols), None)
    tstamp = _seconds(time_col, cols[time_col]) if time_col else "CAST(NULL AS DOUBLE)"
    texts = _texts(cols, native) if with_texts else dict.fromkeys(TEXTS, NULL_TEXT)

    def text_or_null(name: str) -> str:
        return _text(name, cols[name]) if name in cols else NULL_TEXT

    return ", ".join(
        [
            *(["_file"] if "_file" in cols else []),
            "_row",
            f"{key_expr} AS source_id",
            f"{key_expr} AS battle_key",
            f"{texts['prompt_text']} AS prompt_text",
            f"{_text('model_a', cols['model_a'])} AS model_a",
            f"{_text('model_b', cols['model_b'])} AS model_b",
            f"CASE {winner} {aliases} ELSE {winner} END AS winner",
            f"{_judge(cols, placeholder)} AS judge",
            "'human' AS judge_kind",
            f"{tstamp} AS tstamp",
            f"TRY_CAST({text_or_null('anony')} AS BOOLEAN) AS anony",
            f"{text_or_null('language')} AS language",
            f"{_turns(cols, tree, native)} AS turns",
            f"{texts['response_a']} AS response_a",
            f"{texts['response_b']} AS response_b",
            *_style(cols, tree, "a"),
            *_style(cols, tree, "b"),
            f"{_refusal(cols)} AS refusal_a",
            f"{_refusal(cols)} AS refusal_b",
            f"{_metadata(cols, tree)} AS metadata",
            *_problems(cols, tstamp, time_col),
        ]
    )


# ------------------------------------------------------------------------------------- frame


LINES_CHUNK = 1 << 24  # bytes read at a time by _jsonl_lines


def _jsonl_lines(path: Path) -> np.ndarray:
    """1-based numbers of the non-blank lines of a JSON Lines file (DuckDB skips blank ones).

    A line is blank when ``line.strip()`` (ASCII white space) is empty. Reads the file in
    chunks and splits at ``\\n`` with ``bytes.find``; a line starting with a byte above
    space (as records do) is known non-blank without copying it."""
    lines = []
    n = 1
    seen = False  # the line begun in an earlier chunk has a non-blank byte
    with open(path, "rb") as fh:
        while chunk := fh.read(LINES_CHUNK):
            pos = 0
            find = chunk.find
            while (end := find(b"\n", pos)) >= 0:
                if seen or (end > pos and (chunk[pos] > 32 or chunk[pos:end].strip())):
                    lines.append(n)
                seen = False
                n += 1
                pos = end + 1
            seen = seen or bool(chunk[pos:].strip())
    if seen:
        lines.append(n)
    return np.asarray(lines, dtype=np.int64)


def _texts_sql(
    cols: dict[str, str], tree: dict | None, native: frozenset[str], src: str, ordinal: str
) -> str:
    """Query of the distinct texts of the frame: ``text`` and ``pos``, the list of
    ``(row - 1) * 3 + slot`` for every row (its ordinality ``ordinal`` in ``src``) and text
    column (slot = index in TEXTS) holding it. The file must have a conversation column."""
    exprs = _texts(cols, native)
    slots = [(i, exprs[name]) for i, name in enumerate(TEXTS) if exprs[name] != NULL_TEXT]
    k = len(TEXTS)
    per_row = ", ".join([f"{_q(ordinal)} AS _ord", *(f"{e} AS _t{i}" for i, e in slots)])
    pos = ", ".join(f"(_ord - 1) * {k} + {i}" for i, _ in slots)
    texts = ", ".join(f"_t{i}" for i, _ in slots)
    return (
        f"SELECT text, list(pos) AS pos FROM ("  # noqa: S608 - quoted identifiers only
        f"SELECT unnest([{pos}]) AS pos, unnest([{texts}]) AS text FROM ("
        f"SELECT {per_row} FROM (SELECT {_inner(cols, tree, native)} FROM {src}))"
        ") WHERE text IS NOT NULL GROUP BY text"
    )


def _decode_texts(path: Path, table: pa.Table, rows: int) -> dict[str, pd.Categorical]:
    """The text columns as Categoricals over one shared set of categories (the distinct texts
    of ``table``, from :func:`_texts_sql`), for a frame of ``rows`` rows."""
    k = len(TEXTS)
    pos = table.column("pos").combine_chunks()
    flat = pc.list_flatten(pos).to_numpy()
    group = pc.list_parent_indices(pos).to_numpy()
    if len(flat) and (flat.min() < 0 or flat.max() >= rows * k):
        raise InputError(path, "the file changed while it was being read; import it again")
    codes = np.full(rows * k, -1, dtype=np.int32)
    codes[flat] = group
    dtype = pd.CategoricalDtype(pd.Index(table.column("text").to_pandas()), ordered=False)
    return {name: pd.Categorical.from_codes(codes[i::k], dtype=dtype) for i, name in enumerate(TEXTS)}


def _query(path: Path, kind: str, files: list[str], placeholder: str, sample_all: bool):
    """The battles frame of ``files``: one query for the per-vote columns and, when the file
    has conversations, one for the distinct texts (see :func:`_texts_sql`)."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'").fetchall()
        src = _source(kind, path.is_dir(), sample_all)
        cols, tree, native = _describe(con, src, files)
        for name in REQUIRED:
            if name not in cols:
                raise InputError(
                    path,
                    f"missing required field (the records have: {', '.join(sorted(cols))})",
                    line=1,
                    field=name,
                    unit="line" if kind == "jsonl" else "record",
                )
        params = {"files": files}
        sql = (
            f"SELECT {_outer(cols, tree, placeholder, native, with_texts=False)} "  # noqa: S608
            f"FROM (SELECT {_inner(cols, tree, native)} FROM {src})"
        )
        table = con.sql(sql, params=params).to_arrow_table()
        df = table.to_pandas(types_mapper=pd.ArrowDtype)  # zero-copy: Arrow-backed columns
        del table
        present = [name for name, expr in _texts(cols, native).items() if expr != NULL_TEXT]
        if present:
            src_ord = _source(kind, path.is_dir(), sample_all, ordinality=True)
            ordinal = _ordinality(con, src_ord, set(cols), files)
            texts_sql = _texts_sql(cols, tree, native, src_ord, ordinal)
            texts = con.sql(texts_sql, params=params).to_arrow_table()
            for name, values in _decode_texts(path, texts, len(df)).items():
                if name in present:
                    df[name] = values
        return df
    finally:
        con.close()


def read_frame(path: Path, placeholder: str) -> tuple[pd.DataFrame, str]:
    """Read a release file (or folder of Parquet shards) into the battles frame.

    Returns the frame (with ``line`` and, for folders, ``source_file``) and the container
    kind ('parquet', 'array' or 'jsonl'). Raises InputError naming file, line and field.
    """
    files = _files(path)
    kind = _container(path)
    names = [str(f) for f in files]
    try:
        df = _query(path, kind, names, placeholder, sample_all=False)
    except duckdb.Error:
        _diagnose(path, kind)
        try:  # valid JSON that DuckDB mis-typed from its sample: infer from every record
            df = _query(path, kind, names, placeholder, sample_all=True)
        except duckdb.Error as exc2:
            raise _error(path, exc2) from None
    if len(df) == 0:
        raise InputError(path, "no records")
    unit = "line" if kind == "jsonl" else "record"
    if kind == "parquet":
        df["line"] = df["_row"].astype("int64")
        if path.is_dir():
            df["source_file"] = df["_file"].astype(object)
    elif kind == "jsonl":
        df["line"] = _jsonl_lines(path)[: len(df)]
    else:
        df["line"] = np.arange(1, len(df) + 1, dtype=np.int64)
    _check(path, df, unit)
    return df.drop(columns=[c for c in df.columns if c.startswith("_")]), kind


def _check(path: Path, df: pd.DataFrame, unit: str) -> None:
    """Raise for the first row whose ``_bad_<field>`` flag is set."""
    for col in [c for c in df.columns if c.startswith("_bad_")]:
        bad = df[col].fillna(False).to_numpy(dtype=bool)
        if bad.any():
            row = df[bad].iloc[0]
            field = col.removeprefix("_bad_")
            where = Path(row["source_file"]) if "source_file" in df.columns else path
            what = "a number or a date-time" if field in ("tstamp", "timestamp") else "JSON"
            raise InputError(where, f"value is not {what}", line=int(row["line"]), field=field, unit=unit)


# ---------------------------------------------------------------------------------- adapters


def _reader(name: str) -> Callable[[Path, dict[str, str]], Batch]:
    def read(path: Path, options: dict[str, str]) -> Batch:
        """Read one release file (or folder of Parquet shards) into a pairwise Batch."""
        df, kind = read_frame(Path(path), f"{name}:unknown")
        origin, license_ = ORIGINS[name]
        return Batch(
            kind="pairwise",
            format=name,
            path=Path(path),
            rows_read=len(df),
            battles=df,
            origin=origin,
            license=license_,
            line_unit="line" if kind == "jsonl" else "record",
        )

    return read


def _fields(path: Path) -> set[str]:
    """Field names of ``path`` (of its first Parquet shard for a folder); empty if unknown."""
    try:
        if path.is_dir():
            shards = _shards(path)
            if not shards:
                return set()
            path = shards[0]
        if not path.is_file() or path.suffix.lower() in (".csv", ".tsv"):
            return set()
    except OSError:
        return set()
    return peek_fields(path)


CONVERSATIONS = {"question_id", "model_a", "model_b", "winner", "judge", "tstamp"}
CONVERSATIONS |= {"conversation_a", "conversation_b"}
PREFERENCE = {"model_a", "model_b", "winner", "conversation_a", "conversation_b"}
PREFERENCE |= {"conv_metadata"}
CLEAN_BATTLE = {"model_a", "model_b", "winner", "judge", "turn", "anony", "tstamp"}


def detect_conversations(path: Path) -> bool:
    """chatbot_arena_conversations: per-vote conversations with a judge, no conv_metadata."""
    f = _fields(path)
    return f >= CONVERSATIONS and "conv_metadata" not in f


def detect_100k(path: Path) -> bool:
    """arena-human-preference-100k (and conv releases with conv_metadata): question_id-keyed."""
    f = _fields(path)
    return f >= PREFERENCE and "evaluation_session_id" not in f and "id" not in f


def detect_140k(path: Path) -> bool:
    """arena-human-preference-140k: id + evaluation_session_id, conversations of parts."""
    f = _fields(path)
    return f >= PREFERENCE and {"id", "evaluation_session_id"} <= f


def detect_clean_battle(path: Path) -> bool:
    """FastChat clean_battle_*.json: FastChat's vote keys and no conversation text."""
    f = _fields(path)
    if "conversation_a" in f or not {"model_a", "model_b", "winner"} <= f:
        return False
    return f >= CLEAN_BATTLE or (path.name.startswith("clean_battle") and "judge" in f)


ADAPTERS = [
    Adapter(
        "arena-conversations",
        "lmsys/chatbot_arena_conversations (Parquet, JSON array or JSONL)",
        detect_conversations,
        _reader("arena-conversations"),
    ),
    Adapter(
        "arena-140k",
        "lmarena-ai/arena-human-preference-140k (Parquet shards or a folder of them, JSON)",
        detect_140k,
        _reader("arena-140k"),
    ),
    Adapter(
        "arena-100k",
        "lmarena-ai/arena-human-preference-100k (Parquet, JSON array or JSONL)",
        detect_100k,
        _reader("arena-100k"),
    ),
    Adapter(
        "clean-battle",
        "FastChat clean_battle_YYYYMMDD.json (JSON array, JSONL or Parquet)",
        detect_clean_battle,
        _reader("clean-battle"),
    ),
]

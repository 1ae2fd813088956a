"""Write :class:`~pipelines.ingest.base.Batch` objects into the store, all in one transaction.

Steps, in order: validate every frame (first bad row -> InputError naming file, line, field);
hash prompts and responses by content; give each vote a battle id (the source's own, or a
hash of the vote's identity); reject duplicate ids whose winners conflict, inside the batch
or against the store; compute style features in DuckDB (see :mod:`pipelines.style`); insert
only what is new. A failure anywhere rolls back the whole import.

Votes repeat texts (arena releases reuse one answer across many votes), so the battles path
works on distinct texts: the frame's prompt and answer columns become integer codes into one
table of distinct texts (adapters may hand them over already dictionary-encoded, as pandas
Categoricals); each distinct prompt is hashed once, each distinct (prompt, model, answer) once,
and the style features are computed once per distinct new answer text. The ids and features
are those of the per-row definitions.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from .. import __version__
from ..errors import ArenatreeError, InputError, plain
from ..store import one, run, transaction
from ..style import FEATURE_COLUMNS, response_features_sql
from ..text import clean_name, clean_texts, name_problem
from .base import (
    BATTLE_COLUMNS,
    JUDGE_KINDS,
    PROMPT_COLUMNS,
    RESPONSE_COLUMNS,
    RESULT_COLUMNS,
    WINNERS,
    Batch,
)

HASH_LEN = 16  # hex characters of sha256 kept as ids
TEXT_COLUMNS = ("prompt_text", "response_a", "response_b")  # battles columns holding texts


def text_hash(text: str) -> str:
    """Content id of a text: the first 16 hex digits of its UTF-8 sha256 (as the store uses)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_LEN]


def _h(expr: str) -> str:
    return f"substr(sha256({expr}), 1, {HASH_LEN})"


@dataclass
class ImportReport:
    """What one input path added to the store."""

    dataset: str
    path: str
    format: str
    kind: str
    rows_read: int
    rows_skipped: int
    added_prompts: int
    added_battles: int
    added_results: int
    added_responses: int
    duplicates: int
    already_imported: bool = False
    skipped_examples: list | None = None
    skipped_reasons: dict[str, int] | None = None  # reason -> rows skipped for it, most first

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def path_sha256(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents, sorted)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f is not path:
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _frame(df: pd.DataFrame | None, columns: list[str]) -> pd.DataFrame | None:
    if df is None or len(df) == 0:
        return None
    out = df.copy()
    for c in columns:
        if c not in out.columns:
            out[c] = None
    return out[columns].reset_index(drop=True)


def _where(batch: Batch, row: pd.Series) -> Path:
    src = row.get("source_file")
    return Path(src) if isinstance(src, str) and src else batch.path


def _fail(batch: Batch, df: pd.DataFrame, mask: pd.Series | np.ndarray, field: str, message) -> None:
    """Raise for the first row where ``mask`` (a boolean Series or array over ``df``'s rows)
    holds; ``message`` may be a callable of the row."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return
    row = df[mask].iloc[0]
    msg = message(row) if callable(message) else message
    line = int(row["line"]) if pd.notna(row["line"]) else None
    raise InputError(_where(batch, row), msg, line=line, field=field, unit=batch.line_unit)


def _blank(s: pd.Series) -> pd.Series:
    return s.isna() | (s.astype(str).str.strip() == "")


def validate_battles(batch: Batch, df: pd.DataFrame) -> None:
    """Required fields, labels and model_a != model_b, row by row in file order."""
    for col in ("model_a", "model_b", "winner", "judge", "judge_kind"):
        _fail(batch, df, _blank(df[col]), col, "missing required value")
    _fail(
        batch,
        df,
        ~df["winner"].isin(WINNERS),
        "winner",
        lambda r: f"unknown winner label {str(r['winner'])!r} (expected one of {', '.join(WINNERS)})",
    )
    _fail(
        batch,
        df,
        ~df["judge_kind"].isin(JUDGE_KINDS),
        "judge_kind",
        lambda r: f"unknown judge kind {str(r['judge_kind'])!r} (expected human or llm)",
    )
    _fail(
        batch,
        df,
        df["model_a"].astype(str) == df["model_b"].astype(str),
        "model_b",
        lambda r: f"model_a and model_b are the same model {str(r['model_a'])!r}",
    )


def validate_results(batch: Batch, df: pd.DataFrame) -> None:
    """Required fields, scores in [0, 1], and one score per (instance, model) in the batch."""
    for col in ("instance_id", "model"):
        _fail(batch, df, _blank(df[col]), col, "missing required value")
    score = pd.to_numeric(df["score"], errors="coerce")
    _fail(
        batch,
        df,
        score.isna() | (score < 0) | (score > 1),
        "score",
        lambda r: f"score {plain(r['score'])!r} is not a number in [0, 1]",
    )
    keys = df.assign(instance_id=df["instance_id"].astype(str), score=score)
    scores = keys.groupby(["instance_id", "model"])["score"].transform("nunique")
    if (scores > 1).any():
        first = keys[scores > 1].iloc[0]
        same = keys[(keys["instance_id"] == first["instance_id"]) & (keys["model"] == first["model"])]
        _fail(
            batch,
            df,
            df.index.isin(same.index[1:2]),
            "score",
            f"instance {plain(first['instance_id'])!r} of model {plain(first['model'])!r} has "
            "conflicting scores "
            f"{sorted(same['score'].unique().tolist())}",
        )


def validate_prompts(batch: Batch, df: pd.DataFrame, field: str = "text") -> None:
    _fail(batch, df, _blank(df[field]), field, "missing or empty text")


def _conflicts(batch: Batch, con: duckdb.DuckDBPyConnection, dataset: str) -> None:
    """Duplicate battle ids with different winners, inside the batch or against the store."""
    row = one(
        con,
        """
        SELECT a.line, a.source_file, a.battle_id, a.winner, b.line, b.winner
        FROM b_new a JOIN b_new b
          ON a.battle_id = b.battle_id AND a.winner <> b.winner AND a.line > b.line
        ORDER BY a.line LIMIT 1
        """,
    )
    if row:
        line, src, bid, win, other_line, other_win = row
        raise InputError(
            Path(src) if src else batch.path,
            f"battle id {bid!r} appears again with winner {win!r} (line {other_line} says "
            f"{other_win!r}); conflicting duplicate votes",
            line=int(line),
            field="winner",
            unit=batch.line_unit,
        )
    row = one(
        con,
        """
        SELECT n.line, n.source_file, n.battle_id, n.winner, s.winner
        FROM b_new n JOIN battles s ON s.dataset = ? AND s.battle_id = n.battle_id
        WHERE s.winner <> n.winner ORDER BY n.line LIMIT 1
        """,
        [dataset],
    )
    if row:
        line, src, bid, win, stored = row
        raise InputError(
            Path(src) if src else batch.path,
            f"battle id {bid!r} is already stored with winner {stored!r}, this file says {win!r}",
            line=int(line),
            field="winner",
            unit=batch.line_unit,
        )


def _ensure_dataset(con: duckdb.DuckDBPyConnection, dataset: str, batch: Batch) -> None:
    row = one(con, "SELECT kind FROM datasets WHERE dataset = ?", [dataset])
    if row is None:
        run(
            con,
            "INSERT INTO datasets VALUES (?, ?, ?, ?)",
            [dataset, batch.kind, batch.format, datetime.now(UTC).replace(tzinfo=None)],
        )
    elif row[0] != batch.kind:
        raise ArenatreeError(
            f"{batch.path}: dataset {dataset!r} holds {row[0]} data; this file is {batch.kind} "
            f"({batch.format}); import it under another --dataset name"
        )


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> int:
    return int(con.execute(sql, params).fetchall()[0][0])


def _insert_prompts(con, dataset: str, view: str, pid: str | None = None) -> int:
    """Insert distinct prompts from ``view`` (text, source_id, language, turns, metadata).

    ``pid`` names a column of ``view`` that already holds each text's prompt id; by default
    the text is hashed row by row."""
    pid_sql = pid or _h("text")
    before = _count(con, "SELECT count(*) FROM prompts WHERE dataset = ?", [dataset])
    run(
        con,
        f"""
        INSERT INTO prompts
        SELECT ?, _pid, any_value(text), any_value(language), max(turns), any_value(metadata)
        FROM (SELECT {pid_sql} AS _pid, * FROM {view} WHERE text IS NOT NULL) p
        WHERE _pid NOT IN (SELECT prompt_id FROM prompts WHERE dataset = ?)
        GROUP BY _pid
        """,
        [dataset, dataset],
    )
    run(
        con,
        f"""
        INSERT OR IGNORE INTO prompt_sources
        SELECT DISTINCT ?, {pid_sql}, source_id FROM {view}
        WHERE text IS NOT NULL AND source_id IS NOT NULL
        """,
        [dataset],
    )
    return _count(con, "SELECT count(*) FROM prompts WHERE dataset = ?", [dataset]) - before


def _insert_responses(con, dataset: str, view: str) -> int:
    """Insert distinct responses from ``view`` (prompt_id, model, text) with style features."""
    before = _count(con, "SELECT count(*) FROM responses WHERE dataset = ?", [dataset])
    run(
        con,
        f"""
        INSERT INTO responses
        SELECT ?, rid, prompt_id, model, text, {response_features_sql("text")}
        FROM (
            SELECT DISTINCT {_h("concat_ws(chr(31), coalesce(prompt_id, ''), model, text)")} AS rid,
                   prompt_id, model, text
            FROM {view} WHERE text IS NOT NULL
        ) r
        WHERE rid NOT IN (SELECT response_id FROM responses WHERE dataset = ?)
        """,
        [dataset, dataset],
    )
    return _count(con, "SELECT count(*) FROM responses WHERE dataset = ?", [dataset]) - before


def _encode_texts(df: pd.DataFrame) -> tuple[list[np.ndarray], pd.Index]:
    """Dictionary-encode the TEXT_COLUMNS of ``df`` over one set of distinct texts.

    Returns one int32 code array per column (-1 for a null) and the distinct texts (code =
    position). Categorical columns sharing their categories, as the arena reader makes them,
    are taken as they are; other columns are factorised (exact string equality)."""
    series = [df[c] for c in TEXT_COLUMNS]
    cats = [s.cat.categories if isinstance(s.dtype, pd.CategoricalDtype) else None for s in series]
    first = cats[0]
    if first is not None and all(c is first or (c is not None and c.equals(first)) for c in cats):
        return [s.cat.codes.to_numpy(dtype=np.int32) for s in series], first
    codes, uniques = [], []
    for s, c in zip(series, cats, strict=True):
        if c is not None:
            code, values = s.cat.codes.to_numpy(dtype=np.int64), c
        else:
            code, values = pd.factorize(s, use_na_sentinel=True)
        codes.append(code)
        uniques.append(np.asarray(values, dtype=object))
    remap, texts = pd.factorize(np.concatenate(uniques))
    out, offset = [], 0
    for code, values in zip(codes, uniques, strict=True):
        mapped = remap[offset + np.maximum(code, 0)] if len(values) else np.zeros(len(code), np.int64)
        out.append(np.where(code >= 0, mapped, -1).astype(np.int32))
        offset += len(values)
    return out, pd.Index(texts, dtype=object)


def _load_battles(con, dataset: str, batch: Batch, df: pd.DataFrame, import_id: str) -> tuple[int, int]:
    """Write the battles frame: prompts, responses (with style features) and votes.

    Texts are handled once per distinct value (see :func:`_encode_texts`): ``b_text`` holds
    the distinct texts, ``b_in`` the votes with codes ``_p``, ``_a``, ``_b`` (-1 = null)."""
    df = df.copy()
    df["tstamp"] = pd.to_numeric(df["tstamp"], errors="coerce")
    (p_code, a_code, b_code), texts = _encode_texts(df)
    votes = df.drop(columns=list(TEXT_COLUMNS)).assign(_p=p_code, _a=a_code, _b=b_code)
    del df
    con.register("b_in", votes)
    con.register("b_text_in", pd.DataFrame({"code": np.arange(len(texts), dtype=np.int32), "text": texts}))
    run(con, "CREATE OR REPLACE TEMP TABLE b_text AS SELECT code, CAST(text AS VARCHAR) text FROM b_text_in")
    con.unregister("b_text_in")
    # prompt ids: one sha256 per distinct prompt text
    run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE b_pid AS
        SELECT code, {_h("text")} AS pid FROM b_text WHERE code IN (SELECT _p FROM b_in)
        """,
    )
    run(
        con,
        """
        CREATE OR REPLACE TEMP VIEW b_prompts AS
        SELECT p.pid, t.text, b.source_id, b.language, b.turns, NULL AS metadata
        FROM b_in b JOIN b_pid p ON p.code = b._p JOIN b_text t ON t.code = b._p
        """,
    )
    _insert_prompts(con, dataset, "b_prompts", pid="pid")
    # response ids: one sha256 per distinct (prompt, model, answer)
    run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE b_rid AS
        SELECT c._p, c.model, c._t, p.pid AS prompt_id,
               {_h("concat_ws(chr(31), coalesce(p.pid, ''), c.model, t.text)")} AS rid
        FROM (SELECT _p, model_a AS model, _a AS _t FROM b_in WHERE _a >= 0
              UNION SELECT _p, model_b, _b FROM b_in WHERE _b >= 0) c
        LEFT JOIN b_pid p ON p.code = c._p
        JOIN b_text t ON t.code = c._t
        """,
    )
    run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE b_new AS
        SELECT * EXCLUDE (battle_key, _p, _a, _b),
               coalesce(CAST(battle_key AS VARCHAR), {
            _h(
                "concat_ws(chr(31), coalesce(CAST(source_id AS VARCHAR), ''), coalesce(prompt_id, ''), "
                "model_a, model_b, judge, coalesce(CAST(tstamp AS VARCHAR), ''), "
                "coalesce(CAST(turns AS VARCHAR), ''))"
            )
        }) AS battle_id
        FROM (
            SELECT b.*, p.pid AS prompt_id, ra.rid AS rid_a, rb.rid AS rid_b
            FROM b_in b
            LEFT JOIN b_pid p ON p.code = b._p
            LEFT JOIN b_rid ra ON ra._p = b._p AND ra.model = b.model_a AND ra._t = b._a
            LEFT JOIN b_rid rb ON rb._p = b._p AND rb.model = b.model_b AND rb._t = b._b
        )
        """,
    )
    _conflicts(batch, con, dataset)
    _insert_battle_responses(con, dataset)
    before = _count(con, "SELECT count(*) FROM battles WHERE dataset = ?", [dataset])
    run(
        con,
        """
        INSERT INTO battles
        SELECT ?, n.battle_id, CAST(n.source_id AS VARCHAR), n.prompt_id, n.model_a, n.model_b,
               n.winner, n.judge, n.judge_kind,
               make_timestamp(CAST(round(n.tstamp * 1e6) AS BIGINT)), n.anony,
               n.language, n.turns, n.rid_a, n.rid_b,
               coalesce(n.tokens_a, ra.tokens), coalesce(n.tokens_b, rb.tokens),
               coalesce(n.headers_a, ra.headers), coalesce(n.headers_b, rb.headers),
               coalesce(n.lists_a, ra.lists), coalesce(n.lists_b, rb.lists),
               coalesce(n.bold_a, ra.bold), coalesce(n.bold_b, rb.bold),
               coalesce(n.refusal_a, ra.refusal), coalesce(n.refusal_b, rb.refusal),
               ra.identity_leak, rb.identity_leak, n.metadata, ?
        FROM (SELECT * FROM b_new QUALIFY row_number() OVER (PARTITION BY battle_id ORDER BY line) = 1) n
        LEFT JOIN responses ra ON ra.dataset = ? AND ra.response_id = n.rid_a
        LEFT JOIN responses rb ON rb.dataset = ? AND rb.response_id = n.rid_b
        WHERE n.battle_id NOT IN (SELECT battle_id FROM battles WHERE dataset = ?)
        """,
        [dataset, import_id, dataset, dataset, dataset],
    )
    added = _count(con, "SELECT count(*) FROM battles WHERE dataset = ?", [dataset]) - before
    con.unregister("b_in")
    run(con, "DROP VIEW b_prompts")
    for name in ("b_text", "b_pid", "b_rid", "b_new", "b_resp", "b_feat"):
        run(con, f"DROP TABLE {name}")
    return added, len(votes) - added


def _insert_battle_responses(con: duckdb.DuckDBPyConnection, dataset: str) -> int:
    """Insert the new distinct responses of ``b_rid`` (what :func:`_insert_responses` does for
    a view of texts), with the style features computed once per distinct new answer text."""
    before = _count(con, "SELECT count(*) FROM responses WHERE dataset = ?", [dataset])
    run(
        con,
        """
        CREATE OR REPLACE TEMP TABLE b_resp AS
        SELECT DISTINCT rid, prompt_id, model, _t FROM b_rid
        WHERE rid NOT IN (SELECT response_id FROM responses WHERE dataset = ?)
        """,
        [dataset],
    )
    run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE b_feat AS
        SELECT code, text, {response_features_sql("text", named=True)}
        FROM b_text WHERE code IN (SELECT _t FROM b_resp)
        """,
    )
    features = ", ".join(f"f.{c}" for c in FEATURE_COLUMNS)
    run(
        con,
        f"""
        INSERT INTO responses
        SELECT ?, r.rid, r.prompt_id, r.model, f.text, {features}
        FROM b_resp r JOIN b_feat f ON f.code = r._t
        """,
        [dataset],
    )
    return _count(con, "SELECT count(*) FROM responses WHERE dataset = ?", [dataset]) - before


def _load_results(con, dataset: str, batch: Batch, df: pd.DataFrame, import_id: str) -> tuple[int, int]:
    df = df.copy()
    df["score"] = pd.to_numeric(df["score"])
    df["instance_id"] = df["instance_id"].astype(str)
    con.register("r_in", df)
    con.register(
        "r_prompts",
        df.loc[df["prompt_text"].notna(), ["prompt_text", "instance_id"]]
        .rename(columns={"prompt_text": "text", "instance_id": "source_id"})
        .assign(language=None, turns=None, metadata=None),
    )
    _insert_prompts(con, dataset, "r_prompts")
    con.unregister("r_prompts")
    before = _count(con, "SELECT count(*) FROM results WHERE dataset = ?", [dataset])
    stored_conflict = one(
        con,
        """
        SELECT r.line, r.source_file, r.instance_id, r.model, r.score, s.score FROM r_in r
        JOIN results s ON s.dataset = ? AND s.instance_id = r.instance_id AND s.model = r.model
        WHERE s.score <> r.score ORDER BY r.line LIMIT 1
        """,
        [dataset],
    )
    if stored_conflict:
        line, src, iid, model, new, old = stored_conflict
        raise InputError(
            Path(src) if src else batch.path,
            f"instance {iid!r} of model {model!r} is already stored with score {old}, this file says {new}",
            line=int(line),
            field="score",
            unit=batch.line_unit,
        )
    run(
        con,
        f"""
        INSERT INTO results
        SELECT ?, instance_id, CASE WHEN prompt_text IS NULL THEN NULL ELSE {_h("prompt_text")} END,
               model, score, ?
        FROM r_in
        WHERE (instance_id, model) NOT IN (SELECT (instance_id, model) FROM results WHERE dataset = ?)
        QUALIFY row_number() OVER (PARTITION BY instance_id, model ORDER BY line) = 1
        """,
        [dataset, import_id, dataset],
    )
    added = _count(con, "SELECT count(*) FROM results WHERE dataset = ?", [dataset]) - before
    con.unregister("r_in")
    return added, len(df) - added


NAME_COLUMNS = ("model_a", "model_b", "model", "judge")  # one-line names, trimmed
FRAMES = ("battles", "results", "prompts", "responses")


def sanitize_batch(batch: Batch) -> None:
    """Make a batch's text storable, in place (see :mod:`pipelines.text`): names trimmed, texts
    without NULs or lone surrogates. Names that still hold a control character are refused by
    :func:`validate_batch`."""
    for attr in FRAMES:
        df = getattr(batch, attr)
        if df is None or len(df) == 0:
            continue
        df = df.copy()
        for col in df.columns:
            if df[col].dtype != object and not pd.api.types.is_string_dtype(df[col]):
                continue
            df[col] = df[col].map(clean_name) if col in NAME_COLUMNS else clean_texts(df[col])
        setattr(batch, attr, df)


def validate_names(batch: Batch, df: pd.DataFrame) -> None:
    """Model and judge names are one line of printable text."""
    for col in NAME_COLUMNS:
        if col in df.columns:
            problems = df[col].map(name_problem)
            _fail(
                batch, df, problems.notna(), col, lambda r, c=col: f"name {str(r[c])!r} {name_problem(r[c])}"
            )


def validate_batch(batch: Batch) -> None:
    """Every row-level check that needs no database; raises InputError on the first bad row.

    Run before a write session opens, so a rejected import does not even create the file.
    Cleans the batch's text first (:func:`sanitize_batch`).
    """
    sanitize_batch(batch)
    for attr, columns in zip(
        FRAMES, (BATTLE_COLUMNS, RESULT_COLUMNS, PROMPT_COLUMNS, RESPONSE_COLUMNS), strict=True
    ):
        if (frame := _frame(getattr(batch, attr), columns)) is not None:
            validate_names(batch, frame)
    if (battles := _frame(batch.battles, BATTLE_COLUMNS)) is not None:
        validate_battles(batch, battles)
    if (results := _frame(batch.results, RESULT_COLUMNS)) is not None:
        validate_results(batch, results)
    if (prompts := _frame(batch.prompts, PROMPT_COLUMNS)) is not None:
        validate_prompts(batch, prompts)
    if (responses := _frame(batch.responses, RESPONSE_COLUMNS)) is not None:
        validate_prompts(batch, responses, "text")


def load_batch(
    con: duckdb.DuckDBPyConnection, dataset: str, batch: Batch, sha: str, validated: bool = False
) -> ImportReport:
    """Write one batch (the caller holds the transaction). Returns what it added.

    ``validated=True`` says the caller already ran :func:`validate_batch` on it."""
    if not validated:
        validate_batch(batch)
    done = one(con, "SELECT imported_at FROM imports WHERE dataset = ? AND sha256 = ?", [dataset, sha])
    report = ImportReport(
        dataset=dataset,
        path=str(batch.path),
        format=batch.format,
        kind=batch.kind,
        rows_read=batch.rows_read,
        rows_skipped=len(batch.skipped),
        added_prompts=0,
        added_battles=0,
        added_results=0,
        added_responses=0,
        duplicates=0,
        skipped_examples=[s.__dict__ for s in batch.skipped[:20]],
        skipped_reasons=dict(Counter(s.reason for s in batch.skipped).most_common()),
    )
    if done:
        report.already_imported = True
        report.duplicates = batch.rows_read
        return report
    _ensure_dataset(con, dataset, batch)
    import_id = str(uuid.uuid4())
    prompts_before = _count(con, "SELECT count(*) FROM prompts WHERE dataset = ?", [dataset])
    responses_before = _count(con, "SELECT count(*) FROM responses WHERE dataset = ?", [dataset])

    prompts = _frame(batch.prompts, PROMPT_COLUMNS)
    if prompts is not None:
        con.register("p_in", prompts)
        _insert_prompts(con, dataset, "p_in")
        con.unregister("p_in")
    battles = _frame(batch.battles, BATTLE_COLUMNS)
    if battles is not None:
        report.added_battles, dup = _load_battles(con, dataset, batch, battles, import_id)
        report.duplicates += dup
    results = _frame(batch.results, RESULT_COLUMNS)
    if results is not None:
        report.added_results, dup = _load_results(con, dataset, batch, results, import_id)
        report.duplicates += dup
    responses = _frame(batch.responses, RESPONSE_COLUMNS)
    if responses is not None:
        con.register("x_in", responses)
        run(
            con,
            f"CREATE OR REPLACE TEMP VIEW x_resp AS SELECT {_h('prompt_text')} AS prompt_id, "
            "model, text FROM x_in",
        )
        _insert_responses(con, dataset, "x_resp")
        run(con, "DROP VIEW x_resp")
        con.unregister("x_in")

    report.added_prompts = (
        _count(con, "SELECT count(*) FROM prompts WHERE dataset = ?", [dataset]) - prompts_before
    )
    report.added_responses = (
        _count(con, "SELECT count(*) FROM responses WHERE dataset = ?", [dataset]) - responses_before
    )
    run(
        con,
        "INSERT INTO imports VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            import_id,
            dataset,
            str(batch.path),
            sha,
            batch.format,
            batch.origin,
            batch.license,
            batch.rows_read,
            len(batch.skipped),
            json.dumps([s.__dict__ for s in batch.skipped[:100]]),
            report.added_prompts,
            report.added_battles,
            report.added_results,
            report.added_responses,
            report.duplicates,
            __version__,
            datetime.now(UTC).replace(tzinfo=None),
        ],
    )
    return report


def load_batches(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    batches: list[tuple[Batch, str]],
    validated: bool = False,
) -> list[ImportReport]:
    """Write several ``(batch, sha256)`` pairs in ONE transaction: all land or none."""
    with transaction(con):
        return [load_batch(con, dataset, b, sha, validated) for b, sha in batches]

"""Build a capability tree for a dataset and store it (EvalTree stages 1-4).

``build_tree`` runs inside one write session: annotations and embeddings are cached in DuckDB
chunk by chunk as they arrive (each chunk its own committed transaction), so a crash or a
rerun never pays for them twice; the tree itself (``trees``, ``nodes``, ``node_members``) is
written in one transaction at the end. The tree id hashes the dataset's item set and every
parameter, so the same input and seed give the same id and the same tree, and a rerun with
nothing changed returns the stored tree at once.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from .. import __version__
from ..errors import ArenatreeError
from ..ingest.load import text_hash
from ..store import one, run, transaction, writer
from .base import Annotator, Embedder, OfflineAnnotator, Summarizer, needs_question_mode
from .cluster import RecursiveKMeans
from .describe import central_items, summarize_bottom_up
from .embed import MiniLMEmbedder
from .naming import NAMER, capability_names, distinct_names
from .read import stored_tree

ANNOTATE_CHUNK = 64
NODE_INSERT_COLUMNS = (
    "tree_id, node_id, parent_id, depth, path, size, n_children, silhouette, description, keywords, "
    "central_prompt_id, centroid, distinguishing"
)
EMBED_CHUNK = 512


def make_backends(annotator: str, embedder: str, describer: str, openai=None, question: bool = False):
    """(Annotator, Embedder, Summarizer | None) for the names the CLI takes; ``question``: the
    offline annotator keeps each long prompt's question (:class:`~pipelines.tree.base.OfflineAnnotator`)."""
    if {annotator, embedder, describer} - {"offline", "minilm", "static", "openai"}:
        raise ArenatreeError(
            f"unknown backend in annotator={annotator!r}, embedder={embedder!r}, describer={describer!r}"
        )
    if "openai" in (annotator, embedder, describer):
        from .openai_backends import OpenAIAnnotator, OpenAIConfig, OpenAIEmbedder, OpenAISummarizer

        cfg = openai or OpenAIConfig.from_env()
    ann: Annotator = OpenAIAnnotator(cfg) if annotator == "openai" else OfflineAnnotator(question=question)
    if embedder == "static":  # the distilled MiniLM: ~100x faster, for very many prompts
        from .static_embed import StaticMiniLMEmbedder

        emb: Embedder = StaticMiniLMEmbedder()
    else:
        emb = OpenAIEmbedder(cfg) if embedder == "openai" else MiniLMEmbedder()
    summ = OpenAISummarizer(cfg) if describer == "openai" else None
    return ann, emb, summ


def backends_for(tree: dict, openai=None):
    """The annotator and embedder that built a stored tree (to route new text the same way)."""
    kinds = json.loads(tree["params"])["backends"]
    question = kinds.get("offline_text") == "question"
    ann, emb, _ = make_backends(kinds["annotator"], kinds["embedder"], "offline", openai, question)
    if ann.name != tree["annotator"] or emb.name != tree["embedder"]:
        raise ArenatreeError(
            f"tree {tree['tree_id']} was built with {tree['annotator']} / {tree['embedder']}; "
            f"this configuration gives {ann.name} / {emb.name}"
        )
    return ann, emb


def dataset_items(con, dataset: str) -> pd.DataFrame:
    """The dataset's prompts (items), ordered by prompt id: columns prompt_id, text."""
    if one(con, "SELECT 1 FROM datasets WHERE dataset = ?", [dataset]) is None:
        raise ArenatreeError(f"no dataset {dataset!r}; see 'arenatree datasets'")
    items = con.execute(
        "SELECT prompt_id, text FROM prompts WHERE dataset = ? ORDER BY prompt_id", [dataset]
    ).df()
    if len(items) < 2:
        msg = f"dataset {dataset!r} has {len(items)} prompt texts; a tree needs at least 2"
        if len(items) == 0:
            formats = [
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT format FROM imports WHERE dataset = ? ORDER BY 1", [dataset]
                ).fetchall()
            ]
            msg += f" ({missing_texts_hint(formats)})"
        raise ArenatreeError(msg)
    return items


MISSING_TEXTS = {
    "clean-battle": "clean_battle files carry no prompt text; import the conversation files of the same "
    "battles (arena-conversations, arena-100k or arena-140k)",
    "scores": "the scores table was imported without a prompt column; import it into a new dataset "
    "with --map prompt=COLUMN (the column holding each item's text)",
    "votes": "the votes table was imported without a prompt column; import it into a new dataset "
    "with --map prompt=COLUMN (the column holding each vote's prompt)",
}


def missing_texts_hint(formats: list[str]) -> str:
    """What is missing, for a dataset without prompt texts imported in ``formats`` (adapter
    names, as the imports table holds them): one clause per format, '; '-joined."""
    known = [MISSING_TEXTS[f] for f in formats if f in MISSING_TEXTS]
    other = [f for f in formats if f not in MISSING_TEXTS]
    if other:
        known.append(
            f"its {', '.join(other)} import(s) brought no prompt texts; import the prompts' file too"
        )
    return "; ".join(known) or "nothing was imported into it"


ProgressFn = Callable[[str, float], None]  # (stage description, fraction done in [0, 1])


class _Bar:
    """tqdm on stderr (when ``progress``) plus an optional callback for the dashboard."""

    def __init__(self, total: int, desc: str, progress: bool, callback: ProgressFn | None = None) -> None:
        self.total, self.desc, self.done, self.callback = max(total, 1), desc, 0, callback
        self.tqdm = tqdm(
            total=total, desc=desc, unit="item", file=sys.stderr, disable=not progress, leave=False
        )

    def update(self, n: int = 1) -> None:
        self.done += n
        self.tqdm.update(n)
        if self.callback:
            self.callback(self.desc, min(1.0, self.done / self.total))

    def __enter__(self) -> _Bar:
        if self.callback:
            self.callback(self.desc, 0.0)
        return self

    def __exit__(self, *exc) -> None:
        self.tqdm.close()


def _bar(total: int, desc: str, progress: bool, callback: ProgressFn | None = None) -> _Bar:
    return _Bar(total, desc, progress, callback)


def cached_annotations(
    con,
    annotator: Annotator,
    texts: Sequence[str],
    progress: bool = False,
    callback: ProgressFn | None = None,
) -> list[str]:
    """The capability of each text, from the ``annotations`` cache or the annotator (cached as
    each chunk returns)."""
    hashes = [text_hash(t) for t in texts]
    known = known_answers(con, annotator.name, hashes)
    missing = list(dict.fromkeys(i for i, h in enumerate(hashes) if h not in known))
    first = {}
    for i in missing:
        first.setdefault(hashes[i], i)
    todo = list(first.values())
    with _bar(len(todo), f"annotate ({annotator.name})", progress, callback) as bar:
        step = getattr(annotator, "chunk_size", ANNOTATE_CHUNK)
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            caps = annotator.annotate([texts[i] for i in chunk])
            store_answers(con, [hashes[i] for i in chunk], annotator.name, caps)
            known.update(zip((hashes[i] for i in chunk), caps, strict=True))
            bar.update(len(chunk))
    return [known[h] for h in hashes]


def cached_embeddings(
    con, embedder: Embedder, texts: Sequence[str], progress: bool = False, callback: ProgressFn | None = None
) -> np.ndarray:
    """(len(texts), dim) float32 unit vectors, from the ``embeddings`` cache or the embedder."""
    hashes = [text_hash(t) for t in texts]
    unique = list(dict.fromkeys(hashes))
    con.register("want", pd.DataFrame({"text_hash": unique, "pos": np.arange(len(unique))}))
    table = con.sql(
        "SELECT w.pos, e.vector FROM embeddings e JOIN want w USING (text_hash) "
        "WHERE e.model = ? ORDER BY w.pos",
        params=[embedder.name],
    ).to_arrow_table()
    con.unregister("want")
    vectors: dict[int, np.ndarray] = {}
    if table.num_rows:
        flat = table.column("vector").combine_chunks().flatten().to_numpy()
        mat = flat.reshape(table.num_rows, -1).astype(np.float32)
        vectors = dict(zip(table.column("pos").to_numpy().tolist(), mat, strict=True))
    text_of = dict(zip(hashes, texts, strict=True))
    todo = [p for p in range(len(unique)) if p not in vectors]
    with _bar(len(todo), f"embed ({embedder.name})", progress, callback) as bar:
        for start in range(0, len(todo), EMBED_CHUNK):
            chunk = todo[start : start + EMBED_CHUNK]
            mat = embedder.embed([text_of[unique[p]] for p in chunk])
            arrow = pa.table(
                {
                    "text_hash": [unique[p] for p in chunk],
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(mat.ravel()), mat.shape[1]),
                }
            )
            with transaction(con):
                con.register("new_emb", arrow)
                run(
                    con,
                    "INSERT OR REPLACE INTO embeddings "
                    "SELECT text_hash, ?, CAST(vector AS FLOAT[]) FROM new_emb",
                    [embedder.name],
                )
                con.unregister("new_emb")
            vectors.update(zip(chunk, mat, strict=True))
            bar.update(len(chunk))
    pos = {h: p for p, h in enumerate(unique)}
    return np.stack([vectors[pos[h]] for h in hashes]).astype(np.float32)


class CachedSummarizer(Summarizer):
    """A summarizer whose answers live in the ``annotations`` cache (keyed by the hash of the
    group's descriptions and the summarizer's name), committed ``chunk_size`` groups at a time:
    a rerun asks nothing twice, and a killed build resumes where it stopped."""

    chunk_size = 8

    def __init__(self, con, inner: Summarizer) -> None:
        self.con, self.inner = con, inner
        self.name = inner.name

    def summarize(self, groups: Sequence[Sequence[str]]) -> list[str]:
        keys = [text_hash("\n".join(g)) for g in groups]
        known = known_answers(self.con, self.name, keys)
        first: dict[str, int] = {}  # one request per distinct group
        for i, k in enumerate(keys):
            if k not in known:
                first.setdefault(k, i)
        todo = list(first.values())
        for start in range(0, len(todo), self.chunk_size):
            chunk = todo[start : start + self.chunk_size]
            answers = self.inner.summarize([groups[i] for i in chunk])
            store_answers(self.con, [keys[i] for i in chunk], self.name, answers)
            known.update(zip((keys[i] for i in chunk), answers, strict=True))
        return [known[k] for k in keys]


def known_answers(con, backend: str, hashes: Sequence[str]) -> dict[str, str]:
    """The cached answers of ``backend`` for those input ``hashes`` it has answered: hash -> answer."""
    con.register("want", pd.DataFrame({"text_hash": list(dict.fromkeys(hashes))}))
    rows = con.execute(
        "SELECT a.text_hash, a.capability FROM annotations a JOIN want USING (text_hash) "
        "WHERE a.annotator = ?",
        [backend],
    ).fetchall()
    con.unregister("want")
    return dict(rows)


def store_answers(con, hashes: Sequence[str], backend: str, answers: Sequence[str]) -> None:
    """Cache ``answers`` of ``backend`` under their input ``hashes``, in one committed transaction."""
    rows = pd.DataFrame({"text_hash": list(hashes), "annotator": backend, "capability": list(answers)})
    with transaction(con):
        con.register("new_ann", rows)
        run(con, "INSERT OR REPLACE INTO annotations SELECT text_hash, annotator, capability FROM new_ann")
        con.unregister("new_ann")


def tree_id_for(dataset: str, items: pd.DataFrame, params: dict) -> str:
    """Deterministic id: dataset + sha256 of (sorted item ids, parameters)."""
    h = hashlib.sha256()
    h.update("\n".join(items["prompt_id"]).encode())
    h.update(json.dumps(params, sort_keys=True).encode())
    return f"{dataset}:{h.hexdigest()[:12]}"


def build_tree(
    dataset: str,
    *,
    db=None,
    annotator: str = "offline",
    embedder: str = "minilm",
    describer: str | None = None,
    min_size: int | None = None,
    seed: int = 0,
    openai=None,
    llm: str | None = None,
    force: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    on_progress: ProgressFn | None = None,
    sample: int | None = None,
) -> dict:
    """Build (or fetch the stored) tree of ``dataset``; returns the ``trees`` row as a dict
    plus ``cached`` (True when nothing had to be built) and backend ``stats``.

    ``describer`` defaults to 'openai' when the annotator is 'openai', else 'offline'. ``llm``
    ('local') records that ``openai`` points at arenatree's own local server
    (:mod:`pipelines.tree.local_llm`), so routing knows to start it again.
    ``on_progress(stage, fraction)`` is called as each stage advances (the dashboard's bar).
    ``sample``: fit the tree on this many items (seeded) and route the rest down it
    (:meth:`RecursiveKMeans.fit_sample`), for datasets too big for a full build; None or a
    sample at least the dataset's size builds on every item.
    """
    if sample is not None and sample < 2:
        raise ArenatreeError(f"--sample {sample}: a tree needs a sample of at least 2 items")
    describer = describer or ("openai" if annotator == "openai" else "offline")
    say = log or (lambda msg: None)
    started = time.perf_counter()
    with writer(db) as con:
        items = dataset_items(con, dataset)
        # passage + question items (MMLU reading, ...): the head-only offline text would merge them
        question = annotator == "offline" and needs_question_mode(items["text"].tolist())
        ann, emb, summ = make_backends(annotator, embedder, describer, openai, question)
        cluster = RecursiveKMeans(random_state=seed, **({"min_size": min_size} if min_size else {}))
        params = {
            "annotator": ann.name,
            "embedder": emb.name,
            "describer": summ.name if summ else NAMER,
            "clusterer": type(cluster).__name__,
            "cluster_params": {
                k: v for k, v in vars(cluster).items() if k != "progress" and not k.endswith("_")
            },
            "seed": seed,
            **({"sample": int(sample)} if sample is not None and sample < len(items) else {}),
            "backends": {"annotator": annotator, "embedder": embedder, "describer": describer}
            | ({"llm": llm} if llm else {})
            | ({"offline_text": "question"} if question else {}),
        }
        tree_id = tree_id_for(dataset, items, params)
        stored = stored_tree(con, tree_id)
        if stored and not force:
            return {**stored, "cached": True, "stats": {}}
        if question:
            say(f"{dataset}: items share long passages; the offline text keeps each one's question")
        texts = items["text"].tolist()
        say(f"{dataset}: {len(texts):,} items")
        capabilities = cached_annotations(con, ann, texts, progress, on_progress)
        X = cached_embeddings(con, emb, capabilities, progress, on_progress)
        t0 = time.perf_counter()
        if on_progress:
            on_progress("cluster", 0.0)
        if sample is not None and sample < len(X):
            cluster.fit_sample(X, sample)
            say(f"fitted on {sample:,} sampled items, routed the other {len(X) - sample:,}")
        else:
            cluster.fit(X)
        say(f"clustered into {len(cluster.parent_):,} nodes in {time.perf_counter() - t0:.1f} s")
        nodes = describe_nodes(
            cluster,
            X,
            capabilities,
            lambda phrases: cached_embeddings(con, emb, phrases),
            summ and CachedSummarizer(con, summ),
            progress,
            on_progress,
        )
        seconds = time.perf_counter() - started
        row = {
            "tree_id": tree_id,
            "dataset": dataset,
            "created_at": datetime.now(UTC).replace(tzinfo=None),
            "annotator": ann.name,
            "embedder": emb.name,
            "describer": params["describer"],
            "params": json.dumps(params, sort_keys=True, default=str),
            "n_items": len(texts),
            "n_nodes": len(nodes),
            "n_leaves": int((nodes["n_children"] == 0).sum()),
            "max_depth": int(nodes["depth"].max()),
            "seconds": seconds,
            "tool_version": __version__,
        }
        nodes["central_prompt_id"] = items["prompt_id"].to_numpy()[nodes.pop("central_item").to_numpy()]
        members = pd.DataFrame(
            {
                "node_id": cluster.labels_.astype(np.int32),
                "prompt_id": items["prompt_id"],
                "capability": capabilities,
            }
        )
        store_tree(con, row, nodes, members)
    stats = {
        name: getattr(b, "stats", None)
        for name, b in (("annotator", ann), ("embedder", emb), ("describer", summ))
    }
    return {**row, "cached": False, "stats": {k: v for k, v in stats.items() if v}}


def describe_nodes(
    cluster,
    X: np.ndarray,
    capabilities: Sequence[str],
    embed: Callable[[Sequence[str]], np.ndarray],
    summarizer,
    progress: bool,
    callback: ProgressFn | None = None,
) -> pd.DataFrame:
    """One row per node: ids, shape, description (a capability name), keywords (its distinctive
    phrases), central item, centroid. ``embed`` maps phrases into the space of ``X`` (n, d)."""
    parent = np.asarray(cluster.parent_)
    labels = np.asarray(cluster.labels_)
    if callback:
        callback("describe", 0.0)
    names, keywords = capability_names(capabilities, labels, parent, np.asarray(cluster.centroid_), embed)
    central = central_items(X, cluster.centroid_, labels, parent)
    if summarizer is None:
        descriptions = names
    else:
        with _bar(len(parent), f"describe ({summarizer.name})", progress, callback) as bar:
            described = summarize_bottom_up(summarizer, parent, labels, capabilities, bar.update)
        # EvalTree's bottom-up summaries can repeat: a node that says what its parent or a sibling
        # says takes the offline name, or that with one of its own phrases.
        descriptions = distinct_names(
            [[d, n] for d, n in zip(described, names, strict=True)], keywords, parent
        )
    n_children = np.bincount(parent[1:], minlength=len(parent)) if len(parent) > 1 else np.zeros(1, int)
    silhouette = np.asarray(getattr(cluster, "silhouette_", np.full(len(parent), np.nan)), dtype=float)
    return pd.DataFrame(
        {
            "node_id": np.arange(len(parent), dtype=np.int32),
            "parent_id": pd.array([None if p < 0 else int(p) for p in parent], dtype="Int32"),
            "depth": np.asarray(cluster.depth_, dtype=np.int32),
            "path": list(cluster.path_),
            "size": np.asarray(cluster.size_, dtype=np.int32),
            "n_children": n_children.astype(np.int32),
            "silhouette": np.where(n_children > 0, silhouette, np.nan),
            "description": descriptions,
            "keywords": keywords,
            "central_item": central,
            "centroid": [c.astype(np.float32).tolist() for c in cluster.centroid_],
        }
    )


def store_tree(con, row: dict, nodes: pd.DataFrame, members: pd.DataFrame) -> None:
    """Replace tree ``row['tree_id']`` with these rows, in one transaction. ``nodes`` may carry a
    ``distinguishing`` column (text per node; imported trees), else it is stored as NULL."""
    tree_id = row["tree_id"]
    with transaction(con):
        for table in ("node_members", "nodes", "trees"):
            run(con, f"DELETE FROM {table} WHERE tree_id = ?", [tree_id])  # noqa: S608 - constant names
        marks = ", ".join("?" * len(row))
        run(con, f"INSERT INTO trees VALUES ({marks})", list(row.values()))  # noqa: S608 - only '?'s
        if "distinguishing" not in nodes:
            nodes = nodes.assign(distinguishing=pd.Series([None] * len(nodes), dtype=object))
        con.register("new_nodes", nodes)
        run(
            con,
            f"INSERT INTO nodes ({NODE_INSERT_COLUMNS}) SELECT ?, node_id, parent_id, depth, path, size, "  # noqa: S608
            "n_children, silhouette, description, keywords, central_prompt_id, CAST(centroid AS FLOAT[]), "
            "CAST(distinguishing AS VARCHAR) FROM new_nodes",
            [tree_id],
        )
        con.unregister("new_nodes")
        con.register("new_members", members)
        run(
            con,
            "INSERT INTO node_members SELECT ?, node_id, prompt_id, capability FROM new_members",
            [tree_id],
        )
        con.unregister("new_members")

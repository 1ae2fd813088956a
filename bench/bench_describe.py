"""Node-description quality: the offline namer against the old keyword baseline and a real local LLM.

On the stored offline trees of the demo database (``make demo`` builds them), for each tree:

* **keywords** (the describer before this one): the node's top three class-based TF-IDF words
  against its siblings (English stop words out, words of 2+ letters, weighted by document IDF),
  joined by commas;
* **offline**: :func:`pipelines.tree.naming.capability_names`, what ``tree build`` stores;
* **llm**: Qwen2.5-Coder-1.5B-Instruct on arenatree's own ``llama-server``
  (:mod:`pipelines.tree.local_llm`) through :class:`~pipelines.tree.openai_backends.OpenAISummarizer`,
  one request per node over its eight most central prompts (cut to 300 characters). The LLM
  describes only the nodes of depth <= ``--llm-depth`` (one call each: ~1 s), so the table
  compares all three on that node set and the first two on every node.

Measures (:mod:`pipelines.tree.name_quality`, written apart from the namer's filters): share of
names with a junk token (markup, code, URL parts, numbers, single letters), share that are
keyword lists (3+ comma-separated items), sibling clashes, membership AUC (MiniLM cosine of a
name to its node's prompts against the other prompts; 0.5 is chance), seconds per node.

Usage: ``python bench/bench_describe.py [--db PATH] [--datasets math arena-hard-v0.1]
[--llm-depth 2] [--no-llm]``
Prints; no assertions. ``--show N`` prints N depth-1/2 nodes with all three names.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklearn.feature_extraction.text import CountVectorizer  # noqa: E402

from pipelines import store  # noqa: E402
from pipelines.tree.build import cached_embeddings  # noqa: E402
from pipelines.tree.describe import (  # noqa: E402
    ctfidf_keywords,
    document_idf,
    node_term_counts,
    subtree_end,
    subtree_members,
)
from pipelines.tree.embed import MiniLMEmbedder  # noqa: E402
from pipelines.tree.name_quality import (  # noqa: E402
    is_keyword_list,
    junk_tokens,
    membership_auc,
    sibling_clashes,
)
from pipelines.tree.naming import NAMER, capability_names  # noqa: E402
from pipelines.tree.read import resolve_tree  # noqa: E402

CENTRAL = 8  # prompts per node the LLM reads
PROMPT_CHARS = 300


def tree_inputs(con, dataset: str) -> dict:
    """The newest offline tree of ``dataset``: capabilities, leaf labels, parents, centroids and
    the items' MiniLM vectors (all read from the store and its embedding cache)."""
    tree_id = resolve_tree(con, dataset)
    nodes = con.execute(
        "SELECT node_id, parent_id, depth, centroid FROM nodes WHERE tree_id = ? ORDER BY node_id", [tree_id]
    ).df()
    members = con.execute(
        "SELECT node_id, capability FROM node_members WHERE tree_id = ? ORDER BY prompt_id", [tree_id]
    ).df()
    caps = members["capability"].tolist()
    X = cached_embeddings(con, MiniLMEmbedder(), caps)
    centroids = np.stack([np.asarray(c, dtype=np.float32) for c in nodes["centroid"]])
    parent = nodes["parent_id"].fillna(-1).astype(int).to_numpy()
    return {
        "tree_id": tree_id,
        "caps": caps,
        "labels": members["node_id"].to_numpy(),
        "parent": parent,
        "depth": nodes["depth"].to_numpy(),
        "centroids": centroids,
        "X": X,
    }


def keyword_names(caps, labels, parent) -> list[str]:
    """The old offline describer: top three c-TF-IDF words against the siblings, comma-joined."""
    vec = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b[^\W\d_]{2,}\b")
    counts = vec.fit_transform(caps).tocsr()
    words = ctfidf_keywords(
        node_term_counts(labels, parent, counts), parent, vec.get_feature_names_out(), document_idf(counts)
    )
    return [", ".join(w[:3]) if w else "items" for w in words]


def llm_names(t: dict, nodes: np.ndarray) -> tuple[list[str], float]:
    """A local-LLM name for each of ``nodes`` from its most central prompts; (names, seconds)."""
    from pipelines.tree.local_llm import LocalModel, local_server
    from pipelines.tree.openai_backends import OpenAISummarizer

    members = subtree_members(t["labels"], t["parent"])
    groups = []
    for n in nodes:
        inside = members[n]
        order = inside[np.argsort(-(t["X"][inside] @ t["centroids"][n]), kind="stable")][:CENTRAL]
        groups.append([" ".join(t["caps"][i].split())[:PROMPT_CHARS] for i in order])
    with local_server(LocalModel.resolve()) as config:
        summarizer = OpenAISummarizer(config)
        t0 = time.perf_counter()
        out = summarizer.summarize(groups)
        return out, time.perf_counter() - t0


def measure(names, t: dict, subset: np.ndarray, minilm: MiniLMEmbedder) -> dict:
    """The quality measures of ``names`` (one per node of ``subset``)."""
    end = subtree_end(t["parent"])
    inner = [name for name, n in zip(names, subset, strict=True) if t["parent"][n] >= 0]
    member = (t["labels"][None, :] >= subset[:, None]) & (t["labels"][None, :] < end[subset][:, None])
    return {
        "nodes": len(subset),
        "junk %": 100 * np.mean([bool(junk_tokens(x)) for x in inner]) if inner else np.nan,
        "keyword lists %": 100 * np.mean([is_keyword_list(x) for x in inner]) if inner else np.nan,
        "sibling clashes": sibling_clashes(list(names), t["parent"][subset]),
        "AUC": membership_auc(minilm.embed(list(names)), t["X"], member),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", default=os.environ.get("ARENATREE_DB", str(ROOT / "data" / "arenatree.duckdb")))
    ap.add_argument("--datasets", nargs="+", default=["math", "arena-hard-v0.1"])
    ap.add_argument("--llm-depth", type=int, default=2)
    ap.add_argument("--no-llm", action="store_true")
    ap.add_argument("--show", type=int, default=10)
    args = ap.parse_args()
    pd.set_option("display.width", 200)
    pd.set_option("display.max_colwidth", 70)
    minilm = MiniLMEmbedder()
    rows, shown = [], []
    for dataset in args.datasets:
        with store.writer(args.db) as con:  # the embedding cache may gain the new phrases
            t = tree_inputs(con, dataset)
            every = np.arange(len(t["parent"]))
            t0 = time.perf_counter()
            offline, _ = capability_names(
                t["caps"],
                t["labels"],
                t["parent"],
                t["centroids"],
                lambda p: cached_embeddings(con, minilm, p),
            )
            offline_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        keywords = keyword_names(t["caps"], t["labels"], t["parent"])
        keyword_s = time.perf_counter() - t0
        top = every[t["depth"] <= args.llm_depth]
        for name, names, seconds in (("keywords", keywords, keyword_s), (NAMER, offline, offline_s)):
            per_node = seconds / len(every)
            for scope, subset in (("all nodes", every), (f"depth <= {args.llm_depth}", top)):
                head = {"dataset": dataset, "describer": name, "scope": scope, "s/node": per_node}
                rows.append(head | measure([names[n] for n in subset], t, subset, minilm))
        llm = None
        if not args.no_llm:
            llm, seconds = llm_names(t, top)
            rows.append({"dataset": dataset, "describer": "local LLM (Qwen2.5-Coder-1.5B)",
                         "scope": f"depth <= {args.llm_depth}", "s/node": seconds / len(top)}
                        | measure(llm, t, top, minilm))  # fmt: skip
        for n in top[t["depth"][top] >= 1][: args.show]:
            where = int(np.flatnonzero(top == n)[0])
            shown.append(
                {
                    "dataset": dataset,
                    "node": int(n),
                    "keywords (before)": keywords[n],
                    "offline (now)": offline[n],
                }
                | ({"local LLM": llm[where]} if llm else {})
            )
    print(pd.DataFrame(rows).round(3).to_string(index=False))
    print()
    print(pd.DataFrame(shown).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

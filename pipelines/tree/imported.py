"""Import a capability tree that EvalTree made and store it like a built one.

**The file** is EvalTree's tree JSON (stage 3, recursive clustering, as described by stage 4:
``<stage3 tree>_[stage4-CapabilityDescription-model=...].json``). A node is an object::

    {"description": "...", "subtrees": CHILDREN, "distinguishing": "line per child\\n..."}

``CHILDREN`` is a list of nodes, an object ``{cluster label: node}`` (children in file order), or
an int: the node is one instance, and the int is its index in the dataset. A bare int among the
children is an instance too. ``distinguishing`` sits on a parent, one line per child in child
order (how that child differs from its siblings); it is kept per child when the number of lines
equals the number of children, as EvalTree's own demo does. The demo's merged file (``capability``
instead of ``description``, ``distinction`` on the child) reads the same; other keys (``size``,
``ranking``, ``CI``, ``input``, ``kmeans`` ...) are ignored. A missing description gets a plain
name (``instance 17``, ``node 0.3``).

**Instances.** EvalTree's index is an instance's position in the benchmark file. The store keeps
the items' own ids (``prompt_sources.source_id``: MATH's ``idx``, a results file's instance id),
not file lines, so ``index='idx'`` maps leaf ``k`` to the item whose id is ``k`` and
``index='position'`` to the k-th item in id order (ids compared as numbers when they all are);
``'auto'`` is ``idx`` when every id is an integer. For MATH the two agree (``idx`` = line).

**Stored** as any tree: every file node is a node (instance leaves included, so node count,
depths and membership are the file's), preorder ids, dotted paths, sizes counted from the placed
items, ``distinguishing`` per child. Centroids are the unit mean of the members' offline
capabilities embedded by ``embedder`` (cached), so routing works with ``offline`` + that
embedder. Everything is checked before anything is written, and the tree lands in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from .. import __version__
from ..errors import ArenatreeError, InputError
from ..scores import ancestor_matrix
from ..store import one, writer
from .base import needs_question_mode
from .build import cached_annotations, cached_embeddings, make_backends, store_tree

SOURCE = "evaltree"
DESCRIBER = "imported:evaltree"
INDEX_MODES = ("auto", "idx", "position")


@dataclass(frozen=True)
class FileTree:
    """A parsed tree file, one entry per node in preorder (root first).

    ``where``: JSON path of each node (``$.subtrees[2].subtrees["5"]``); ``parent``: (n,) parent
    row, -1 at the root; ``depth``: (n,) root 0; ``path``: dotted child positions, root ``'0'``;
    ``description`` / ``distinguishing``: text or None; ``instance``: the leaf's instance index,
    None for inner nodes. ``mismatched``: parents whose ``distinguishing`` lines did not match
    their child count (their children get none)."""

    where: list[str]
    parent: np.ndarray
    depth: np.ndarray
    path: list[str]
    description: list[str | None]
    distinguishing: list[str | None]
    instance: list[int | None]
    mismatched: int = 0


def _is_index(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(node: dict, keys: tuple[str, ...], file: Path, where: str) -> str | None:
    for key in keys:
        value = node.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InputError(file, f"at {where}: '{key}' must be text, not {type(value).__name__}")
        return value.strip() or None
    return None


def parse_tree(doc, file: Path) -> FileTree:
    """Walk EvalTree's tree ``doc`` (already JSON-decoded) iteratively, in preorder. InputError
    naming ``file`` and the JSON path of the first bad node."""
    if not isinstance(doc, dict):
        raise InputError(file, f"at $: the root must be an object with 'subtrees', not {type(doc).__name__}")
    where, parent, depth, path, desc, dist, inst = [], [], [], [], [], [], []
    mismatched = 0
    # (node, json path, parent row, depth, dotted path, distinguishing given by the parent)
    stack: list[tuple[object, str, int, int, str, str | None]] = [(doc, "$", -1, 0, "0", None)]
    while stack:
        node, at, up, d, dotted, from_parent = stack.pop()
        row = len(where)
        where.append(at)
        parent.append(up)
        depth.append(d)
        path.append(dotted)
        if _is_index(node):
            desc.append(None)
            dist.append(from_parent)
            inst.append(node)
            continue
        if not isinstance(node, dict):
            raise InputError(
                file, f"at {at}: a node must be an object or an instance index, not {type(node).__name__}"
            )
        if "subtrees" not in node:
            raise InputError(file, f"at {at}: the node has no 'subtrees'")
        desc.append(_text(node, ("description", "capability"), file, at))
        own = _text(node, ("distinction",), file, at)
        dist.append(from_parent if from_parent is not None else own)
        kids = node["subtrees"]
        if _is_index(kids):
            inst.append(kids)
            continue
        inst.append(None)
        if isinstance(kids, list):
            children = [(f"{at}.subtrees[{i}]", k) for i, k in enumerate(kids)]
        elif isinstance(kids, dict):
            children = [(f"{at}.subtrees[{json.dumps(str(key))}]", k) for key, k in kids.items()]
        else:
            raise InputError(
                file, f"at {at}: 'subtrees' must be a list, an object or an index, not {type(kids).__name__}"
            )
        if not children:
            raise InputError(file, f"at {at}: 'subtrees' is empty")
        lines = _text(node, ("distinguishing",), file, at)
        per_child: list[str | None] = [None] * len(children)
        if lines is not None:
            split = [s.strip() or None for s in lines.split("\n")]
            if len(split) == len(children):
                per_child = split
            else:
                mismatched += 1
        for i in reversed(range(len(children))):
            child_at, child = children[i]
            stack.append((child, child_at, row, d + 1, f"{dotted}.{i}", per_child[i]))
    return FileTree(
        where=where,
        parent=np.asarray(parent, dtype=np.int64),
        depth=np.asarray(depth, dtype=np.int64),
        path=path,
        description=desc,
        distinguishing=dist,
        instance=inst,
        mismatched=mismatched,
    )


def read_tree_file(file: str | Path) -> tuple[FileTree, str]:
    """(parsed tree, sha256 of the file's bytes). InputError for a missing or malformed file."""
    file = Path(file)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise InputError(file, exc.strerror or "cannot be read") from None
    try:
        doc = json.loads(raw)
    except UnicodeDecodeError:
        raise InputError(file, "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(file, f"not valid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno) from None
    return parse_tree(doc, file), hashlib.sha256(raw).hexdigest()


def item_index(con, dataset: str, index: str = "auto") -> tuple[pd.Series, str]:
    """The dataset's items by instance index: a Series index -> prompt_id, and the mode used.

    ``idx``: the index is the item's own id (integer ids only); ``position``: the k-th item id in
    id order (numeric when every id is an integer). One id naming several prompts keeps the first."""
    if index not in INDEX_MODES:
        raise ArenatreeError(f"--index {index!r}: expected one of {', '.join(INDEX_MODES)}")
    if one(con, "SELECT 1 FROM datasets WHERE dataset = ?", [dataset]) is None:
        raise ArenatreeError(f"no dataset {dataset!r}; see 'arenatree datasets'")
    ids = con.execute(
        "SELECT source_id, min(prompt_id) AS prompt_id FROM prompt_sources WHERE dataset = ? "
        "GROUP BY source_id",
        [dataset],
    ).df()
    if ids.empty:
        raise ArenatreeError(f"dataset {dataset!r} has no items with prompt text to place in a tree")
    numeric = pd.to_numeric(ids["source_id"], errors="coerce")
    integral = bool(numeric.notna().all() and (numeric % 1 == 0).all())
    mode = ("idx" if integral else "position") if index == "auto" else index
    if mode == "idx":
        if not integral:
            bad = ids.loc[numeric.isna() | (numeric % 1 != 0), "source_id"].iloc[0]
            raise ArenatreeError(
                f"dataset {dataset!r} has item ids that are not integers (e.g. {bad!r}); use --index position"
            )
        return pd.Series(ids["prompt_id"].to_numpy(), index=numeric.astype(np.int64).to_numpy()), mode
    order = numeric.to_numpy().argsort(kind="stable") if integral else ids["source_id"].argsort(kind="stable")
    return pd.Series(ids["prompt_id"].to_numpy()[np.asarray(order)], index=np.arange(len(ids))), mode


def place_instances(tree: FileTree, items: pd.Series, file: Path, dataset: str) -> pd.DataFrame:
    """Members of the tree's instance leaves: node_row, instance, prompt_id. InputError naming the
    leaf's JSON path for an index that is not an item, or an index that appears twice. Two
    instances sharing one prompt text are one item: it stays in the first leaf that names it."""
    rows = [i for i, k in enumerate(tree.instance) if k is not None]
    seen: dict[int, int] = {}
    for r in rows:
        k = tree.instance[r]
        if k in seen:
            raise InputError(
                file, f"at {tree.where[r]}: instance {k} appears again (first at {tree.where[seen[k]]})"
            )
        seen[k] = r
        if k not in items.index:
            lo, hi = int(items.index.min()), int(items.index.max())
            raise InputError(
                file,
                f"at {tree.where[r]}: instance {k} is not an item of dataset {dataset!r} "
                f"({len(items):,} items with prompt text, indices {lo}..{hi})",
            )
    out = pd.DataFrame(
        {
            "node_row": np.asarray(rows, dtype=np.int64),
            "instance": [tree.instance[r] for r in rows],
            "prompt_id": items.loc[[tree.instance[r] for r in rows]].to_numpy() if rows else [],
        }
    )
    return out.drop_duplicates("prompt_id", keep="first").reset_index(drop=True)


def node_frame(tree: FileTree, members: pd.DataFrame, X: np.ndarray) -> pd.DataFrame:
    """The ``nodes`` rows of the tree: ids, shape, sizes (placed items under each node),
    descriptions, distinguishing, central item and centroid. ``X``: (len(members), d) unit vectors
    of the members, in their order; the central item is a row of ``members`` (-1: empty node)."""
    n = len(tree.parent)
    anc = ancestor_matrix(tree.parent)  # (n, n): [i, j] = 1 when i is j or an ancestor of j
    under = (anc[:, members["node_row"].to_numpy()] if len(members) else sparse.csr_matrix((n, 0))).tocsr()
    size = np.asarray(under.sum(axis=1)).ravel().astype(np.int32)
    sums = under @ X if len(members) else np.zeros((n, X.shape[1]))
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    centroid = np.divide(sums, norms, out=np.zeros_like(sums), where=norms > 0)
    pairs = under.tocoo()
    sims = np.einsum("ij,ij->i", centroid[pairs.row], X[pairs.col]) if pairs.nnz else np.zeros(0)
    best = pd.DataFrame({"node": pairs.row, "item": pairs.col, "sim": sims})
    best = best.sort_values(["node", "sim", "item"], ascending=[True, False, True]).drop_duplicates("node")
    central = np.full(n, -1, dtype=np.int64)
    central[best["node"].to_numpy()] = best["item"].to_numpy()
    n_children = np.bincount(tree.parent[1:], minlength=n).astype(np.int32)
    description = [
        d or (f"instance {k}" if k is not None else f"node {p}")
        for d, k, p in zip(tree.description, tree.instance, tree.path, strict=True)
    ]
    return pd.DataFrame(
        {
            "node_id": np.arange(n, dtype=np.int32),
            "parent_id": pd.array([None if p < 0 else int(p) for p in tree.parent], dtype="Int32"),
            "depth": tree.depth.astype(np.int32),
            "path": tree.path,
            "size": size,
            "n_children": n_children,
            "silhouette": np.full(n, np.nan),
            "description": description,
            "keywords": [[] for _ in range(n)],
            "central_item": central,
            "centroid": [c.astype(np.float32).tolist() for c in centroid],
            "distinguishing": pd.Series(tree.distinguishing, dtype=object),
        }
    )


def import_tree(
    file: str | Path,
    dataset: str,
    *,
    db=None,
    name: str | None = None,
    index: str = "auto",
    embedder: str = "minilm",
) -> dict:
    """Read EvalTree's tree ``file`` over ``dataset`` and store it; returns the ``trees`` row plus
    ``coverage`` (placed items / dataset items), ``dataset_items``, ``index`` (the mode used),
    ``shared_prompts`` (instances that share a prompt with an earlier one) and
    ``distinguishing_mismatched`` (parents whose lines did not match their children).

    The tree id is ``DATASET:evaltree-<hash of the file, the dataset and the index mode>``: the
    same import gives the same id, and a re-import replaces it."""
    started = time.perf_counter()
    file = Path(file)
    tree, sha = read_tree_file(file)
    with writer(db) as con:
        items, mode = item_index(con, dataset, index)
        members = place_instances(tree, items, file, dataset)
        total = int(one(con, "SELECT count(*) FROM prompts WHERE dataset = ?", [dataset])[0])
        texts = dict(
            con.execute("SELECT prompt_id, text FROM prompts WHERE dataset = ?", [dataset]).fetchall()
        )
        member_texts = [texts[p] for p in members["prompt_id"]]
        # the offline text of the dataset's own build (the same cache, routing the same way)
        question = needs_question_mode([t for t in texts.values() if t is not None])
        ann, emb, _ = make_backends("offline", embedder, "offline", question=question)
        capabilities = cached_annotations(con, ann, member_texts) if member_texts else []
        X = cached_embeddings(con, emb, capabilities) if capabilities else np.zeros((0, 1), np.float32)
        nodes = node_frame(tree, members, X)
        central = nodes.pop("central_item").to_numpy()
        pids = members["prompt_id"].to_numpy()
        nodes["central_prompt_id"] = [pids[c] if c >= 0 else None for c in central]
        tree_id = f"{dataset}:{SOURCE}-{hashlib.sha256(f'{sha}|{dataset}|{mode}'.encode()).hexdigest()[:12]}"
        params = {
            "source": SOURCE,
            "name": name or file.stem,
            "file": str(file.resolve()),
            "sha256": sha,
            "index": mode,
            "backends": {"annotator": "offline", "embedder": embedder, "describer": "imported"}
            | ({"offline_text": "question"} if question else {}),
            "cluster_params": {"refine_levels": 0},
        }
        row = {
            "tree_id": tree_id,
            "dataset": dataset,
            "created_at": datetime.now(UTC).replace(tzinfo=None),
            "annotator": ann.name,
            "embedder": emb.name,
            "describer": DESCRIBER,
            "params": json.dumps(params, sort_keys=True),
            "n_items": len(members),
            "n_nodes": len(nodes),
            "n_leaves": int((nodes["n_children"] == 0).sum()),
            "max_depth": int(nodes["depth"].max()),
            "seconds": time.perf_counter() - started,
            "tool_version": __version__,
        }
        store_tree(
            con,
            row,
            nodes,
            pd.DataFrame(
                {
                    "node_id": members["node_row"].astype(np.int32),
                    "prompt_id": members["prompt_id"],
                    "capability": capabilities,
                }
            ),
        )
    n_instances = sum(k is not None for k in tree.instance)
    return {
        **row,
        "dataset_items": total,
        "coverage": len(members) / total if total else 0.0,
        "index": mode,
        "shared_prompts": n_instances - len(members),
        "distinguishing_mismatched": tree.mismatched,
    }


def is_imported(tree_row: dict | pd.Series) -> bool:
    """Whether a ``trees`` row is an imported tree (not built here)."""
    return str(tree_row["describer"]).startswith("imported:")

"""The simulator's prompt pool (real prompts from the bundled data) and its capability groups.

The pool does not depend on the seed: the same data folder always gives the same prompts in
the same order, so simulations with different seeds share prompt ids and group definitions.

Sources (texts composed exactly as the bundled importers compose them, so a simulated prompt
has the same ``prompt_id`` as the same prompt imported from its own dataset):

* ``arena-hard-v0.1`` / ``arena-hard-v2.0``: ``question.jsonl`` ``prompt`` (1,250 real Chatbot
  Arena prompts);
* ``alpaca_eval``: the distinct ``instruction`` of one ``annotations.json`` (805);
* ``pandalm``: ``instruction``, plus a blank line and ``input`` when non-empty (170);
* ``llmfao``: ``prompts.jsonl`` ``text`` (19);
* ``math``: every ``math_every``-th problem of ``math_test.jsonl`` (1,000 by default).

Prompts longer than ``max_prompt_chars`` characters are left out (they would dominate the
size of a vote file, which repeats the prompt in both conversations of every vote).

Capability groups are keyword definitions (case-insensitive regular expressions over the prompt
text); a prompt may belong to several groups or none. Their membership is a pure function of
the pool, stored in the truth file with the pattern that made it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ArenatreeError
from ..ingest.load import text_hash

# name -> (description, case-insensitive pattern)
GROUPS: dict[str, tuple[str, str]] = {
    "coding": (
        "any programming or software task",
        r"\bcode\b|\bprogram(?:s|ming)?\b|\bfunction\b|\bscript\b|\bpython\b|\bjavascript\b|\bsql\b"
        r"|\bc\+\+|\bjava\b|\brust\b|\bapi\b|\bclass\b|\bbug\b|\bcompile\w*|\balgorithm\w*|```",
    ),
    "python": (
        "Python code and its libraries",
        r"\bpython\b|\bpandas\b|\bnumpy\b|\bdef \w+\(|\bimport \w+|\bpytorch\b|\bdjango\b|\bflask\b",
    ),
    "sql_databases": (
        "SQL queries and databases",
        r"\bsql\b|\bpostgres\w*|\bmysql\b|\bsqlite\b|\bdatabases?\b|\bquery\b|\bselect \*",
    ),
    "web_frontend": (
        "web development: JavaScript, HTML, CSS, front-end frameworks",
        r"\bjavascript\b|\btypescript\b|\breact\b|\bhtml\b|\bcss\b|\bnode\.?js\b|\bvue\b"
        r"|\bweb ?(?:page|site|app)\w*|\bbrowser\b",
    ),
    "systems_programming": (
        "C, C++, Rust, Java, Go and other compiled languages",
        r"\bc\+\+|\brust\b|\bgolang\b|\bjava\b|\bc#|\bkotlin\b|\bswift\b|\bassembly\b|\bin c\b",
    ),
    "shell_devops": (
        "shell, Linux, containers and servers",
        r"\bbash\b|\bshell\b|\blinux\b|\bdocker\w*|\bkubernetes\b|\bnginx\b|\bterminal\b|\bgit\b"
        r"|\bserver\b|\bcommand line\b",
    ),
    "data_ml": (
        "machine learning and data analysis",
        r"\bmachine learning\b|\bneural network|\bdeep learning\b|\bregression\b|\bclassifier\b"
        r"|\bdataset\b|\btensorflow\b|\btraining data\b|\bdata ?frame\b|\bstatistic\w*",
    ),
    "math": (
        "mathematics of any kind",
        r"\$|\bsolve\b|\bequations?\b|\bprobability\b|\btriangle\b|\bprimes?\b|\bintegers?\b"
        r"|\bcompute\b|\bcalculate\b|\bsum of\b|\bfunction f\b",
    ),
    "algebra_equations": (
        "equations, polynomials and roots",
        r"\bsolve\b|\bequations?\b|\bpolynomials?\b|\bquadratic\b|\broots?\b|x\^2",
    ),
    "geometry": (
        "geometry: shapes, angles, areas",
        r"\btriangles?\b|\bcircles?\b|\bradius\b|\bpolygons?\b|\bangles?\b|\bperimeter\b|\bhexagon"
        r"|\brectangles?\b|\bspheres?\b|\bcubes?\b|\bparallelogram\b",
    ),
    "probability_counting": (
        "probability and combinatorics",
        r"\bprobability\b|\bdice\b|\bcoins?\b|\bhow many ways\b|\bexpected value\b|\bat random\b"
        r"|\brandomly\b|\bpermutations?\b|\bcombinations?\b",
    ),
    "number_theory": (
        "primes, divisibility and modular arithmetic",
        r"\bprimes?\b|\bdivisors?\b|\bremainder\b|\bmodulo\b|\bgcd\b|\bdivisible\b|\bbase \d+\b"
        r"|\bfactors?\b|\bdigits?\b",
    ),
    "creative_writing": (
        "poems, stories, songs and other creative writing",
        r"\bpoem\b|\bpoetry\b|\bhaiku\b|\blimerick\b|\bsong\b|\blyrics\b|\bstory\b|\bfiction\b"
        r"|\bscreenplay\b|\bsonnet|\bverse\b|\bjoke\b",
    ),
    "rewriting_editing": (
        "rewriting, editing, summarising and grammar",
        r"\brewrite\b|\bparaphrase\b|\bproofread\b|\bgrammar\w*|\bsummar(?:y|ize|ise)\b|\bconcise\b"
        r"|\bsentence\b|\brephrase\b",
    ),
    "translation": (
        "translation between languages",
        r"\btranslat\w*|\binto (?:english|french|spanish|german|chinese|japanese|italian|russian)\b",
    ),
    "business_marketing": (
        "business, marketing and sales",
        r"\bmarketing\b|\bbusiness\w*|\bstartup\b|\bsales\b|\bcustomers?\b|\bbrand\b|\bcompany\b",
    ),
    "finance_economics": (
        "finance, investing and economics",
        r"\binvest\w*|\bstocks?\b|\btax\w*|\bfinanc\w+|\beconom\w+|\binterest rate|\bloan\b|\bbudget\b",
    ),
    "science": (
        "natural sciences",
        r"\bphysics\b|\bchemi\w+|\bbiolog\w+|\bquantum\b|\bmolecul\w+|\bdna\b|\benergy\b|\bclimate\b"
        r"|\bscien\w+",
    ),
    "health_medicine": (
        "health, medicine and fitness",
        r"\bhealth\w*|\bmedic\w+|\bdoctor\b|\bsymptoms?\b|\bdiet\b|\bexercise\b|\bpatients?\b|\bdisease",
    ),
    "role_play": (
        "role play and persona instructions",
        r"\bpretend\b|\bact as\b|\brole[- ]?play|\byou are an?\b|\bimagine you\b|\bplay the role",
    ),
    "history_culture": (
        "history, society and culture",
        r"\bhistory\b|\bhistorical\b|\bwar\b|\bcentury\b|\bancient\b|\bempire\b|\bculture\b|\bpolitic\w*",
    ),
}

# groups defined by the prompt's language (detect_language), not by a pattern
LANGUAGE_GROUPS: dict[str, str] = {"non_english": "prompts not written in English"}


@dataclass(frozen=True)
class PromptPool:
    """The prompts, all arrays/lists of length n_prompts, in a fixed order."""

    texts: list[str]
    prompt_ids: list[str]  # text_hash(text): the importer's prompt_id
    sources: list[str]  # 'arena-hard-v0.1', 'alpaca_eval', ...
    source_ids: list[str]  # uid / idx / id in the source
    languages: list[str]  # detected language name, 'English' when no other script dominates

    def __len__(self) -> int:
        return len(self.texts)


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _read_sources(data_dir: Path, math_every: int) -> list[tuple[str, str, str]]:
    """(source, source_id, text) from every bundled source that is present."""
    out: list[tuple[str, str, str]] = []
    for version in ("v0.1", "v2.0"):
        path = data_dir / "arena_hard" / version / "question.jsonl"
        if path.is_file():
            out += [(f"arena-hard-{version}", str(r["uid"]), r["prompt"]) for r in _jsonl(path)]
    annotations = sorted((data_dir / "alpaca_eval" / "results").glob("*/*/annotations.json"))
    if annotations:
        with open(annotations[0], encoding="utf-8") as fh:
            rows = json.load(fh)
        out += [("alpaca_eval", str(i), r["instruction"]) for i, r in enumerate(rows)]
    path = data_dir / "pandalm" / "testset-v1.json"
    if path.is_file():
        with open(path, encoding="utf-8") as fh:
            for r in json.load(fh):
                parts = [t for t in (r.get("instruction") or "", r.get("input") or "") if t.strip()]
                out.append(("pandalm", str(r["idx"]), "\n\n".join(parts)))
    path = data_dir / "llmfao" / "prompts.jsonl"
    if path.is_file():
        out += [("llmfao", str(r["id"]), r["text"]) for r in _jsonl(path)]
    path = data_dir / "math" / "math_test.jsonl"
    if path.is_file() and math_every > 0:
        rows = _jsonl(path)
        out += [
            ("math", str(r.get("idx", i)), r["problem"]) for i, r in enumerate(rows) if i % math_every == 0
        ]
    return out


def _usable(text: object, max_chars: int) -> bool:
    if not isinstance(text, str) or not text.strip() or len(text) > max_chars or "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from \ud8xx escapes
        return False
    return True


def detect_language(text: str) -> str:
    """The prompt's language name (py3langid on its prose, :func:`pipelines.tree.language.language_of`;
    'Chinese', 'Spanish', 'Cyrillic script', ...), 'English' when it names no other language."""
    from ..tree.language import language_of
    from ..tree.markup import plain_segments

    return language_of(plain_segments(text).prose) or "English"


def load_prompt_pool(data_dir: Path, *, math_prompts: int = 1000, max_prompt_chars: int = 4000) -> PromptPool:
    """Read the real prompts under ``data_dir`` (see the module docstring); dedup by text.

    ``math_prompts`` is the approximate number of MATH problems kept (every k-th of 5,000).
    Raises ArenatreeError when fewer than 20 usable prompts are found.
    """
    math_file = data_dir / "math" / "math_test.jsonl"
    n_math = 0
    if math_file.is_file():
        with open(math_file, encoding="utf-8") as fh:
            n_math = sum(1 for line in fh if line.strip())
    math_every = max(1, round(n_math / math_prompts)) if math_prompts > 0 and n_math else 0
    seen: set[str] = set()
    texts, sources, source_ids = [], [], []
    for source, sid, text in _read_sources(data_dir, math_every):
        if not _usable(text, max_prompt_chars) or text in seen:
            continue
        seen.add(text)
        texts.append(text)
        sources.append(source)
        source_ids.append(sid)
    if len(texts) < 20:
        raise ArenatreeError(
            f"{data_dir}: found {len(texts)} usable prompts; the simulator needs the bundled data "
            "(arena_hard, alpaca_eval, pandalm, llmfao, math): set ARENATREE_DATA or run 'arenatree fetch'"
        )
    return PromptPool(
        texts=texts,
        prompt_ids=[text_hash(t) for t in texts],
        sources=sources,
        source_ids=source_ids,
        languages=[detect_language(t) for t in texts],
    )


def group_membership(
    texts: list[str],
    groups: dict[str, tuple[str, str]] = GROUPS,
    languages: list[str] | None = None,
) -> np.ndarray:
    """Boolean membership, shape (n_groups, n_prompts): row g marks the prompts whose text
    matches group g's pattern (case-insensitive search); with ``languages`` (one name per prompt),
    the rows of :data:`LANGUAGE_GROUPS` follow (``non_english``: language is not 'English')."""
    out = np.zeros((len(groups) + (len(LANGUAGE_GROUPS) if languages is not None else 0), len(texts)), bool)
    for g, (_, pattern) in enumerate(groups.values()):
        rx = re.compile(pattern, re.IGNORECASE)
        out[g] = [rx.search(t) is not None for t in texts]
    if languages is not None:
        out[len(groups)] = np.asarray(languages, dtype=object) != "English"
    return out

"""Prompt facets beside the capability tree: language and arena-style categories.

A weakness need not follow the tree's clusters: a model can be weak on every prompt not written
in English, or on all coding prompts, which the embedding tree spreads over many nodes. The
Weaknesses pipeline therefore tests these facets as candidate groups next to the tree's nodes
(:mod:`.stepwise`). Each facet is a boolean mask over the dataset's prompts:

* ``language:<name>``: the prompt's language — the language stored with the prompt or its votes
  when the source gives one, else :func:`pipelines.tree.language.language_of` (py3langid on the
  prompt's prose); ``language:non-English`` joins every language but English;
* ``category:<name>``: the categories LMArena reports leaderboards for that can be read off the
  text offline — coding, math, creative writing — plus multi-turn and long prompts. The reading
  is lexical (markup-aware: a code fence or a code line counts as code, LaTeX as math, see
  :mod:`pipelines.tree.markup`), so it is a transparent approximation of LMArena's LLM-judged tags,
  not a copy of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..tree.language import language_of
from ..tree.markup import ESCAPED_DOLLAR, plain_segments
from ..tree.markup import MATH as MATH_SPAN

MIN_FACET = 10  # prompts a facet needs to be tested
LONG_PROMPT_WORDS = 300  # LMArena's "longer query" is about 500 tokens; ~300 words

CODING = re.compile(  # one of these makes a coding prompt ...
    r"\b(?:code|coding|codes|program|programs|programming|programmer|script|scripts|debug\w*|bugs?"
    r"|compil\w+|apis?|regex|python|javascript|typescript|java|c\+\+|c#|rust|golang|kotlin|php|ruby"
    r"|perl|sql|html|css|react|django|flask|pandas|numpy|bash|powershell|docker\w*|kubernetes|git"
    r"|github|json|yaml|vba|matlab|refactor\w*|unit tests?|stack trace|syntax error|compiler)\b",
    re.IGNORECASE,
)
CODING_WEAK = re.compile(  # ... or two of these
    r"\b(?:functions?|class(?:es)?|methods?|variables?|arrays?|loops?|recursion|algorithm\w*|database"
    r"|quer(?:y|ies)|backend|frontend|framework|librar(?:y|ies)|implement\w*|linux|terminal|shell"
    r"|server|exception|runtime|xml|excel|swift|latex)\b",
    re.IGNORECASE,
)
MATH = re.compile(
    r"\b(?:math\w*|equations?|solve|solving|integral\w*|derivative\w*|calculus|algebra\w*|geometr\w+"
    r"|trigonometr\w+|probabilit\w+|statistic\w*|primes?|integers?|polynomial\w*|theorem\w*|proofs?"
    r"|prove|matrix|matrices|vectors?|triangles?|circles?|radius|angles?|area|perimeter|volume"
    r"|fractions?|decimal|percent(?:age)?|remainder|divisible|divisors?|factorial|logarithm\w*"
    r"|exponent\w*|sum of|product of|how many|compute|calculate|calculation|arithmetic|numbers?)\b",
    re.IGNORECASE,
)
CREATIVE = re.compile(
    r"\b(?:poem|poems|poetry|poetic|haiku|limerick|sonnet|verses?|rhym\w+|song|songs|lyrics|rap"
    r"|story|stories|short fiction|fiction|fairy tale|fable|novel|screenplay|script for a (?:movie|film|play)"
    r"|joke|jokes|riddle|dialogue between)\b",
    re.IGNORECASE,
)
FORMULA = re.compile(r"[=^+\-*/<>]|\\[A-Za-z]+|\b[a-z]\b")  # inside $...$: math, not money


@dataclass(frozen=True)
class Facets:
    """Candidate groups over n prompts: ``keys`` (n_facets,) like 'language:Chinese',
    ``descriptions`` (n_facets,) in words, ``masks`` (n_facets, n_prompts) bool."""

    keys: list[str]
    descriptions: list[str]
    masks: np.ndarray


def prompt_languages(texts: Sequence[str], stored: Sequence[str | None] | None = None) -> list[str]:
    """(n_prompts,) language names: ``stored[i]`` when the source gave one (normalised: 'en',
    'English' and case variants become 'English'), else py3langid on the prose; 'English' when
    neither names another language."""
    out = []
    for i, text in enumerate(texts):
        given = stored[i] if stored is not None else None
        if isinstance(given, str) and given.strip() and given.strip().lower() not in ("unknown", "und"):
            name = given.strip()
            out.append("English" if name.lower() in ("en", "english") else name[:1].upper() + name[1:])
            continue
        out.append(language_of(plain_segments(text).prose) or "English")
    return out


def categories(text: str, turns: int | None = None) -> list[str]:
    """The categories of one prompt (any of 'coding', 'math', 'creative writing', 'multi-turn',
    'long prompt'; possibly none)."""
    plain = plain_segments(text)
    prose = plain.prose
    out = []
    coding = "code" in plain.concepts or CODING.search(prose) or len(CODING_WEAK.findall(prose)) >= 2
    if coding:
        out.append("coding")
    formula = any(FORMULA.search(m.group(0)) for m in MATH_SPAN.finditer(ESCAPED_DOLLAR.sub(" ", text)))
    concepts = [c for c in plain.concepts if c != "code"]
    if formula or concepts or len(MATH.findall(prose)) >= 2:
        out.append("math")
    if CREATIVE.search(prose) and not coding:
        out.append("creative writing")
    if turns is not None and turns > 1:
        out.append("multi-turn")
    if len(prose.split()) >= LONG_PROMPT_WORDS:
        out.append("long prompt")
    return out


CATEGORY_WORDS = {
    "coding": "coding and software prompts",
    "math": "mathematics prompts",
    "creative writing": "creative writing: stories, poems, songs",
    "multi-turn": "multi-turn conversations",
    "long prompt": f"long prompts (≥ {LONG_PROMPT_WORDS} words)",
}


def prompt_facets(
    texts: Sequence[str],
    languages: Sequence[str | None] | None = None,
    turns: Sequence[int | None] | None = None,
    min_size: int = MIN_FACET,
) -> Facets:
    """The facets of ``texts`` (see the module docstring) holding at least ``min_size`` prompts and
    not every prompt (a facet equal to the whole dataset says nothing). Deterministic order:
    languages by size, then categories in :data:`CATEGORY_WORDS` order."""
    n = len(texts)
    langs = np.asarray(prompt_languages(texts, languages), dtype=object)
    keys, words, masks = [], [], []

    def add(key: str, description: str, mask: np.ndarray) -> None:
        if min_size <= int(mask.sum()) < n:
            keys.append(key)
            words.append(description)
            masks.append(mask)

    add("language:non-English", "prompts not written in English", langs != "English")
    names, counts = np.unique(langs[langs != "English"], return_counts=True)
    for name in [str(x) for x in names[np.lexsort((names, -counts))]]:
        add(f"language:{name}", f"prompts written in {name}", langs == name)
    cats = [categories(t, turns[i] if turns is not None else None) for i, t in enumerate(texts)]
    for name, description in CATEGORY_WORDS.items():
        add(f"category:{name}", description, np.array([name in c for c in cats], dtype=bool))
    return Facets(keys, words, np.array(masks, dtype=bool).reshape(len(keys), n))

"""How well node names read, measured: junk tokens, keyword lists, sibling clashes, and how well
a name picks out its own prompts.

These measures judge any describer (offline, LLM, keyword baseline) from the outside: the junk
vocabulary below is written independently of the describer's own filters.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Sequence

import numpy as np

from .markup import word_set

# LaTeX command names and environments seen in math benchmarks.
LATEX_WORDS = word_set("""
    frac dfrac tfrac sqrt mathbf mathrm mathbb mathcal pmatrix bmatrix vmatrix begin end left
    right cdot cdots ldots text textbf textit emph operatorname displaystyle infty circ le leq ge
    geq neq equiv pmod bmod pm mp lim ln sin cos tan sec csc cot arcsin arccos arctan alpha beta
    gamma delta epsilon theta lambda mu pi sigma phi omega binom overline underline overrightarrow
    vec lfloor rfloor lceil rceil quad qquad hline tabular aligned asy draw label unitsize dashed
    rightarrow leftarrow iff
    """)
# Programming keywords and identifiers common in prompts (English function words left out).
CODE_WORDS = (
    frozenset(keyword.kwlist) - {"and", "or", "not", "in", "is", "for", "with", "as", "if", "from", "class"}
) | word_set("""
    def elif self print lambda return import var const let func void int str bool dict
    len printf println cout cin std nullptr malloc sizeof struct enum typedef namespace async await
    println echo sudo argv args kwargs init null undefined nan np pd plt df href div span img src
    """)
URL_WORDS = word_set("http https www com org htm ftp")
JUNK = LATEX_WORDS | CODE_WORDS | URL_WORDS
TOKEN = re.compile(r"[A-Za-z]+|\d+")


def junk_tokens(name: str) -> list[str]:
    """The tokens of a name that are markup, code, URL parts, numbers or single letters (other
    than "a")."""
    out = []
    for tok in TOKEN.findall(name):
        low = tok.lower()
        if tok.isdigit() or (len(tok) == 1 and low != "a") or low in JUNK:
            out.append(tok)
    return out


def is_keyword_list(name: str) -> bool:
    """True for a name that is a list of three or more comma-separated items ("sqrt, frac, sin")."""
    return len([part for part in name.split(",") if part.strip()]) >= 3


def sibling_clashes(names: Sequence[str], parent: np.ndarray) -> int:
    """How many nodes share their name with an earlier sibling (case-insensitive)."""
    seen: set[tuple[int, str]] = set()
    clashes = 0
    for name, p in zip(names, parent, strict=True):
        key = (int(p), name.strip().lower())
        clashes += key in seen
        seen.add(key)
    return clashes


def membership_auc(name_vectors: np.ndarray, item_vectors: np.ndarray, member: np.ndarray) -> float:
    """How well a node's name picks out its own prompts: the probability that a random member
    prompt is closer (cosine) to the name than a random non-member prompt (ties count half);
    0.5 is chance.

    name_vectors: (n_nodes, d) unit rows; item_vectors: (n_items, d) unit rows; member: boolean
    (n_nodes, n_items). Nodes with no members or no non-members are left out; the result is the
    mean over the other nodes.
    """
    from scipy.stats import rankdata

    sims = name_vectors @ item_vectors.T
    aucs = []
    for row, inside in zip(sims, member, strict=True):
        n_in = int(inside.sum())
        n_out = len(inside) - n_in
        if n_in == 0 or n_out == 0:
            continue
        ranks = rankdata(row)
        aucs.append((ranks[inside].sum() - n_in * (n_in + 1) / 2) / (n_in * n_out))
    return float(np.mean(aucs)) if aucs else float("nan")

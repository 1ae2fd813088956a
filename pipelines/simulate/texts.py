"""Compact synthetic responses whose style features are exactly the planned ones.

A response is built from short lowercase filler words (a fixed pseudo-random word stream,
read from a per-response offset) plus Markdown markers, so that :mod:`pipelines.style` measures
exactly the planned counts:

* tokens: every filler word, every ``##`` / ``-`` / ``**`` marker and every line break (a
  ``\\n`` or ``\\n\\n`` run) is one piece of the cl100k pre-tokeniser pattern; lines never end
  in punctuation (which would merge with the line break), so the count is additive;
* headers: ``## Two words`` lines; lists: ``- words`` lines; bold: ``**word**`` spans inside
  paragraph lines, always followed by another word on the same line;
* refusal: one of :data:`REFUSALS` (each matches ``REFUSAL_PATTERN``) plus a few filler words;
* identity leak: the opening line starts ``I am <Family>`` where the family is one of
  FastChat's identity words (:data:`FAMILIES`).

Planned counts that do not fit the token budget are reduced (bold first, then list items, then
headers); :func:`build_responses` returns the realised counts, which the vote model uses and
which equal what the importer computes (checked by the tests against the real SQL).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

# Model families named by identity-leaking responses: letters only, all in style.IDENTITY_WORDS.
FAMILIES = (
    "llama",
    "qwen",
    "mistral",
    "claude",
    "gemini",
    "deepseek",
    "vicuna",
    "koala",
    "chatglm",
    "hermes",
    "cohere",
    "dbrx",
)
# Filler vocabulary: short lowercase words, none of them an identity word.
_VOCAB_TEXT = (
    "the a to of and in is it you that for on with as can be this are by or use your an one each all "
    "we if will not more when which so also make may data set step way key case value list time then "
    "first next new run test check same form part work point idea note here there what how most some "
    "other than into over only just like good best well need help show give take keep find want very "
    "many much such both few own main line code file plan goal user task end top low high long short "
    "small large simple clear easy fast safe open real true full add get put see try let say ask read "
    "write call move save load sort build start stop change this that these those often still again "
    "about after before while where why who its our their them they he she his her up out off down"
)
VOCAB = tuple(_VOCAB_TEXT.split())
REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I am sorry, but I cannot assist with this request.",
    "Sorry, I can't provide that kind of content.",
    "I apologize, but I am unable to help with this.",
    "As an AI, I cannot do that for you.",
    "Unfortunately, I won't be able to help with that.",
    "I can't help with that request.",
    "I'm afraid I cannot comply with this request.",
)
STREAM_WORDS = 1 << 16  # filler stream length (words); responses read from a random offset
MAX_TOKENS = 4000  # longest response, in tokens
STREAM_SEED = 20230424  # the word stream is fixed, not seed-dependent


@lru_cache(maxsize=1)
def _stream() -> tuple[str, np.ndarray]:
    """The filler stream ``" w0 w1 w2 ..."`` and the char offset of each word's leading space,
    shape (STREAM_WORDS + MAX_TOKENS + 1,) (the last entry is the string's length)."""
    rng = np.random.default_rng(STREAM_SEED)
    idx = rng.integers(0, len(VOCAB), STREAM_WORDS + MAX_TOKENS)
    words = [VOCAB[i] for i in idx]
    lengths = np.fromiter((len(w) + 1 for w in words), dtype=np.int64, count=len(words))
    pos = np.concatenate([[0], np.cumsum(lengths)])
    return "".join(" " + w for w in words), pos


@lru_cache(maxsize=1)
def refusal_tokens() -> tuple[int, ...]:
    """Token count of each refusal template, measured with the importer's own SQL."""
    import duckdb

    from ..style import TOKEN

    con = duckdb.connect()
    try:
        rows = con.execute(
            "SELECT len(regexp_extract_all(t, ?)) FROM unnest(?) WITH ORDINALITY AS u(t, i) ORDER BY i",
            [TOKEN, list(REFUSALS)],
        ).fetchall()
    finally:
        con.close()
    return tuple(int(r[0]) for r in rows)


class _Reader:
    """Sequential reader over the filler stream from a start word."""

    def __init__(self, start: int) -> None:
        self.text, self.pos = _stream()
        self.i = start

    def words(self, k: int, *, lead: bool = True, cap: bool = False) -> str:
        """The next ``k`` words (``k`` tokens); with a leading space unless ``lead`` is False."""
        if k <= 0:
            return ""
        s = self.text[self.pos[self.i] + (0 if lead else 1) : self.pos[self.i + k]]
        self.i += k
        if cap:
            j = 1 if lead else 0
            s = s[:j] + s[j].upper() + s[j + 1 :]
        return s


def min_tokens(headers: int, lists: int, bold: int) -> int:
    """Fewest tokens a response with these Markdown counts takes (see :func:`compose`)."""
    n_par = max(1, headers)
    n_lines = 1 + headers + n_par + lists
    # opening 3 words; header "##" + 2 words; item "-" + 2 words; per paragraph one word plus,
    # per bold span, "**" word "**" and the word after it; one piece per line break
    return 3 + 3 * headers + 3 * lists + n_par + 4 * bold + (n_lines - 1)


def fit_counts(tokens: np.ndarray, headers: np.ndarray, lists: np.ndarray, bold: np.ndarray) -> tuple:
    """Reduce planned Markdown counts until they fit the token budget (bold, then lists, then
    headers), and raise budgets below the plain minimum. All arrays shape (n,), int64.
    Returns (tokens, headers, lists, bold)."""
    t, h, li, b = (np.asarray(x, dtype=np.int64).copy() for x in (tokens, headers, lists, bold))
    t = np.clip(t, min_tokens(0, 0, 0), MAX_TOKENS)

    def cost(h_, l_, b_):
        n_par = np.maximum(1, h_)
        return 3 + 3 * h_ + 3 * l_ + n_par + 4 * b_ + (h_ + n_par + l_)

    over = cost(h, li, b) - t
    cut = np.clip(np.ceil(over / 4), 0, b).astype(np.int64)  # each bold span costs 4
    b -= cut
    over = cost(h, li, b) - t
    cut = np.clip(np.ceil(over / 4), 0, li).astype(np.int64)  # a list item costs 4 with its break
    li -= cut
    over = cost(h, li, b) - t
    cut = np.clip(np.ceil(over / 4), 0, h).astype(np.int64)  # a header costs 4 (6 past the first)
    h -= cut
    assert (cost(h, li, b) <= t).all()
    return t, h, li, b


def compose(tokens: int, headers: int, lists: int, bold: int, start: int, family: str | None) -> str:
    """One non-refusal response with exactly these counts (``fit_counts`` must hold).

    Layout: an opening line (``I am <Family> ...`` when ``family`` is given); then per section
    an optional ``## `` header, one paragraph carrying its share of bold spans, and its share of
    ``- `` list items; sections are separated by a blank line.
    """
    r = _Reader(start)
    n_par = max(1, headers)
    extra = tokens - min_tokens(headers, lists, bold)
    open_extra = min(12, extra // 10)
    extra -= open_extra
    item_extra = min(8, (extra * 3 // 10) // lists) if lists else 0
    extra -= item_extra * lists
    head_extra = min(1, extra // max(headers, 1)) if headers else 0
    extra -= head_extra * headers
    par_words = [1 + extra // n_par + (1 if p < extra % n_par else 0) for p in range(n_par)]
    par_bold = [bold // n_par + (1 if p < bold % n_par else 0) for p in range(n_par)]
    par_items = [lists // n_par + (1 if p < lists % n_par else 0) for p in range(n_par)]

    n_open = 3 + open_extra
    opening = (
        (f"I am {family.capitalize()}" + r.words(n_open - 3))
        if family
        else r.words(n_open, lead=False, cap=True)
    )
    blocks = [opening]
    for p in range(n_par):
        lines = []
        if headers:
            lines.append("##" + r.words(2 + head_extra, cap=True))
        b, w = par_bold[p], par_words[p] + par_bold[p]  # w: plain words, one after each bold span
        before = w - b  # words before the first bold span (all words when there is none)
        parts = [r.words(before, lead=False, cap=True)]
        for _ in range(b):
            parts.append((" **" if parts[-1] else "**") + r.words(1, lead=False) + "**" + r.words(1))
        lines.append("".join(parts))
        lines.extend("-" + r.words(2 + item_extra) for _ in range(par_items[p]))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def refusal(template: int, words: int, start: int) -> str:
    """Refusal template ``template`` followed by ``words`` filler words."""
    r = _Reader(start)
    return REFUSALS[template] + r.words(words, cap=True)


def build_responses(
    plan: dict[str, np.ndarray],
    families: list[str | None],
    progress: Callable[[int], None] | None = None,
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Texts and realised features for n planned responses.

    ``plan`` holds arrays of shape (n,): tokens, headers, lists, bold (int), refusal, leak
    (bool), refusal_template, refusal_words, start (int). ``families[i]`` names the family a
    leaking response reveals. Returns the texts and the realised features (tokens, headers,
    lists, bold as int64; refusal, identity_leak as bool), each of shape (n,).
    """
    t, h, li, b = fit_counts(plan["tokens"], plan["headers"], plan["lists"], plan["bold"])
    ref = plan["refusal"].astype(bool)
    leak = plan["leak"].astype(bool) & ~ref
    rt = plan["refusal_template"].astype(np.int64)
    rw = plan["refusal_words"].astype(np.int64)
    ref_tok = np.asarray(refusal_tokens(), dtype=np.int64)[rt] + rw
    t = np.where(ref, ref_tok, t)
    h, li, b = (np.where(ref, 0, x) for x in (h, li, b))
    start = plan["start"].astype(np.int64)
    texts: list[str] = []
    n = len(t)
    for i in range(n):
        if ref[i]:
            texts.append(refusal(int(rt[i]), int(rw[i]), int(start[i])))
        else:
            fam = families[i] if leak[i] else None
            texts.append(compose(int(t[i]), int(h[i]), int(li[i]), int(b[i]), int(start[i]), fam))
        if progress is not None and (i + 1) % 10000 == 0:
            progress(i + 1)
    if progress is not None:
        progress(n)
    feats = {"tokens": t, "headers": h, "lists": li, "bold": b, "refusal": ref, "identity_leak": leak}
    return texts, feats

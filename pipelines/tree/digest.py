"""A long prompt cut to a character budget so that its question survives.

Reading-comprehension items (MMLU, RACE, ...) are one long passage plus a short question, and
several items share the passage: the first N characters of each are the same text. The digest
of a prompt longer than the budget is a head sample, ``" … "`` and the prompt's question block,
found by the first rule that applies:

1. the last question-like line (one ending in ``?``, or opening with ``Question:`` / ``Q:``)
   to the end;
2. the line before a closing run of answer options (``A. ...``, ``(B) ...``) to the end;
3. the last paragraph (after the final blank line) when it is short prose: at most the
   question's share of the budget, mostly letters (not code or a diagram).

A prompt that fits, has no such block, or whose block the head already shows, is its head.
"""

from __future__ import annotations

import re

SEPARATOR = " … "
QUESTION_SHARE = 0.6  # at most this share of the budget goes to the question block
QUESTION_LINE = re.compile(r"\?\s*$|^\s*(question|q)\s*\d*\s*[:.)]", re.IGNORECASE)
OPTION_LINE = re.compile(r"^\s*(\([A-Ha-h]\)|[A-H][.):])\s")
PROSE_SHARE = 0.8  # letters and spaces in a last paragraph taken as the question (rule 3)
BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")


def flat(text: str) -> str:
    """``text`` with every whitespace run made one space, stripped."""
    return " ".join(text.split())


def _prose(text: str) -> bool:
    return sum(c.isalpha() or c.isspace() for c in text) >= PROSE_SHARE * len(text)


def question_block(text: str, max_block: int) -> tuple[str, str]:
    """(before, block) of ``text``, both whitespace-collapsed, by the rules of this module (the
    block never starts on the first line); ``("", "")`` when no rule applies. ``max_block``
    (characters) bounds the last paragraph of rule 3."""
    lines = text.splitlines()
    start = next((i for i in range(len(lines) - 1, 0, -1) if QUESTION_LINE.search(lines[i])), 0)
    if not start:
        options = len(lines)
        while options > 0 and (OPTION_LINE.match(lines[options - 1]) or not flat(lines[options - 1])):
            options -= 1
        if options < len(lines) and any(OPTION_LINE.match(line) for line in lines[options:]):
            start = next((i for i in range(options - 1, 0, -1) if flat(lines[i])), 0)
    if start:
        return flat("\n".join(lines[:start])), flat("\n".join(lines[start:]))
    paragraphs = [p for p in BLANK_LINE.split(text.strip()) if flat(p)]
    last = flat(paragraphs[-1]) if paragraphs else ""
    if len(paragraphs) > 1 and len(last) <= max_block and _prose(last):
        return flat("\n\n".join(paragraphs[:-1])), last
    return "", ""


def digest(text: str, max_chars: int) -> str:
    """At most ``max_chars`` characters of ``text`` (whitespace collapsed) keeping its question:
    head + SEPARATOR + question block (the block cut to ``QUESTION_SHARE`` of the budget, from
    its start) where the prompt is longer than the budget and the head would miss the block."""
    whole = flat(text)
    if len(whole) <= max_chars:
        return whole
    budget = int(max_chars * QUESTION_SHARE)
    before, block = question_block(text, budget)
    block = block[:budget]
    if not block or not before or len(before) + 1 + len(block) <= max_chars:
        return whole[:max_chars]
    head = before[: max_chars - len(block) - len(SEPARATOR)].rstrip()
    return head + SEPARATOR + block

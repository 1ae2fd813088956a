"""Untrusted text at the edges: counts typed in URLs, texts and names read from files, and what
a terminal is sent.

* :func:`parse_count`: an ASCII decimal count ("100"); ``str.isdigit`` also accepts "²" and
  "١٢", which ``int`` then refuses or reads as another number.
* :func:`clean_text`: a prompt or answer as stored: NUL characters dropped and lone UTF-16
  surrogates (which no UTF-8 file can hold, but JSON's ``\\ud800`` escape can) replaced by
  U+FFFD; everything else verbatim.
* :func:`name_problem`: why a model or judge name cannot be stored (a control character: a NUL,
  a newline, a terminal escape), if it cannot; names are trimmed first (:func:`clean_name`).
* :func:`terminal_safe`: text with every control character but newline, tab and carriage return
  shown as an escape (``\\x1b``), so a hostile name cannot clear or retitle the user's terminal.
"""

from __future__ import annotations

import re

import pandas as pd

COUNT = re.compile(r"[0-9]{1,18}")
SURROGATE = re.compile("[\ud800-\udfff]")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
TERMINAL_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def parse_count(raw: object) -> int | None:
    """``raw`` as a non-negative integer when it is ASCII digits only ('100'), else None."""
    text = str(raw).strip()
    return int(text) if COUNT.fullmatch(text) else None


def clean_text(text: str) -> str:
    """A text as stored: NULs dropped, lone surrogates replaced by U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    return SURROGATE.sub("\ufffd", text)


ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def clean_json(value, raw: str):
    """A parsed JSON value with every lone surrogate replaced by U+FFFD (see :func:`clean_text`;
    NULs are left to :func:`clean_texts`); ``raw`` is the JSON text it came from, and only one
    that writes a surrogate escape is walked (a paired one decodes to a real character)."""
    if not ESCAPED_SURROGATE.search(raw):
        return value
    return _replace_surrogates(value)


def _replace_surrogates(value):
    if isinstance(value, str):
        return SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    return value


def clean_texts(values: pd.Series) -> pd.Series:
    """:func:`clean_text` of every string in a column (other values unchanged)."""
    return values.map(lambda v: clean_text(v) if isinstance(v, str) else v)


def clean_name(name: object) -> object:
    """A name trimmed of surrounding whitespace (non-strings unchanged)."""
    return name.strip() if isinstance(name, str) else name


def name_problem(name: object) -> str | None:
    """Why ``name`` (already trimmed) cannot be a model or judge name, or None."""
    if not isinstance(name, str):
        return None
    if SURROGATE.search(name):
        return "holds an unpaired UTF-16 surrogate"
    match = CONTROL.search(name)
    if match:
        return f"holds the control character {match.group(0)!r} (names are one line of printable text)"
    return None


def terminal_safe(text: str) -> str:
    """``text`` with control characters other than newline, tab and carriage return written as
    ``\\xNN`` (ESC, BEL, NUL, ... cannot reach the terminal)."""
    return TERMINAL_UNSAFE.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


class TerminalSafe:
    """A text stream that writes :func:`terminal_safe` text to ``inner`` (the CLI's stdout)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        return self.inner.write(terminal_safe(text))

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

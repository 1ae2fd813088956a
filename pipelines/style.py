"""Style features of a response, computed inside DuckDB at import time.

Definitions (the same as FastChat's ``count_markdown_elements`` used for LMArena's style
control, applied after removing fenced code blocks with the pattern ```` ```[^`]*``` ````):

* headers: lines starting with 1-6 ``#`` followed by white space (h1..h6 summed);
* lists: ordered ``^\\s*\\d+\\.\\s`` plus unordered ``^\\s*[-*+]\\s`` items;
* bold: ``**text**`` plus ``__text__`` spans on one line;
* tokens: pieces of GPT-4's cl100k pre-tokenisation pattern, counted on the full text
  (code included, as LMArena counts answer tokens). Every piece is at least one BPE token, so
  this is a close lower bound of tiktoken's count that needs no download;
* refusal: a documented phrase heuristic over the first 300 characters (REFUSAL_PATTERN);
* identity_leak: the response names a model or vendor, using FastChat's ``IDENTITY_WORDS``
  list from ``clean_battle_data.py`` (whole words, case-insensitive).

Counts for a source that ships its own (LMArena ``conv_metadata``) are taken from the source.
"""

from __future__ import annotations

CODE_BLOCK = r"```[^`]*```"
HEADER = r"(?m)^#{1,6}\s"
ORDERED = r"(?m)^\s*\d+\.\s"
UNORDERED = r"(?m)^\s*[-*+]\s"
BOLD_STARS = r"\*\*[^*\n]+\*\*"
BOLD_UNDERSCORES = r"__[^_\n]+__"
# cl100k_base pre-tokeniser (tiktoken), in RE2 syntax.
TOKEN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\pL\pN]?\pL+|\pN{1,3}| ?[^\s\pL\pN]+[\r\n]*|\s*[\r\n]+|\s+"

_CANT = r"(?:can't|can’t|cannot|can not|won't|won’t|will not|unable to|not able to)"
REFUSAL_PATTERN = (
    r"(?i)^\W*(?:"
    # an apology or "as an AI" followed by a refusal within the same line
    r"(?:(?:i'm|i am|i’m) (?:sorry|afraid)|i apologi[sz]e|sorry|unfortunately|as an ai\b)"
    r"[^\n]{0,120}?\b(?:can't|can’t|cannot|can not|unable to|not able to|won't|won’t|will not|"
    r"must decline|decline to|not (?:comfortable|appropriate|allowed|permitted)|"
    r"against (?:my|the) (?:guidelines|policy|policies|programming))"
    # or an outright "I can't help / assist / provide ..."
    r"|(?:i|i'm|i’m|i am) " + _CANT + r" (?:\w+ ){0,2}?"
    r"(?:help|assist|provide|comply|fulfil|fulfill|do|create|write|generate|engage|support|answer|give|share|produce|complete|participate|discuss|offer)\b"
    r")"
)
# FastChat fastchat/serve/monitor/clean_battle_data.py IDENTITY_WORDS
IDENTITY_WORDS = [
    "vicuna",
    "lmsys",
    "koala",
    "uc berkeley",
    "open assistant",
    "laion",
    "chatglm",
    "chatgpt",
    "gpt-4",
    "openai",
    "anthropic",
    "claude",
    "bard",
    "palm",
    "lamda",
    "google",
    "gemini",
    "llama",
    "qianwan",
    "qwen",
    "alibaba",
    "mistral",
    "zhipu",
    "keg lab",
    "01.ai",
    "ai2",
    "tülu",
    "tulu",
    "deepseek",
    "hermes",
    "cohere",
    "dbrx",
    "databricks",
]
IDENTITY_PATTERN = r"(?i)\b(?:" + "|".join(w.replace(".", r"\.") for w in IDENTITY_WORDS) + r")\b"


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _count(expr: str, pattern: str) -> str:
    return f"len(regexp_extract_all({expr}, {_q(pattern)}))"


FEATURE_COLUMNS = ("tokens", "headers", "lists", "bold", "refusal", "identity_leak")
"""Names of the values :func:`response_features_sql` computes, in its order (as in ``responses``)."""


def response_features_sql(col: str, named: bool = False) -> str:
    """SQL select-list (tokens, headers, lists, bold, refusal, identity_leak) for text column ``col``.

    ``named=True`` aliases each expression with its :data:`FEATURE_COLUMNS` name.

    The features depend on the text alone, so a loader may compute them once per distinct text.
    """
    stripped = f"regexp_replace({col}, {_q(CODE_BLOCK)}, '', 'g')"
    exprs = [
        f"CAST({_count(col, TOKEN)} AS INTEGER)",
        f"CAST({_count(stripped, HEADER)} AS INTEGER)",
        f"CAST({_count(stripped, ORDERED)} + {_count(stripped, UNORDERED)} AS INTEGER)",
        f"CAST({_count(stripped, BOLD_STARS)} + {_count(stripped, BOLD_UNDERSCORES)} AS INTEGER)",
        f"regexp_matches(left({col}, 300), {_q(REFUSAL_PATTERN)})",
        f"regexp_matches({col}, {_q(IDENTITY_PATTERN)})",
    ]
    if named:
        exprs = [f"{e} AS {n}" for e, n in zip(exprs, FEATURE_COLUMNS, strict=True)]
    return ", ".join(exprs)

"""Prompt text as plain words, for naming capabilities.

Prompts carry LaTeX, Asymptote diagrams, code, URLs and numbers. None of that may reach a node's
name, but some of it says what the prompt is about: ``\\frac`` is not the word "frac", it means the
problem works with fractions. :func:`plain_segments` turns one prompt into runs of plain words
("segments"; no phrase may cross a segment end), plus the concept words its markup stands for.

Every pattern here is a regular expression over untrusted text with no nested quantifiers, so
no input makes it backtrack badly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


def word_set(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text``, as a set (for the word lists below)."""
    return frozenset(text.split())


# LaTeX commands (and environments) that name a mathematical concept, as the plural noun phrase a
# capability name would use. Every other command is dropped.
LATEX_CONCEPTS: dict[str, str] = {
    "frac": "fractions",
    "dfrac": "fractions",
    "tfrac": "fractions",
    "sqrt": "square roots",
    "log": "logarithms",
    "ln": "logarithms",
    "sin": "trigonometric functions",
    "cos": "trigonometric functions",
    "tan": "trigonometric functions",
    "sec": "trigonometric functions",
    "csc": "trigonometric functions",
    "cot": "trigonometric functions",
    "arcsin": "inverse trigonometric functions",
    "arccos": "inverse trigonometric functions",
    "arctan": "inverse trigonometric functions",
    "binom": "binomial coefficients",
    "dbinom": "binomial coefficients",
    "tbinom": "binomial coefficients",
    "cfrac": "fractions",
    "div": "division",
    "choose": "binomial coefficients",
    "sum": "summations",
    "prod": "products",
    "int": "integrals",
    "lim": "limits",
    "pmatrix": "matrices",
    "bmatrix": "matrices",
    "matrix": "matrices",
    "vmatrix": "determinants",
    "det": "determinants",
    "angle": "angles",
    "triangle": "triangles",
    "circ": "angles",
    "equiv": "modular arithmetic",
    "pmod": "modular arithmetic",
    "bmod": "modular arithmetic",
    "mod": "modular arithmetic",
    "le": "inequalities",
    "leq": "inequalities",
    "ge": "inequalities",
    "geq": "inequalities",
    "lfloor": "floor functions",
    "rfloor": "floor functions",
    "lceil": "ceiling functions",
    "rceil": "ceiling functions",
    "vec": "vectors",
    "mathbf": "vectors",
    "overrightarrow": "vectors",
    "overline": "line segments",
    "parallel": "parallel lines",
    "perp": "perpendicular lines",
    "gcd": "greatest common divisors",
    "lcm": "least common multiples",
}

# Whole-prompt markup with a meaning of its own.
ASY = re.compile(r"\[asy\].*?(?:\[/asy\]|\Z)", re.S | re.I)  # Asymptote diagrams (MATH geometry)
FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)  # fenced code blocks
MATH = re.compile(
    r"\$\$.*?\$\$|\$[^$]*\$|\\\[.*?\\\]|\\\(.*?\\\)|\\begin\{(\w+)\*?\}.*?\\end\{\1\*?\}",
    re.S,
)
# How to write the answer down, not what the problem is about (MATH: "Express your answer as a
# common fraction.", "... to the nearest tenth", "Enter all the solutions, separated by commas.").
ANSWER_FORMAT = re.compile(
    r"(?:express|give|enter|write|leave|round|simplify)\s+(?:your|the|each|all|both)\s+(?:final\s+)?"
    r"(?:answer|answers|solutions?|result)[^.?!\n]*|separated\s+by\s+commas|"
    r"(?:rounded\s+)?to\s+the\s+nearest\s+\w+|in\s+simplest\s+(?:radical\s+)?form|"
    r"as\s+a\s+common\s+fraction|in\s+terms\s+of\s+\$?\\?pi\$?",
    re.I,
)
ESCAPED_DOLLAR = re.compile(r"\\\$")  # "\$3.50" in MATH problems: money, not math
COMMAND = re.compile(r"\\([A-Za-z]+)")
ENVIRONMENT = re.compile(r"\\begin\{(\w+)\*?\}")
FACTORIAL = re.compile(r"\d\s*!")
ABSOLUTE = re.compile(r"\|[^|$]{1,40}\|")
FUNCTION = re.compile(r"(?<![A-Za-z\\])[fgh]\s*\(\s*[-\w+*/ ]{1,20}\)")  # f(x), g(2x + 5)
COMPOSITION = re.compile(r"(?<![A-Za-z\\])[fgh]\s*\(\s*[fgh]\s*\(")  # f(g(x))
EXPONENT = re.compile(r"\^\s*\{?\s*(?:[3-9]|\d{2,}|[a-z])")  # 2^{20}, 3^x (not the squares)
URL = re.compile(r"(?:https?://|ftp://|www\.)\S+|\b[\w.+-]+@[\w-]+\.[\w.]+\b", re.I)
PATH = re.compile(r"(?:\S*[/\\]\S+)")  # file paths, a/b fractions, dates with slashes
INLINE_CODE = re.compile(r"`[^`\n]*`")
TAG = re.compile(r"</?[A-Za-z][^<>\n]{0,200}>")
SCRIPT = re.compile(r"<(script|style)\b[^>]*>.*?(?:</\1\s*>|\Z)", re.S | re.I)  # code, not prose
# Characters that mark a line as code when several of them appear in it.
CODE_CHARS = re.compile(r"[{};=<>\[\]()#_*/\\|&^~%$@]")
CODE_LINE_START = re.compile(
    r"^\s*(?:#include|#define|import\s+[\w.]+\s*$|from\s+[\w.]+\s+import\s|def\s+\w+\(|"
    r"class\s+\w+\s*[(:{]|function\s+\w+\s*\(|public\s|private\s|return\s.*;\s*$|"
    r"(?:var|let|const)\s+\w+\s*=|for\s*\(|if\s*\(|while\s*\(|SELECT\s.*\sFROM\s|@\w+\(|//|/\*|"
    r"\*/|<\?|\$\s)",
    re.I,
)
# A run of text between two of these cannot hold one phrase.
BREAK = re.compile(r"[.!?;:,()\[\]{}\"“”«»<>=+*/\\|&^~%$#@_`]|\s-\s|\n|--|—|–")
WORD = re.compile(r"[A-Za-z][A-Za-z'’]*(?:-[A-Za-z]+)*|\S")  # "three-digit" is one word

# Words that stay cased as they are spelt in technical writing (everything else is lowercased).
ACRONYMS = word_set(
    "AI API APIs CSS CSV GPU CPU HTML HTTP JSON NLP PDF SQL SVG UI UX XML YAML LaTeX SEO CV PHP AWS GPT LLM "
    "LLMs RAM iOS"
)


def math_concepts(span: str, in_math: bool = True) -> list[str]:
    """The concept phrases a LaTeX span stands for (in order, each once); ``in_math`` False for
    prose, where only commands count (a '!' or '|' there is punctuation)."""
    found = [LATEX_CONCEPTS[c] for c in COMMAND.findall(span) if c in LATEX_CONCEPTS]
    found += [LATEX_CONCEPTS[e] for e in ENVIRONMENT.findall(span) if e in LATEX_CONCEPTS]
    if in_math and FACTORIAL.search(span):
        found.append("factorials")
    if in_math and ABSOLUTE.search(span):
        found.append("absolute values")
    if in_math and COMPOSITION.search(span):
        found.append("function composition")
    elif in_math and FUNCTION.search(span):
        found.append("functions")
    if in_math and EXPONENT.search(span):
        found.append("exponents")
    return list(dict.fromkeys(found))


def is_code_line(line: str) -> bool:
    """True for a line that reads as code, not prose: it opens like a statement, or symbols make
    up a fifth of its visible characters (prose has almost none)."""
    stripped = line.strip()
    if not stripped:
        return False
    if CODE_LINE_START.match(stripped):
        return True
    visible = len(stripped.replace(" ", ""))
    return visible > 0 and len(CODE_CHARS.findall(stripped)) >= max(3, visible / 5)


@dataclass(frozen=True)
class Plain:
    """One prompt as plain words.

    segments: runs of words (as written: case kept, punctuation gone) that a phrase may span;
    markup, code, URLs, numbers and symbols end a run and never appear in one.
    concepts: the concept phrases the prompt's markup stands for ("fractions", "matrices",
    "code", "diagrams"), each once.
    prose: the text with markup, code and URLs taken out (for language identification).
    """

    segments: list[list[str]]
    concepts: list[str]
    prose: str


def plain_segments(text: str) -> Plain:
    """The plain words of one prompt (see :class:`Plain`)."""
    concepts: list[str] = []
    if ASY.search(text):
        concepts.append("diagrams")
        text = ASY.sub("\n", text)
    if FENCE.search(text):
        concepts.append("code")
        text = FENCE.sub("\n", text)

    def replace_math(match: re.Match) -> str:
        concepts.extend(math_concepts(match.group(0)))
        return "\n"

    text = ANSWER_FORMAT.sub("\n", ESCAPED_DOLLAR.sub(" dollars ", text))
    text = MATH.sub(replace_math, text)
    concepts.extend(math_concepts(text, in_math=False))  # bare commands outside $...$
    text = COMMAND.sub("\n", text)
    kept = []
    for line in text.splitlines():
        if is_code_line(line):
            if "code" not in concepts:
                concepts.append("code")
            kept.append("")
        else:
            kept.append(line)
    text = "\n".join(kept)
    for pattern in (SCRIPT, URL, TAG, INLINE_CODE, PATH):
        text = pattern.sub("\n", text)
    segments: list[list[str]] = []
    prose = " ".join(text.split())
    for run in BREAK.split(text):
        words: list[str] = []
        for token in WORD.findall(run):
            word = token.replace("’", "'")
            if plain_word(word):
                words.append(word)
            elif words:  # a digit, symbol or identifier ends the run
                segments.append(words)
                words = []
        if words:
            segments.append(words)
    return Plain(segments, list(dict.fromkeys(concepts)), prose)


def plain_word(token: str) -> bool:
    """True for a word a capability name may use: letters only (an apostrophe inside), lowercase
    or Capitalised (not camelCase, not ALLCAPS labels such as the points 'ABC'), or a known
    acronym."""
    if token in ACRONYMS:
        return True
    if len(token) == 1:
        return token in ("a", "I")
    if not token[0].isalpha() or not token.replace("'", "").replace("-", "").isalpha() or not token.isascii():
        return False
    if "-" in token and min(len(part) for part in token.split("-")) < 2:
        return False  # "x-axis", "l-theanine": a single letter would read as a variable
    body = token[1:]
    return body == body.lower() and not token.endswith("'")


def normal_word(word: str) -> str:
    """The form a word is counted under: lowercase, except known acronyms."""
    return word if word in ACRONYMS else word.lower()


def words_of(segments: Iterable[list[str]]) -> list[str]:
    """Every word of the segments, normalised (see :func:`normal_word`)."""
    return [normal_word(w) for seg in segments for w in seg]

"""Candidate capability phrases of each prompt: the topics it is about and the task it asks for.

From a prompt's plain segments (:mod:`pipelines.tree.markup`):

* **topics**: 1-4 word n-grams inside one segment that start and end on a content word (not a
  stop word, filler, code keyword, task verb, contraction or word under 3 letters), end on a
  word that can be a noun and start on one that is not only a verb, and may hold connectors
  ("of", "and", "the", ...) inside: "system of linear equations", "prime numbers"; plus the
  concept phrases the prompt's markup stands for ("fractions", "matrices");
* **task**: the task verb a sentence or clause opens with ("Solve ...", "Write ...", "Can you
  explain ...") or, failing that, a question form ("How many ...?" is counting);
* **objects**: the topics right after that verb ("Write a *python function* ...").

Parts of speech come from lemminflect's English lexicon (a word it lacks, such as a product or
language name, counts as a noun). A phrase's key has its last word singular, so "prime
numbers" and "prime number" count as one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from .language import language_of
from .markup import normal_word, plain_segments, word_set

MAX_WORDS = 4  # words in one phrase, connectors included
MIN_LETTERS = 3  # shorter words never start or end a phrase (acronyms excepted)

# May sit inside a phrase ("area of the circle"), never at its ends.
CONNECTORS = word_set("of and in for with to on between from by the a an into about per")
ARTICLES = frozenset({"a", "an"})
# scikit-learn's English stop words (the Glasgow list) hold content words a skill name needs
# ("system of equations", "compound interest", "sides of a triangle"): those stay.
CONTENT_IN_STOP_LIST = word_set(
    "system computer interest bill fire side amount part top bottom front back full empty detail "
    "describe find name move thick thin mill call fill found"
)
# Instruction filler: words that say how something is asked, not what about.
FILLER = word_set("""
    please following given use using used need needs want wants like help let lets suppose assume
    know make makes sure thing things just really also able possible good best certain specific
    various simple short long brief detailed include includes including based try trying looking
    look start end begin left right text print return import self lambda def true false null none
    think say said tell told thanks thank hello hi hey dear okay ok yes express expressed
    represent represents entire whole exactly exact actually respectively different mean means
    does did doing got gets getting enter separated commas comma first last second third next
    """)
# Nouns too general to name a node alone or to open a phrase before a connector ("answer in
# base"); they may end a longer phrase ("prime numbers", "word problems").
GENERAL = word_set("""
    number numbers value values problem problems question questions answer answers task tasks
    example examples step steps result results type types kind kinds form forms case cases item
    items information details list lists set sets order lot lots time times description
    """)
# Keywords of programming languages and names of LaTeX commands, as they show in prose ("the cos
# of x", "a def"): never part of a name.
CODE_WORDS = word_set("""
    echo int void var const func elif else endif printf println cout cin std nil bool char
    float double str dict len async await struct enum namespace typedef foreach pub impl mut
    usize nullptr sizeof malloc args argv kwargs init fn sudo cd ls grep
    df np pd plt tmp src dst idx arr obj params param config cfg div span img href px
    frac dfrac tfrac sqrt mathbf mathrm pmatrix bmatrix vmatrix cdot infty exp asy unitsize ln sin
    cos tan sec csc cot arcsin arccos arctan binom det equiv pmod bmod lfloor rfloor lceil rceil
    vec overrightarrow overline perp lim circ mathbb textbf http https www
    """)
STOP = (frozenset(ENGLISH_STOP_WORDS) - CONTENT_IN_STOP_LIST) | FILLER | CODE_WORDS

# Task verbs, as a prompt's imperative; a name uses their gerund (see :func:`gerund`).
TASK_VERBS = word_set("""
    solve find compute calculate evaluate simplify determine prove factor expand convert write optimise
    explain describe summarize summarise translate list compare create generate design implement
    build debug fix optimize rewrite edit classify categorize analyze analyse draft compose
    suggest recommend plan identify define develop improve refactor paraphrase correct proofread
    outline brainstorm estimate predict rank sort extract choose imagine argue discuss rate review
    interpret count graph plot derive construct complete continue answer give provide tell name
    make act pretend respond reply rephrase format parse test detect draw
    """)
GERUNDS = {"pretend": "role-playing", "act": "role-playing"}  # "Act as a ..." is role play
# Task verbs that are nouns as often ("a list of strings", "test cases"): they may sit in a topic.
NOUN_VERBS = word_set(
    "list plan design build edit draft outline rank sort rate review count graph plot complete answer "
    "name act format test factor correct"
)
VERB_ONLY = TASK_VERBS - NOUN_VERBS
# Verbs too vague to name a skill by themselves: they give way to a question form or a default.
WEAK_VERBS = frozenset({"give", "provide", "tell", "make", "answer", "complete", "continue", "name"})
# Words that may stand before the task verb: "Please write", "Can you explain", "I need you to".
LEADS = word_set(
    "please can could would will you kindly now also then and so help me us i need want like to "
    "how do does should we"
)
PREPOSITIONS = word_set("with to about on for into in")  # may stand between a verb and its object
DETERMINERS = word_set("a an the some my our your this that these those me us him her them all")
HOW_MANY = re.compile(r"\bhow\s+many\b", re.I)
QUESTION = re.compile(r"^\s*(what|which|who|whom|whose|when|where|why|how|is|are|does|do|can|should)\b", re.I)
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")
MATH_CHARS = 600  # a short prompt with two numbers or more in it reads as a word problem


@dataclass
class ItemPhrases:
    """What one prompt offers a node's name."""

    topics: set[str] = field(default_factory=set)
    words: Counter = field(default_factory=Counter)  # content word (singular) -> uses
    plurals: Counter = field(default_factory=Counter)  # ... of them in a plural form
    after_article: Counter = field(default_factory=Counter)  # ... of them right after "a" / "an"
    task: str | None = None
    asked: bool = False  # the task comes from a question form ("How many ...?"), not a verb
    objects: set[str] = field(default_factory=set)  # topics right after the task verb
    preposition: str | None = None  # the one between them ("reply *with* a limerick")
    math: bool = False  # a math problem: notation, or a short text with numbers
    notation: bool = False  # it has LaTeX / math notation
    question: bool = False
    language: str | None = None  # the language it is written in when not English (or unsure)
    modifying: Counter = field(default_factory=Counter)  # word -> times a content word follows it
    heading: Counter = field(default_factory=Counter)  # word -> times none does


def is_content(word: str) -> bool:
    """A word a phrase may start or end on (``word`` normalised)."""
    return (
        (len(word) >= MIN_LETTERS or word.isupper())
        and "'" not in word  # contractions and possessives: "i'm", "don't", "pascal's"
        and word not in STOP
        and word not in VERB_ONLY
    )


@lru_cache(maxsize=200_000)
def parts_of_speech(word: str) -> frozenset[str]:
    """The parts of speech a word can have in lemminflect's English lexicon (empty when the
    word is not in it: names, product and language names)."""
    from lemminflect import getAllLemmas

    return frozenset(getAllLemmas(word))


def can_end(word: str) -> bool:
    """A phrase may end on ``word``: it can be a noun, or is a name the lexicon lacks."""
    pos = parts_of_speech(word)
    return not pos or "NOUN" in pos or "PROPN" in pos


def can_start(word: str) -> bool:
    """A phrase may start on ``word``: it is not only a verb or an adverb ("separated by ...")."""
    pos = parts_of_speech(word)
    return not pos or not pos <= {"VERB", "ADV"}


def gerund(verb: str) -> str:
    """The -ing form of a task verb ("solve" -> "solving")."""
    if verb in GERUNDS:
        return GERUNDS[verb]
    from lemminflect import getInflection

    forms = getInflection(verb, tag="VBG")
    return forms[0] if forms else verb + "ing"


@lru_cache(maxsize=200_000)
def singular(word: str) -> str:
    """The singular of a noun ("matrices" -> "matrix"); the word itself when it is not a plural."""
    if not word.endswith(("s", "i", "a", "ae")) or word.isupper():
        return word
    from lemminflect import getLemma

    lemmas = getLemma(word, upos="NOUN")
    return lemmas[0] if lemmas else word


@lru_cache(maxsize=200_000)
def plural(word: str) -> str:
    """The plural of a noun ("function" -> "functions")."""
    from lemminflect import getInflection

    forms = getInflection(word, tag="NNS")
    return forms[0] if forms else word + "s"


def key_of(phrase: str) -> str:
    """A phrase's counting key: its last word singular ("prime numbers" -> "prime number")."""
    head, _, last = phrase.rpartition(" ")
    return f"{head} {singular(last)}" if head else singular(last)


def ngrams(words: Sequence[str]) -> list[tuple[int, str]]:
    """(start, phrase) of every topic phrase of one segment (words normalised)."""
    out = []
    for i, first in enumerate(words):
        if not is_content(first) or not can_start(first):
            continue
        if first in GENERAL and i + 1 < len(words) and not is_content(words[i + 1]):
            continue  # "answer in base", "number of ways": the general noun is not the topic
        for j in range(i, min(i + MAX_WORDS, len(words))):
            word = words[j]
            if not is_content(word) and word not in CONNECTORS:
                break
            if is_content(word) and can_end(word):
                out.append((i, " ".join(words[i : j + 1])))
    return out


def english_runs(words: list[str]) -> list[list[str]]:
    """``words`` split at every word English's lexicon lacks (acronyms kept)."""
    runs: list[list[str]] = [[]]
    for word in words:
        if parts_of_speech(word) or word.isupper():
            runs[-1].append(word)
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if r]


def task_of(segments: list[list[str]]) -> tuple[str | None, int, int]:
    """(verb, segment index, word index) of the first task verb that opens a segment, after
    lead words at most ("Please", "Can you", "I need you to")."""
    for s, seg in enumerate(segments):
        for w, word in enumerate(seg):
            low = word.lower()
            if low in TASK_VERBS:
                return low, s, w
            if low not in LEADS:
                break
    return None, -1, -1


def item_phrases(text: str) -> ItemPhrases:
    """The topics, task and flags of one prompt."""
    plain = plain_segments(text)
    segments, concepts = plain.segments, plain.concepts
    words = [[normal_word(w) for w in seg] for seg in segments]
    out = ItemPhrases(language=language_of(plain.prose))
    runs = words
    if out.language:  # a prompt in another language lends only English words to a name
        runs = [run for seg in words for run in english_runs(seg)]
    for seg in runs:
        out.topics.update(phrase for _, phrase in ngrams(seg))
        counted = False  # inside a run of content words that follows "a" / "an"
        for word, after in zip(seg, [*seg[1:], ""], strict=True):
            if not is_content(word):
                counted = word in ARTICLES
                continue
            (out.modifying if after and is_content(after) else out.heading)[word] += 1
            one = singular(word)
            out.words[one] += 1
            out.plurals[one] += one != word
            out.after_article[one] += counted
    out.topics.update(concepts)
    out.notation = bool(set(concepts) - {"code"}) or "$" in text or "\\" in text
    out.math = out.notation or (len(NUMBER.findall(text)) >= 2 and len(text) < MATH_CHARS)
    out.question = bool(QUESTION.match(text)) or text.rstrip().endswith("?")
    verb, s, w = task_of(segments)
    if verb is None and HOW_MANY.search(text):
        verb, out.asked = "count", True
    out.task = verb
    if verb is not None and s >= 0:
        after = words[s][w + 1 :]
        k = 0
        if after and after[0] in PREPOSITIONS:
            out.preposition, k = after[0], 1
        while k < len(after) and after[k] in DETERMINERS:
            k += 1
        out.objects = {p for start, p in ngrams(after[k:]) if start == 0}
    return out


def countable_words(
    items: Iterable[ItemPhrases], article_share: float = 0.15, plural_share: float = 0.2
) -> frozenset[str]:
    """Nouns the prompts count: they follow "a"/"an" in ``article_share`` of their uses (at least
    twice), or are plural in ``plural_share`` of them. A name speaks of kinds in the plural
    ("solving systems of equations"); a mass noun ("code", "data") stays singular."""
    uses: Counter = Counter()
    plurals: Counter = Counter()
    articles: Counter = Counter()
    for it in items:
        uses.update(it.words)
        plurals.update(it.plurals)
        articles.update(it.after_article)
    return frozenset(
        w
        for w, n in uses.items()
        if (articles[w] >= 2 and articles[w] >= article_share * n) or plurals[w] >= plural_share * n
    )


def modifiers(items: Iterable[ItemPhrases]) -> frozenset[str]:
    """Words that mostly modify the next word ("positive" integers, "complex" numbers): two
    thirds of their uses or more have a content word after them. A name never ends on one."""
    modifying: Counter = Counter()
    heading: Counter = Counter()
    for it in items:
        modifying.update(it.modifying)
        heading.update(it.heading)
    return frozenset(w for w, k in modifying.items() if k >= 2 * heading[w] and k + heading[w] >= 3)


def usable(phrase: str, modifying: frozenset[str]) -> bool:
    """A topic may name a node: it does not end on a modifier and is not made of general nouns
    alone ("numbers", "list")."""
    words = phrase.split()
    return words[-1] not in modifying and any(w not in GENERAL for w in words if is_content(w))

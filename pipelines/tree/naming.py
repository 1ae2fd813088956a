"""Offline capability names: one short gerund phrase per node, built from its prompts.

For every node (EvalTree stage 4 without an LLM):

1. **Candidates**: the topic phrases of its prompts (:mod:`pipelines.tree.phrases`), counted
   once per prompt and summed up the tree.
2. **Shortlist** by class-based TF-IDF against the node's siblings (BERTopic's c-TF-IDF on
   prompt counts, weighted by document IDF), keeping phrases that a good share of its prompts
   have (``SHARES``: 15%, else 5%, else two prompts, else one).
3. **Choose** among the shortlist with KeyBERT: cosine similarity of each phrase's embedding
   (the tree's own embedder) to the node's centroid, diversified by maximal marginal relevance,
   as BERTopic's KeyBERTInspired + MaximalMarginalRelevance representations do.
4. **Compose** a gerund phrase from the task its prompts share ("Writing python functions",
   "Writing about movies"), else from what they are ("Solving problems involving fractions and
   square roots", "Answering questions about recipes"); siblings never share a name and a
   child never repeats its parent's.

The node's most central prompt is kept beside the name as an example (``central_prompt_id``),
never inside it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from .describe import ctfidf_keywords, document_idf, node_term_counts, subtree_members
from .language import LANGUAGE_NAMES
from .markup import word_set
from .phrases import (
    WEAK_VERBS,
    ItemPhrases,
    countable_words,
    gerund,
    item_phrases,
    key_of,
    modifiers,
    plural,
    singular,
    usable,
)

NAMER = "offline:phrases-1"  # the describer's name in tree parameters: a new version, new tree ids
SHORTLIST = 24  # c-TF-IDF candidates per node handed to KeyBERT
PICKS = 3  # phrases KeyBERT's MMR keeps per node
DIVERSITY = 0.5  # MMR trade-off (KeyBERT's `diversity`)
MIN_SHARE = 0.15  # a name's phrase is shared by at least this share of the node's prompts ...
SHARES = (MIN_SHARE, 0.05, 0.0, -1.0)  # ... else this share and two prompts; at last one will do
TASK_SHARE = 0.3  # the task verb of a name is shared by at least this share of the prompts ...
ASKED_SHARE = 0.5  # ... or this share when it is read off a question form ("How many ...?")
SECOND_SHARE = 0.5  # a second topic joins the name when it covers half the first one's prompts
KEYWORDS = 8  # distinctive phrases stored per node (the ``keywords`` column)
MAX_NAME_WORDS = 9
KEYWORD_LIST = 3

# How a name starts when its prompts share no task verb, by what they are (see `prompt_kind`).
KIND_LEADS = {
    "math": "solving problems involving",
    "word-math": "solving word problems involving",
    "question": "answering questions about",
    "request": "working with",
}
# Verbs whose topic, when the prompts never make it their object, follows "about".
ABOUT_VERBS = frozenset({"write", "argue", "tell", "answer"})
# Programming languages: a name speaks of their code ("Writing python code").
LANGUAGES = word_set(
    "python javascript typescript java rust golang kotlin swift ruby php perl scala haskell matlab "
    "bash powershell sql vba lua julia"
)

# Natural languages: capitalised in a name ("Translating text into French").
NATURAL_LANGUAGES = frozenset(n.lower() for n in LANGUAGE_NAMES.values()) | word_set("english latin lojban")
CAPITALISED_LANGUAGES = frozenset(w.capitalize() for w in NATURAL_LANGUAGES)
OTHER_LANGUAGES = "languages other than English"
HEAD_BREAKS = word_set("of for in on with to between from by about into")  # end a phrase's head

ORDINALS = ("second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")

EmbedFn = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Vocabulary:
    """Phrase keys over a collection: ``keys`` (vocab,), ``display`` (vocab,) the form a name
    uses, ``items`` a binary (n_items, vocab) CSR matrix of which prompt has which key."""

    keys: np.ndarray
    display: np.ndarray
    items: sp.csr_matrix

    @cached_property
    def index(self) -> dict[str, int]:
        """Key -> column."""
        return {k: i for i, k in enumerate(self.keys)}

    def columns(self, phrases: set[str]) -> list[int]:
        """The columns of those of ``phrases`` that are in the vocabulary."""
        return [self.index[k] for k in {key_of(p) for p in phrases} if k in self.index]


def vocabulary(items: Sequence[ItemPhrases]) -> Vocabulary:
    """Every usable topic of the prompts, keyed singular, with the form a name shows."""
    modifying = modifiers(items)
    counted = countable_words(items)
    forms: dict[str, Counter] = {}
    item_keys = []
    for it in items:
        keys = set()
        for phrase in it.topics:
            if usable(phrase, modifying):
                key = key_of(phrase)
                forms.setdefault(key, Counter())[phrase] += 1
                keys.add(key)
        item_keys.append(keys)
    keys = sorted(forms)
    index = {k: i for i, k in enumerate(keys)}
    rows = [r for r, ks in enumerate(item_keys) for _ in ks]
    cols = [index[k] for ks in item_keys for k in ks]
    matrix = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(items), len(keys))
    )
    display = [display_form(forms[k], counted) for k in keys]
    return Vocabulary(np.array(keys, dtype=object), np.array(display, dtype=object), matrix)


def display_form(forms: Counter, countable: frozenset[str]) -> str:
    """The form a name shows for one key, from its surface ``forms`` (form -> prompts): the most
    frequent, with its head noun (the word before "of", "for", ... or else the last) in the
    plural when the prompts count it (names speak of kinds: "systems of linear equations",
    "python functions"; a mass noun such as "code" stays singular). Programming languages
    speak of their code, natural languages are capitalised."""
    words = max(forms, key=lambda f: (forms[f], f)).split()
    head = next((i - 1 for i, w in enumerate(words) if w in HEAD_BREAKS and i > 0), len(words) - 1)
    named = words[head] in LANGUAGES or words[head] in NATURAL_LANGUAGES  # "python", not "pythons"
    if words[head] in countable and singular(words[head]) == words[head] and not named:
        words[head] = plural(words[head])
    words = [w.capitalize() if w in NATURAL_LANGUAGES else w for w in words]
    form = " ".join(words)
    return f"{form} code" if form in LANGUAGES else form


class _Shortlist:
    """A vectorizer in the shape KeyBERT takes: its vocabulary is every shortlisted phrase and a
    node's 'document' holds only that node's shortlist, so KeyBERT scores just those."""

    def __init__(self, words: np.ndarray, chosen: sp.csr_matrix) -> None:
        self.words, self.chosen = words, chosen

    def fit(self, docs):
        return self

    def get_feature_names_out(self) -> np.ndarray:
        return self.words

    def transform(self, docs) -> sp.csr_matrix:
        return self.chosen


def keybert_picks(
    centroids: np.ndarray, word_vectors: np.ndarray, shortlist: list[list[int]]
) -> list[list[int]]:
    """KeyBERT's MMR over each node's shortlist: up to ``PICKS`` indices into ``word_vectors``
    per node, closest to the centroid first. centroids: (n_nodes, d); word_vectors: (m, d)."""
    from keybert import KeyBERT
    from keybert.backend import BaseEmbedder

    rows = [r for r, cols in enumerate(shortlist) for _ in cols]
    cols = [c for chosen in shortlist for c in chosen]
    chosen = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(shortlist), len(word_vectors)))
    words = np.arange(len(word_vectors)).astype(str)
    model = KeyBERT(model=BaseEmbedder())  # every vector is given: KeyBERT embeds nothing
    picks = model.extract_keywords(
        [""] * len(shortlist),
        vectorizer=_Shortlist(words, chosen),
        doc_embeddings=centroids,
        word_embeddings=word_vectors,
        use_mmr=True,
        diversity=DIVERSITY,
        top_n=PICKS,
    )
    if len(shortlist) == 1:  # KeyBERT unwraps a single document's list
        picks = [picks]
    return [[int(word) for word, _ in node] for node in picks]


def shortlists(
    node_counts: sp.csr_matrix, parent: np.ndarray, sizes: np.ndarray, doc_idf: np.ndarray
) -> list[list[int]]:
    """Per node, the vocabulary columns of its best c-TF-IDF phrases (at most ``SHORTLIST``)
    that enough of its prompts share (the first tier of ``SHARES`` any phrase meets)."""
    index = np.arange(node_counts.shape[1]).astype(str)
    ranked = ctfidf_keywords(node_counts, parent, index, doc_idf, k=4 * SHORTLIST)
    out = []
    for node, cols in enumerate(ranked):
        row = node_counts[node].toarray().ravel()
        best = [int(c) for c in cols]
        ok: list[int] = []
        for share in SHARES:
            need = 1 if share < 0 else max(min(2, sizes[node]), share * sizes[node])
            ok = [c for c in best if row[c] >= need]
            if ok:
                break
        out.append(ok[:SHORTLIST])
    return out


def shared_task(items: Sequence[ItemPhrases]) -> str | None:
    """The task verb at least ``TASK_SHARE`` of the prompts share (the most shared), if any; one
    read off a question form needs ``ASKED_SHARE``, and a vague verb ("give", "tell") wins only
    when nothing else is asked."""
    counts = Counter(it.task for it in items if it.task)
    asked = Counter(it.task for it in items if it.task and it.asked)
    for verb, k in counts.most_common():
        share = ASKED_SHARE if asked[verb] > k / 2 else TASK_SHARE
        if k >= share * len(items) and (verb not in WEAK_VERBS or len(counts) == 1):
            return verb
    return None


def shared_language(items: Sequence[ItemPhrases]) -> str | None:
    """The language other than English at least half of the prompts are written in, if any
    ("languages other than English" when half are in several)."""
    counts = Counter(it.language for it in items if it.language)
    language, k = counts.most_common(1)[0] if counts else (None, 0)
    if k >= 0.5 * len(items):
        return language
    return OTHER_LANGUAGES if counts.total() >= 0.5 * len(items) else None


def prompt_kind(items: Sequence[ItemPhrases]) -> str:
    """What most of the prompts are: 'math' (with notation), 'word-math' (numbers, no
    notation), 'question' or 'request' (a key of ``KIND_LEADS``)."""
    n = max(len(items), 1)
    if sum(it.math for it in items) >= 0.5 * n:
        return "math" if sum(it.notation for it in items) >= 0.25 * n else "word-math"
    if sum(it.question for it in items) >= 0.5 * n:
        return "question"
    return "request"


@dataclass(frozen=True)
class NodeWords:
    """What a node's name is made of: the shared task verb (or None), its objects (phrase ->
    prompts, best first), the topics KeyBERT picked (best first) with their prompt counts, the
    kind of prompts, and every phrase the collection makes that verb's object."""

    task: str | None
    objects: list[tuple[str, int]]
    topics: list[str]
    topic_items: list[int]
    kind: str
    n_items: int
    takes: frozenset[str] = frozenset()
    language: str | None = None  # the language other than English most of the prompts are in
    preposition: str | None = None  # what most of them put between the verb and its object


def candidate_names(words: NodeWords) -> list[str]:
    """Candidate names for one node, best first (the caller keeps siblings apart)."""
    verb = gerund(words.task) if words.task else ""
    names = []
    if verb:
        need = max(2, MIN_SHARE * words.n_items)
        shared = [o for o, k in words.objects if k >= need]  # longest first: the fullest object
        lead = f"{verb} {words.preposition}" if words.preposition else verb  # "replying with"
        names += [f"{lead} {o}" for o in sorted(shared, key=lambda o: -len(o.split()))[:3]]
    topics = words.topics
    if words.task == "translate":
        names += [f"translating text into {t}" for t in topics if t in CAPITALISED_LANGUAGES]
    for general in (False, True):  # the task's own phrasing first, then the kind's
        if general and not verb:
            break
        for i, t in enumerate(topics):
            if general or not verb:
                lead = KIND_LEADS[words.kind]
            elif words.task in ABOUT_VERBS and t not in words.takes:
                lead = f"{verb} about"
            else:
                lead = verb
            pair = next(
                (
                    u
                    for j, u in enumerate(topics)
                    if j != i
                    and " and " not in t + " " + u
                    and u not in t
                    and t not in u
                    and words.topic_items[j] >= SECOND_SHARE * words.topic_items[i]
                ),
                None,
            )
            if pair:
                names.append(f"{lead} {t} and {pair}")
            names.append(f"{lead} {t}")
    fallback = {
        "math": "solving assorted math problems",
        "word-math": "solving assorted word problems",
        "question": "answering assorted questions",
        "request": f"{verb} assorted requests" if verb else "handling assorted requests",
    }[words.kind]
    names.append(fallback)
    if words.language:  # the language first, then what the prompts ask, in that language
        names = [f"responding to prompts written in {words.language}"] + [
            f"{n} (in {words.language})" for n in names
        ]
    return [n for n in dict.fromkeys(names) if len(n.split()) <= MAX_NAME_WORDS + 3]


def capability_names(
    texts: Sequence[str], labels: np.ndarray, parent: np.ndarray, centroids: np.ndarray, embed: EmbedFn
) -> tuple[list[str], list[list[str]]]:
    """(name, keywords) of every node.

    texts: (n,) prompt texts (or their capabilities); labels: (n,) leaf id per item; parent:
    (n_nodes,) preorder parent ids (-1 at the root); centroids: (n_nodes, d) unit vectors in
    ``embed``'s space; ``embed(phrases)`` -> (len(phrases), d) unit vectors. Deterministic.
    """
    items = [item_phrases(t) for t in texts]
    vocab = vocabulary(items)
    n_nodes = len(parent)
    node_counts = node_term_counts(labels, parent, vocab.items).tocsr()
    members = subtree_members(labels, parent)
    sizes = np.array([len(m) for m in members])
    short = shortlists(node_counts, parent, sizes, document_idf(vocab.items))
    listed = sorted({c for cols in short for c in cols})  # only these are embedded
    position = {c: i for i, c in enumerate(listed)}
    vectors = embed([vocab.display[c] for c in listed]) if listed else np.zeros((0, centroids.shape[1]))
    picks = keybert_picks(centroids, vectors, [[position[c] for c in cols] for cols in short])
    takes: dict[str, set[str]] = {}  # verb -> every phrase some prompt makes its object
    for it in items:
        if it.task:
            takes.setdefault(it.task, set()).update(vocab.display[c] for c in vocab.columns(it.objects))
    candidates, keywords = [], []
    for node in range(n_nodes):
        node_items = [items[i] for i in members[node]]
        chosen = [listed[p] for p in picks[node]]
        task = shared_task(node_items)
        doing = [it for it in node_items if it.task == task]
        objects = Counter(vocab.display[c] for it in doing for c in vocab.columns(it.objects))
        prepositions = Counter(it.preposition for it in doing)
        words = NodeWords(
            task=task,
            objects=objects.most_common(),
            preposition=prepositions.most_common(1)[0][0] if doing else None,
            topics=[vocab.display[c] for c in chosen],
            topic_items=[int(node_counts[node, c]) for c in chosen],
            kind=prompt_kind(node_items),
            n_items=len(node_items),
            takes=frozenset(takes.get(task or "", ())),
            language=shared_language(node_items),
        )
        candidates.append(candidate_names(words))
        keywords.append([vocab.display[c] for c in short[node][:KEYWORDS]])
    return distinct_names(candidates, keywords, parent), keywords


def distinct_names(candidates: list[list[str]], keywords: list[list[str]], parent: np.ndarray) -> list[str]:
    """One name per node: its best candidate that no sibling took and its parent does not
    have; when all are taken, its best with one of its own keywords added ("...: arrays"),
    else with "(second group)", "(third group)", ... Capitalised."""
    chosen = [""] * len(parent)
    taken: dict[int, set[str]] = {}
    for node in range(len(parent)):
        p = int(parent[node])
        used = taken.setdefault(p, set())
        blocked = used | ({chosen[p].lower()} if p >= 0 else set())
        best = candidates[node][0] if candidates[node] else "items"
        options = [
            *candidates[node],
            *(f"{best}: {k}" for k in keywords[node] if k.lower() not in best.lower()),
        ]
        name = next((c for c in options if c.strip() and c.lower() not in blocked), None)
        k = 0
        while name is None or name.lower() in blocked:
            name, k = f"{best} ({ORDINALS[k] if k < len(ORDINALS) else k + 2} group)", k + 1
        chosen[node] = name
        used.add(name.lower())
    return [name[0].upper() + name[1:] for name in chosen]

"""OpenAI-compatible backends: an LLM annotator and summarizer, and an embeddings embedder.

Any server that speaks the OpenAI ``/v1/chat/completions`` and ``/v1/embeddings`` protocol
works (OpenAI itself, vLLM, llama.cpp, Ollama, ...). Every backend sends at most
``concurrency`` requests at a time, retries rate limits (429), server errors (5xx), timeouts
and dropped connections with exponential backoff and jitter (honouring ``Retry-After``), and
counts what it did in ``stats``. The API key lives in a :class:`Secret` and never reaches a
repr, a log line, an exception or ``stats``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

import numpy as np

from ..errors import ArenatreeError
from .base import OFFLINE_CAPABILITY_CHARS, Annotator, Embedder, Summarizer

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
NO_KEY = "sk-no-key-required"  # sent to local endpoints that need no key (the client wants one)
RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
CONNECT_TIMEOUT = 10.0  # seconds to open a connection (a dropped SYN fails sooner than a read)

ANNOTATE_SYSTEM = (
    "You label evaluation items with the capability they test. A capability is ONE short "
    "gerund phrase (it starts with a verb ending in -ing, 3 to 12 words) naming the general "
    "skill a model needs to handle the item well. Name the skill, not the item: leave out the "
    "item's numbers, names, places and quoted text, so that items which test the same skill get "
    "the same kind of phrase. Reply with the phrase alone: no preamble, label, quotes, list "
    "marker or final period.\n"
    "Example item: 'A train leaves at 3 pm at 80 km/h; when has it covered 200 km?'\n"
    "Example reply: Solving rate and time word problems"
)
ANNOTATE_USER = "Item:\n<<<\n{item}\n>>>\n\nThe capability this item tests, as one gerund phrase:"

SUMMARIZE_SYSTEM = (
    "You organise capabilities into a hierarchy. You get the capabilities of several related "
    "groups of evaluation items. Write ONE gerund phrase (it starts with a verb ending in -ing, "
    "3 to 15 words) naming the broader capability they share: general enough to cover every "
    "listed capability, specific enough to set them apart from unrelated skills. Reply with the "
    "phrase alone: no preamble, label, quotes, list marker or final period."
)
SUMMARIZE_USER = "Capabilities:\n{children}\n\nThe one capability they share, as one gerund phrase:"

REASK = (
    "That reply could not be used. Answer again with only the capability: one short gerund "
    "phrase on a single line, such as: Translating informal text into French"
)


def prompt_tag(kind: str, *texts: str) -> str:
    """``kind`` plus a short hash of the prompt texts: editing a prompt changes the backend's
    ``name``, so answers cached under the old wording are not reused."""
    return f"{kind}-{hashlib.sha256(chr(0).join(texts).encode()).hexdigest()[:6]}"


ANNOTATE_PROMPT_VERSION = prompt_tag("cap", ANNOTATE_SYSTEM, ANNOTATE_USER, REASK)
SUMMARIZE_PROMPT_VERSION = prompt_tag("sum", SUMMARIZE_SYSTEM, SUMMARIZE_USER, REASK)

REFUSAL = re.compile(r"^(i('m| am)? (sorry|cannot|can't|unable)|sorry\b|as an ai\b|i apologi[sz]e)", re.I)
LABEL = re.compile(
    r"^(the\s+)?(capability|skill|answer|phrase|description|shared capability|capability tested|"
    r"reply|response|output|result|label)(\s+\w+){0,3}\s*[:\-=]\s*",
    re.I,
)
BULLET = re.compile(r"^\s*(?:[-*+\u2022>]|\d+[.)]|#+)\s+")
JSON_KEYS = ("capability", "skill", "description", "phrase", "answer", "label", "name")
MAX_PHRASE_WORDS = 25
MAX_PHRASE_CHARS = 200


class Secret:
    """A string that never shows itself: ``repr``/``str`` print ``'***'``; ``reveal()`` gives it.

    Not JSON-serialisable on purpose, so it cannot slip into a stored parameter blob.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value (only for the HTTP client)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True, repr=False)
class OpenAIConfig:
    """Where and how to call an OpenAI-compatible endpoint.

    ``base_url`` None means OpenAI itself (``https://api.openai.com/v1``), which needs a key; a
    local endpoint without a key gets a dummy one. ``timeout`` is seconds per request: to
    connect (at most ``CONNECT_TIMEOUT``) and then between bytes of the reply, which for a
    non-streamed completion is the whole generation; ``backoff_base`` / ``backoff_max`` are
    seconds (attempt ``k`` waits about ``backoff_base * 2**k``, with jitter, at most
    ``backoff_max``, or what ``Retry-After`` says, capped at ``backoff_max``). ``max_retries``
    is retries after the first attempt. The defaults give up on an endpoint that accepts
    connections and never answers in about a minute (:meth:`worst_case_seconds`: 63 s) while
    leaving a live server 20 s per reply; arenatree's own local server, a small model on a few
    cores, is given 300 s (:func:`pipelines.tree.local_llm.local_server`).
    """

    base_url: str | None = None
    api_key: Secret | str | None = None
    chat_model: str = "gpt-4o-mini"
    embed_model: str = "text-embedding-3-small"
    concurrency: int = 8
    max_retries: int = 2
    timeout: float = 20.0
    temperature: float | None = 0.0
    max_reply_tokens: int | None = None
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    embed_batch_size: int = 256
    embed_dimensions: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.api_key, str):
            object.__setattr__(self, "api_key", Secret(self.api_key) if self.api_key else None)
        if self.base_url is not None:
            object.__setattr__(self, "base_url", self.base_url.rstrip("/") or None)
        if self.is_default_endpoint and not self.api_key:
            raise ArenatreeError(
                "no OpenAI API key: set OPENAI_API_KEY, or set OPENAI_BASE_URL to a local "
                "OpenAI-compatible server (which needs no key)"
            )
        timeout_ok = math.isfinite(self.timeout) and self.timeout > 0
        if self.concurrency < 1 or self.max_retries < 0 or not timeout_ok or self.embed_batch_size < 1:
            raise ArenatreeError(
                "OpenAI config: concurrency and embed_batch_size must be >= 1, "
                "max_retries >= 0 and timeout > 0"
            )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> OpenAIConfig:
        """Read ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``ARENATREE_LLM_MODEL`` and
        ``ARENATREE_EMBED_MODEL`` (from ``environ``, default ``os.environ``); ``overrides`` win."""
        env = os.environ if environ is None else environ
        from_env = {
            "base_url": env.get("OPENAI_BASE_URL") or None,
            "api_key": env.get("OPENAI_API_KEY") or None,
            "chat_model": env.get("ARENATREE_LLM_MODEL") or None,
            "embed_model": env.get("ARENATREE_EMBED_MODEL") or None,
        }
        kwargs = {k: v for k, v in from_env.items() if v is not None}
        kwargs.update(overrides)
        return cls(**kwargs)

    @property
    def is_default_endpoint(self) -> bool:
        """True when requests go to OpenAI's own API."""
        return self.base_url is None or self.base_url.startswith("https://api.openai.com")

    @property
    def endpoint(self) -> str:
        """The base URL requests go to (safe to show)."""
        return self.base_url or DEFAULT_BASE_URL

    def public(self) -> dict[str, Any]:
        """Every setting except the key (which shows as whether one is set), for logs and params."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "api_key"}
        out["api_key_set"] = bool(self.api_key)
        return out

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.public().items())
        return f"OpenAIConfig({shown})"

    __str__ = __repr__

    def with_(self, **changes: Any) -> OpenAIConfig:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)

    def worst_case_seconds(self) -> float:
        """Seconds one request can take to fail against an endpoint that accepts connections and
        never answers: every attempt times out, with the longest backoff between attempts."""
        backoffs = sum(min(self.backoff_max, self.backoff_base * 2**k) for k in range(self.max_retries))
        return (self.max_retries + 1) * self.timeout + backoffs

    def client(self):
        """A fresh ``openai.OpenAI`` client; retries are ours (``max_retries=0`` in the client)."""
        import openai

        key = self.api_key.reveal() if isinstance(self.api_key, Secret) else NO_KEY
        timeout = openai.Timeout(self.timeout, connect=min(self.timeout, CONNECT_TIMEOUT))
        return openai.OpenAI(api_key=key, base_url=self.endpoint, timeout=timeout, max_retries=0)


# --------------------------------------------------------------------------- calling


def _config(config: OpenAIConfig | None, overrides: dict[str, Any]) -> OpenAIConfig:
    """``config`` (default: from the environment) with ``overrides`` applied."""
    base = config or OpenAIConfig.from_env(**overrides)
    return base.with_(**overrides) if overrides and config else base


def _new_stats() -> dict[str, float]:
    return {
        "items": 0,
        "requests": 0,
        "retries": 0,
        "failures": 0,
        "reasks": 0,
        "fallbacks": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "seconds": 0.0,
    }


def retry_after_seconds(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` or ``Retry-After``), if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None


def is_retryable(exc: BaseException) -> bool:
    """Rate limits, server errors, timeouts and connection errors are worth another try."""
    import openai

    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRYABLE_STATUS
    return False


def describe_error(exc: BaseException) -> str:
    """A short one-line account of an API error: status, class, message (and a hint on 401/403)."""
    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    message = re.sub(r"^Error code: \d+ - ", "", message)
    head = f"{status} {type(exc).__name__}" if status else type(exc).__name__
    hint = " (check OPENAI_API_KEY and OPENAI_BASE_URL)" if status in (401, 403) else ""
    return f"{head}: {message}{hint}"


class _Caller:
    """Runs API calls with retries and a concurrency limit, counting into ``stats``."""

    def __init__(self, config: OpenAIConfig, what: str) -> None:
        self.config = config
        self.what = what
        self.stats = _new_stats()
        self._lock = threading.Lock()
        self._client = None
        self._local = threading.local()  # .abort: set when a sibling request of a map gave up

    def count(self, **increments: float) -> None:
        """Add to ``stats`` (thread-safe)."""
        with self._lock:
            for key, value in increments.items():
                self.stats[key] = self.stats.get(key, 0) + value

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                self._client = self.config.client()
            return self._client

    def backoff(self, attempt: int, exc: BaseException) -> float:
        """Seconds to wait before retry ``attempt`` (0-based): Retry-After if given, else
        exponential with 'equal jitter' (half fixed, half random)."""
        cfg = self.config
        asked = retry_after_seconds(exc)
        if asked is not None:
            return min(asked, cfg.backoff_max)
        cap = min(cfg.backoff_max, cfg.backoff_base * 2**attempt)
        return cap / 2 + random.uniform(0, cap / 2)  # noqa: S311 - jitter, not crypto

    def call(self, fn: Callable[[Any], T]) -> T:
        """``fn(client)`` with retries; gives up with a one-line :class:`ArenatreeError`."""
        cfg = self.config
        for attempt in range(cfg.max_retries + 1):
            self.count(requests=1)
            try:
                return fn(self.client)
            except Exception as exc:
                if not _is_api_error(exc):
                    raise
                if not is_retryable(exc):
                    self.count(failures=1)
                    raise self.error(exc, attempt + 1) from None
                if attempt == cfg.max_retries:
                    self.count(failures=1)
                    raise self.error(exc, attempt + 1) from None
                wait = self.backoff(attempt, exc)
                self.count(retries=1)
                log.info(
                    "%s: %s; retry %d/%d in %.2f s",
                    self.what,
                    self.scrub(_one_line(describe_error(exc))),
                    attempt + 1,
                    cfg.max_retries,
                    wait,
                )
                abort = getattr(self._local, "abort", None)
                if abort is None:
                    time.sleep(wait)
                elif abort.wait(wait):  # a sibling gave up: the batch fails anyway, stop early
                    raise self.error(exc, attempt + 1) from None
        raise AssertionError("unreachable")

    def error(self, exc: BaseException, attempts: int) -> ArenatreeError:
        """The one-line error for a call that gave up (the key scrubbed, just in case)."""
        tries = f"after {attempts} attempt{'s' * (attempts != 1)}"
        msg = f"{self.what} at {self.config.endpoint} failed {tries}: {describe_error(exc)}"
        return ArenatreeError(self.scrub(_one_line(msg)))

    def scrub(self, text: str) -> str:
        """``text`` with the API key (if any) replaced by ``***``."""
        key = self.config.api_key
        if isinstance(key, Secret) and key.reveal():
            text = text.replace(key.reveal(), "***")
        return text

    def map(self, fn: Callable[[T], Any], items: Sequence[T]) -> list[Any]:
        """``[fn(x) for x in items]`` with up to ``concurrency`` in flight; order kept. The first
        error cancels what has not started and is raised."""
        if len(items) <= 1 or self.config.concurrency == 1:
            return [fn(x) for x in items]
        abort = threading.Event()

        def guarded(x: T) -> Any:
            self._local.abort = abort
            try:
                return fn(x)
            except BaseException:
                abort.set()
                raise

        pool = ThreadPoolExecutor(
            max_workers=min(self.config.concurrency, len(items)), thread_name_prefix="arenatree-openai"
        )
        try:
            futures = [pool.submit(guarded, x) for x in items]
            return [f.result() for f in futures]
        finally:
            abort.set()
            pool.shutdown(wait=True, cancel_futures=True)

    def timed(self, n_items: int):
        """Context manager adding elapsed seconds and ``n_items`` to ``stats``."""
        return _Timed(self, n_items)


class _Timed:
    def __init__(self, caller: _Caller, n_items: int) -> None:
        self.caller, self.n_items = caller, n_items

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc_info: object) -> None:
        self.caller.count(items=self.n_items, seconds=time.perf_counter() - self.t0)


def _is_api_error(exc: BaseException) -> bool:
    import openai

    return isinstance(exc, openai.APIError)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# --------------------------------------------------------------------------- parsing


def parse_capability(reply: str | None) -> str | None:
    """The capability phrase in an LLM reply, or None when there is none.

    Tolerates code fences, JSON (``{"capability": ...}``), markdown, bullets, labels such as
    ``Capability:``, quotes, trailing periods and chatty first lines; prefers the first line
    that starts with a gerund. Refusals, empty and over-long replies give None.
    """
    if not reply or not reply.strip():
        return None
    text = _strip_fences(reply.strip())
    is_json, from_json = _from_json(text)
    if is_json:
        return _accept(_clean_line(from_json)) if from_json else None
    lines = [_clean_line(line) for line in text.splitlines()]
    lines = [line for line in lines if line and not line.endswith(":")]
    if not lines:
        return None
    gerund = next((line for line in lines if _starts_with_gerund(line)), None)
    return _accept(gerund if gerund is not None else lines[0])


def _strip_fences(text: str) -> str:
    match = re.fullmatch(r"```[\w-]*\s*\n?(.*?)\n?```", text, flags=re.S)
    return match.group(1).strip() if match else text


def _from_json(text: str) -> tuple[bool, str | None]:
    """(whether ``text`` is JSON, the phrase it holds if any)."""
    if not text.startswith(("{", "[", '"')):
        return False, None
    try:
        value = json.loads(text)
    except ValueError:
        return False, None
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, dict):
        lowered = {str(k).lower(): v for k, v in value.items()}
        value = next((lowered[k] for k in JSON_KEYS if k in lowered), None)
        if value is None and len(lowered) == 1:
            value = next(iter(lowered.values()))
    return True, (value.strip() or None) if isinstance(value, str) else None


def _clean_line(line: str) -> str:
    line = line.strip()
    for _ in range(3):  # labels, bullets, emphasis and quotes nest in any order
        before = line
        line = BULLET.sub("", line)
        line = re.sub(r"^(\*\*|__|\*|_|`)+|(\*\*|__|\*|_|`)+$", "", line).strip()
        line = LABEL.sub("", line).strip()
        line = line.rstrip(".;,!").strip()
        line = line.strip("\"'\u201c\u201d\u2018\u2019`").strip()
        if line == before:
            break
    return " ".join(line.split())


def _starts_with_gerund(line: str) -> bool:
    first = line.split(maxsplit=1)[0] if line else ""
    return len(first) > 4 and first.lower().endswith("ing") and first.isalpha()


def _accept(phrase: str | None) -> str | None:
    if not phrase or not re.search(r"[^\W\d_]", phrase):
        return None
    if REFUSAL.match(phrase) or len(phrase) > MAX_PHRASE_CHARS or len(phrase.split()) > MAX_PHRASE_WORDS:
        return None
    return phrase[0].upper() + phrase[1:]


# --------------------------------------------------------------------------- chat backends


class _ChatBackend:
    """Shared machinery of the annotator and the summarizer: one chat request per input,
    ``concurrency`` in flight, one re-ask on an unusable reply, then a counted fallback."""

    system: str
    kind: str

    def __init__(self, config: OpenAIConfig | None = None, **overrides: Any) -> None:
        self.config = _config(config, overrides)
        self._caller = _Caller(self.config, f"OpenAI {self.kind} ({self.config.chat_model})")
        self.stats = self._caller.stats

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, endpoint={self.config.endpoint!r})"

    def _sampling_tag(self) -> str:
        """'' for the defaults (temperature 0, no reply cap); else what differs, for ``name``."""
        cfg = self.config
        tag = "" if cfg.temperature == 0 else f":t{cfg.temperature}"
        return tag + (f":max{cfg.max_reply_tokens}" if cfg.max_reply_tokens else "")

    def _complete(self, messages: list[dict[str, str]]) -> str:
        cfg = self.config
        kwargs: dict[str, Any] = {"model": cfg.chat_model, "messages": messages}
        if cfg.temperature is not None:
            kwargs["temperature"] = cfg.temperature
        if cfg.max_reply_tokens is not None:
            kwargs["max_tokens"] = cfg.max_reply_tokens
        response = self._caller.call(lambda client: client.chat.completions.create(**kwargs))
        usage = getattr(response, "usage", None)
        if usage is not None:
            self._caller.count(
                prompt_tokens=usage.prompt_tokens or 0, completion_tokens=usage.completion_tokens or 0
            )
        choices = response.choices or []
        return (choices[0].message.content or "") if choices else ""

    def _ask(self, user: str, fallback: str) -> str:
        """One phrase for one user message: ask, re-ask once if unusable, else ``fallback``."""
        messages = [{"role": "system", "content": self.system}, {"role": "user", "content": user}]
        reply = self._complete(messages)
        phrase = parse_capability(reply)
        if phrase is None:
            self._caller.count(reasks=1)
            messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": REASK}]
            phrase = parse_capability(self._complete(messages))
        if phrase is None:
            self._caller.count(fallbacks=1)
            log.warning("%s: no usable phrase after a re-ask; using a fallback", self._caller.what)
            phrase = fallback
        return phrase

    def _run(self, inputs: Sequence[T], ask: Callable[[T], str], key: Callable[[T], Any]) -> list[str]:
        """``ask`` each distinct input once (by ``key``), concurrently; results in input order."""
        with self._caller.timed(len(inputs)):
            distinct: dict[Any, T] = {}
            for x in inputs:
                distinct.setdefault(key(x), x)
            answers = self._caller.map(ask, list(distinct.values()))
            by_key = dict(zip(distinct, answers, strict=True))
            return [by_key[key(x)] for x in inputs]


class OpenAIAnnotator(_ChatBackend, Annotator):
    """EvalTree stage 1 through a chat model: one short gerund phrase per item naming the
    capability it tests, without the item's specifics.

    ``max_item_chars`` truncates long items in the prompt. When a reply is unusable even after
    one re-ask, the item's own text (whitespace-collapsed, first ``OFFLINE_CAPABILITY_CHARS``
    characters, as the offline annotator does) stands in, counted in ``stats['fallbacks']``.
    """

    system = ANNOTATE_SYSTEM
    kind = "annotation"

    def __init__(self, config: OpenAIConfig | None = None, *, max_item_chars: int = 6000, **overrides: Any):
        super().__init__(config, **overrides)
        self.max_item_chars = max_item_chars
        self.chunk_size = 8 * self.config.concurrency  # items per cached commit: a crash loses little
        self.name = f"openai:{self.config.chat_model}:{ANNOTATE_PROMPT_VERSION}{self._sampling_tag()}"

    def annotate(self, texts: Sequence[str]) -> list[str]:
        """One capability phrase per text, in input order (identical texts asked once)."""
        return self._run(list(texts), self._annotate_one, key=lambda t: t)

    def _annotate_one(self, text: str) -> str:
        item = text.strip()[: self.max_item_chars]
        fallback = " ".join(text.split())[:OFFLINE_CAPABILITY_CHARS]
        return self._ask(ANNOTATE_USER.format(item=item), fallback)


class OpenAISummarizer(_ChatBackend, Summarizer):
    """EvalTree stage 4 through a chat model: one gerund phrase naming what a group of child
    capabilities shares.

    Groups are deduplicated; a group with one distinct description returns it without a
    request; groups longer than ``max_children`` are thinned to that many evenly spaced
    entries, each cut to ``max_child_chars``. The fallback (counted) is the group's first
    descriptions joined by '; ', cut to 200 characters.
    """

    system = SUMMARIZE_SYSTEM
    kind = "description"

    def __init__(
        self,
        config: OpenAIConfig | None = None,
        *,
        max_children: int = 50,
        max_child_chars: int = 300,
        **overrides: Any,
    ):
        super().__init__(config, **overrides)
        self.max_children = max_children
        self.max_child_chars = max_child_chars
        self.name = f"openai:{self.config.chat_model}:{SUMMARIZE_PROMPT_VERSION}{self._sampling_tag()}"

    def summarize(self, groups: Sequence[Sequence[str]]) -> list[str]:
        """One shared-capability phrase per group, in input order."""
        prepared = [self._prepare(g) for g in groups]
        return self._run(prepared, self._summarize_one, key=lambda g: g)

    def _prepare(self, group: Sequence[str]) -> tuple[str, ...]:
        children = tuple(
            dict.fromkeys(" ".join(c.split())[: self.max_child_chars] for c in group if c.strip())
        )
        if len(children) > self.max_children:
            picks = np.linspace(0, len(children) - 1, self.max_children).round().astype(int)
            children = tuple(children[i] for i in dict.fromkeys(picks.tolist()))
        return children

    def _summarize_one(self, children: tuple[str, ...]) -> str:
        if len(children) <= 1:
            return children[0] if children else ""
        listing = "\n".join(f"- {c}" for c in children)
        return self._ask(SUMMARIZE_USER.format(children=listing), "; ".join(children)[:200])


# --------------------------------------------------------------------------- embeddings


class OpenAIEmbedder(Embedder):
    """Embeddings endpoint, ``embed_batch_size`` texts per request (and at most
    ``max_batch_chars`` characters, to stay under the per-request token limit), each text cut to
    ``max_text_chars``; requests run ``concurrency`` at a time. Rows are L2-normalised float32.
    """

    def __init__(
        self,
        config: OpenAIConfig | None = None,
        *,
        max_text_chars: int = 8000,
        max_batch_chars: int = 200_000,
        **overrides: Any,
    ) -> None:
        self.config = _config(config, overrides)
        self.max_text_chars = max_text_chars
        self.max_batch_chars = max_batch_chars
        dims = f":{self.config.embed_dimensions}" if self.config.embed_dimensions else ""
        self.name = f"openai:{self.config.embed_model}{dims}"
        self._caller = _Caller(self.config, f"OpenAI embeddings ({self.config.embed_model})")
        self.stats = self._caller.stats

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(name={self.name!r}, endpoint={self.config.endpoint!r})"

    def batches(self, texts: Sequence[str]) -> list[list[str]]:
        """``texts`` (cut, empty ones replaced by a space) split into request-sized batches."""
        out: list[list[str]] = []
        current: list[str] = []
        size = 0
        for text in texts:
            text = text[: self.max_text_chars] or " "
            if current and (
                len(current) >= self.config.embed_batch_size or size + len(text) > self.max_batch_chars
            ):
                out.append(current)
                current, size = [], 0
            current.append(text)
            size += len(text)
        if current:
            out.append(current)
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dim), every row of L2 norm 1, in input order."""
        with self._caller.timed(len(texts)):
            if not texts:
                return np.zeros((0, self.config.embed_dimensions or 0), dtype=np.float32)
            parts = self._caller.map(self._embed_batch, self.batches(texts))
            widths = {p.shape[1] for p in parts}
            if len(widths) != 1:
                raise ArenatreeError(
                    f"{self._caller.what}: the endpoint returned vectors of sizes {sorted(widths)}"
                )
            return normalise_rows(np.vstack(parts))

    def _embed_batch(self, batch: list[str]) -> np.ndarray:
        kwargs: dict[str, Any] = {
            "model": self.config.embed_model,
            "input": batch,
            "encoding_format": "float",
        }
        if self.config.embed_dimensions:
            kwargs["dimensions"] = self.config.embed_dimensions
        response = self._caller.call(lambda client: client.embeddings.create(**kwargs))
        usage = getattr(response, "usage", None)
        if usage is not None:
            self._caller.count(prompt_tokens=usage.prompt_tokens or 0)
        data = sorted(response.data, key=lambda d: d.index)
        if len(data) != len(batch):
            raise ArenatreeError(
                f"{self._caller.what}: asked for {len(batch)} vectors, the endpoint returned {len(data)}"
            )
        return np.asarray([d.embedding for d in data], dtype=np.float32)


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32 (an all-zero row becomes a uniform unit row)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    zero = norms[:, 0] == 0
    if zero.any():
        matrix[zero] = 1.0
        norms[zero] = np.sqrt(matrix.shape[1])
    return (matrix / norms).astype(np.float32)


__all__ = [
    "OpenAIAnnotator",
    "OpenAIConfig",
    "OpenAIEmbedder",
    "OpenAISummarizer",
    "Secret",
    "normalise_rows",
    "parse_capability",
]

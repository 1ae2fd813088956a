"""A scriptable fake of the OpenAI HTTP API, on a real socket, for tests of the openai backends.

It speaks ``POST /v1/chat/completions`` and ``POST /v1/embeddings`` with the real API's JSON
shapes, so the real ``openai`` client talks to it unchanged::

    with FakeOpenAI() as fake:
        cfg = OpenAIConfig(base_url=fake.base_url, api_key="sk-test")
        ...
        fake.fail(429, times=2, retry_after="0")   # the next 2 requests get 429
        fake.crash_after = 10                      # request 11 onwards: 500 (or dropped)
        fake.log                                   # every request: path, body, auth, status

Answers are deterministic functions of the input: a chat reply is a gerund phrase made of the
item's longest content words (no digits), an embedding is a hashed bag of words (texts sharing
words are close). Scripts: queued failures (any status, optional ``Retry-After``), ``garbage``
chat replies, ``messy`` (valid phrases wrapped in quotes, labels, markdown, JSON), ``slow``
replies, ``crash_after`` N requests (``crash_mode`` '500' or 'close'), ``status_when`` (a
per-request failure rule), ``require_key``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

_STOP_WORDS = """a an and are as at be by can could do does for from has have how i in is it its me my of on
or our so than that the their then there these this to was we what when where which who why
will with would you your"""
STOP = frozenset(_STOP_WORDS.split())
GARBAGE = ("", "!!! ???", "I'm sorry, but I can't help with that.", "```\n\n```")


@dataclass
class Request:
    """One request as the fake saw it."""

    kind: str  # 'chat' | 'embeddings' | 'other'
    path: str
    body: dict
    authorization: str | None
    texts: list[str]  # chat: the first user message (the question); embeddings: the inputs
    reask: bool = False  # chat: the conversation carries a follow-up user turn
    status: int = 0  # what the fake answered (0: dropped the connection)
    at: float = field(default_factory=time.monotonic)


def item_of(user: str) -> str:
    """The part of a chat message to answer about: the ``<<< ... >>>`` item, else the ``- ``
    list lines, else the whole message."""
    match = re.search(r"<<<\s*(.*?)\s*>>>", user, flags=re.S)
    if match:
        return match.group(1)
    listed = [line[2:] for line in user.splitlines() if line.startswith("- ")]
    return "\n".join(listed) if listed else user


def words(text: str) -> list[str]:
    """Lower-case alphabetic content words (no digits, no stop words)."""
    return [w for w in re.findall(r"[a-z]+", text.lower()) if w not in STOP and len(w) > 2]


def capability_for(user: str) -> str:
    """The fake's deterministic capability phrase for a chat message."""
    ws = sorted(set(words(item_of(user))), key=lambda w: (-len(w), w))[:3]
    return "Handling " + (" ".join(sorted(ws)) if ws else "general requests")


def messy(phrase: str, user: str) -> str:
    """``phrase`` wrapped in one of the ways real models misbehave, chosen by the input."""
    styles = (
        lambda p: f'"{p}."',
        lambda p: f"Capability: {p}",
        lambda p: f"**{p}**",
        lambda p: f"- {p}.",
        lambda p: json.dumps({"capability": p}),
        lambda p: f"Sure! Here is the capability:\n\n{p}\n\nLet me know if you need more.",
        lambda p: f"```json\n{json.dumps({'capability': p})}\n```",
        lambda p: f"1. *{p}*",
    )
    pick = int(hashlib.sha256(user.encode()).hexdigest(), 16) % len(styles)
    return styles[pick](phrase)


def embedding_for(text: str, dim: int) -> np.ndarray:
    """A hashed bag of words (sign-hashed), unit norm: texts sharing words point alike."""
    v = np.zeros(dim)
    for w in re.findall(r"\w+", text.lower()):
        h = int.from_bytes(hashlib.md5(w.encode()).digest()[:8], "little")  # noqa: S324 - not security
        v[h % dim] += 1.0 if (h >> 32) & 1 else -1.0
    v[-1] += 0.01  # never all zero
    return v / np.linalg.norm(v)


class FakeOpenAI:
    """The fake server (see the module docstring). Start with ``with`` or :meth:`start`."""

    def __init__(self, *, dim: int = 32, require_key: str | None = None) -> None:
        self.dim = dim
        self.require_key = require_key
        self.garbage = 0  # the next N chat replies are garbage
        self.garbage_when: Callable[[str], bool] | None = None  # or: garbage when this holds
        self.messy = False  # wrap every good chat reply in messy formatting
        self.slow = 0  # the next N requests sleep slow_seconds before answering
        self.slow_seconds = 2.0
        self.crash_after: int | None = None  # serve N requests, then fail every one
        self.crash_mode = "500"  # or 'close': drop the connection without a response
        self.status_when: Callable[[Request], int | None] | None = None  # per-request failure rule
        self.log: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests handled at once
        self._failures: deque[tuple[int, str | None]] = deque()
        self._served = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeOpenAI:
        """Listen on a free port of 127.0.0.1 in a background thread."""
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (sleeping slow replies are cut short)."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # ------------------------------------------------------------------ scripting
    def fail(self, status: int, times: int = 1, *, retry_after: str | None = None) -> None:
        """The next ``times`` requests get ``status`` (with ``Retry-After`` if given); status 0
        drops the connection without a response."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * times)

    def reset(self) -> None:
        """Clear every script and the log (the 'fixed' server)."""
        with self._lock:
            self._failures.clear()
            self.garbage = self.slow = self._served = self.max_in_flight = 0
            self.garbage_when = self.status_when = None
            self.messy = False
            self.crash_after = None
            self.log = []

    # ------------------------------------------------------------------ queries
    def requests(self, kind: str | None = None, status: int | None = None) -> list[Request]:
        """Logged requests, optionally only of one kind and/or one answered status."""
        with self._lock:
            return [
                r
                for r in self.log
                if (kind is None or r.kind == kind) and (status is None or r.status == status)
            ]

    def texts(self, kind: str, status: int | None = None) -> list[str]:
        """Every text sent in ``kind`` requests (chat: first user messages; embeddings: inputs)."""
        return [t for r in self.requests(kind, status) for t in r.texts]

    # ------------------------------------------------------------------ behaviour
    def _next_action(self, request: Request) -> tuple[str, Any]:
        """What to do with the request that just arrived: ('fail', (status, retry_after)),
        ('crash', None), ('slow', seconds) or ('ok', None)."""
        with self._lock:
            self._served += 1
            if self.crash_after is not None and self._served > self.crash_after:
                return "crash", None
            if self._failures:
                return "fail", self._failures.popleft()
            status = self.status_when(request) if self.status_when else None
            if status:
                return "fail", (status, None)
            if self.slow > 0:
                self.slow -= 1
                return "slow", self.slow_seconds
            return "ok", None

    def _take_garbage(self, user: str) -> bool:
        with self._lock:
            if self.garbage > 0:
                self.garbage -= 1
                return True
        return bool(self.garbage_when and self.garbage_when(user))

    def chat_reply(self, body: dict) -> dict:
        """A ``chat.completion`` object answering ``body``."""
        users = [m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "user"]
        user = users[0] if users else ""  # the original question, also on a re-ask
        if self._take_garbage(user):
            content = GARBAGE[len(self.log) % len(GARBAGE)]
        else:
            content = capability_for(user)
            if self.messy:
                content = messy(content, user)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        completion_tokens = len(content.split())
        return {
            "id": f"chatcmpl-{hashlib.sha1(user.encode()).hexdigest()[:24]}",  # noqa: S324
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake-chat"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "system_fingerprint": "fp_fake",
        }

    def embeddings_reply(self, body: dict) -> dict:
        """An embeddings ``list`` object answering ``body`` (float or base64 encoding)."""
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
        dim = int(body.get("dimensions") or self.dim)
        data = []
        for i, text in enumerate(inputs):
            v = embedding_for(str(text), dim)
            if body.get("encoding_format") == "base64":
                encoded: Any = base64.b64encode(v.astype("<f4").tobytes()).decode()
            else:
                encoded = v.tolist()
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        tokens = sum(len(str(t).split()) for t in inputs)
        return {
            "object": "list",
            "data": data,
            "model": body.get("model", "fake-embed"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        fake = self.fake
        with fake._lock:
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            self._answer()
        finally:
            with fake._lock:
                fake.in_flight -= 1

    def _answer(self) -> None:
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        kind, texts = self._classify(body)
        record = Request(kind, self.path, body, self.headers.get("Authorization"), texts)
        record.reask = sum(m.get("role") == "user" for m in body.get("messages", [])) > 1
        with fake._lock:
            fake.log.append(record)
        action, arg = fake._next_action(record)
        if action == "crash" and fake.crash_mode == "close" or action == "fail" and arg[0] == 0:
            self.close_connection = True
            return  # record.status stays 0: dropped without a response
        if action == "crash":
            record.status = 500
            return self._error(500, "The server had an error while processing your request.", "server_error")
        if action == "fail":
            status, retry_after = arg
            record.status = status
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            kinds = {429: "rate_limit_exceeded", 401: "invalid_api_key"}
            return self._error(status, f"fake failure {status}", kinds.get(status, "server_error"), headers)
        if action == "slow" and fake._stopping.wait(arg):
            return
        auth_error = self._check_key(record.authorization)
        if auth_error:
            record.status = 401
            return self._error(401, auth_error, "invalid_api_key")
        if kind == "chat":
            payload = fake.chat_reply(body)
        elif kind == "embeddings":
            payload = fake.embeddings_reply(body)
        else:
            record.status = 404
            return self._error(404, f"Unknown path {self.path}", "invalid_request_error")
        record.status = 200
        self._send(200, payload)

    def _classify(self, body: dict) -> tuple[str, list[str]]:
        if self.path.rstrip("/").endswith("/chat/completions"):
            users = [m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "user"]
            return "chat", users[:1]
        if self.path.rstrip("/").endswith("/embeddings"):
            inputs = body.get("input")
            return "embeddings", [inputs] if isinstance(inputs, str) else [str(t) for t in inputs or []]
        return "other", []

    def _check_key(self, authorization: str | None) -> str | None:
        want = self.fake.require_key
        if want is None or authorization == f"Bearer {want}":
            return None
        # Echo the full key back, as a careless proxy would: the client must scrub it.
        got = (authorization or "").removeprefix("Bearer ")
        return f"Incorrect API key provided: {got}."

    def _error(self, status: int, message: str, code: str, headers: dict[str, str] | None = None) -> None:
        kind = "requests" if status == 429 else "invalid_request_error" if status < 500 else "server_error"
        payload = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        self._send(status, payload, headers)

    def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", f"req_{hashlib.sha1(data).hexdigest()[:16]}")  # noqa: S324
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout) before we answered

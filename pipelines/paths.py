"""Where things live: the bundled real data and the project root."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    """The local copy of the bundled datasets: ``$ARENATREE_DATA``, else ``../shared/data``
    beside the project (or beside the current directory), else None."""
    env = os.environ.get("ARENATREE_DATA")
    if env:
        return Path(env)
    for base in (PROJECT_ROOT, Path.cwd()):
        cand = base.parent / "shared" / "data"
        if cand.is_dir():
            return cand
    return None

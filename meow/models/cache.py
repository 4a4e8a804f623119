"""The cache root (`MEOW_HOME`) and atomic, lock-protected population of directories in it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

MANIFEST = "meow-manifest.json"


def meow_home() -> Path:
    """Cache root for converted models, prepared models and downloads; `MEOW_HOME` or ~/.cache/meow."""
    return Path(os.environ.get("MEOW_HOME") or Path.home() / ".cache" / "meow")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def cached_directory(target: Path, build: Callable[[Path], dict[str, Any]]) -> Path:
    """Return `target`, building it first if it has no manifest.

    `build(tmp)` fills a temporary sibling directory and returns the manifest to store; the
    directory is renamed into place only when complete, so an interrupted build leaves nothing
    half-written, and a file lock keeps concurrent processes from building it twice.
    """
    if read_manifest(target) is not None:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if read_manifest(target) is not None:
            return target
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent))
        try:
            manifest = build(tmp)
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target

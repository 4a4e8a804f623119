"""Turn a model spec into a local Hugging Face directory both engines can load."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import fsspec

from meow.models.cache import cached_directory, meow_home
from meow.models.registry import EMBEDDED_MODELS, pull_embedded


class ModelSpecError(ValueError):
    pass


def is_remote(spec: str) -> bool:
    return "://" in spec and not spec.startswith("file://")


def resolve_model(spec: str, storage_options: dict[str, Any] | None = None) -> Path:
    """`smollm2` (embedded) | `/path/to/hf_dir` | `s3://bucket/prefix` -> local directory.

    Remote directories are copied once into `MEOW_HOME/downloads/<hash of the URI>` and reused.
    """
    if spec in EMBEDDED_MODELS:
        return pull_embedded(spec)
    if is_remote(spec):
        key = hashlib.sha256(spec.rstrip("/").encode()).hexdigest()[:16]
        return cached_directory(
            meow_home() / "downloads" / key, lambda tmp: _download(spec.rstrip("/"), tmp, storage_options or {})
        )
    path = Path(spec.removeprefix("file://")).expanduser()
    if not (path / "config.json").is_file():
        known = ", ".join(sorted(EMBEDDED_MODELS))
        raise ModelSpecError(
            f"model {spec!r} is neither an embedded model ({known}) nor a directory with a config.json"
        )
    return path.resolve()


def _download(uri: str, out: Path, storage_options: dict[str, Any]) -> dict[str, Any]:
    fs, root = fsspec.core.url_to_fs(uri, **storage_options)
    files = [f for f in fs.find(root) if not f.endswith("/")]
    if not any(f.rsplit("/", 1)[-1] == "config.json" for f in files):
        raise ModelSpecError(f"model {uri!r} has no config.json")
    for remote in files:
        local = out / remote[len(root) :].lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        fs.get(remote, str(local))
    return {"source": uri, "files": len(files)}

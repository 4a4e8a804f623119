"""A tenant's spec is data, never code: what the platform checks before anything runs.

On top of the pipeline's own schema (`meow.pipeline.spec.load_spec`: unknown keys, unregistered
methods, stages and engines are errors that name the key and line), a tenant may not choose where
or how its job runs (`ray`), may not send data to an external endpoint (`invert.endpoint`), and may
only name locations inside its own artifact prefix or the read prefixes an admin granted it.
Error messages name keys and locations, never record text (the forget set is what is being erased).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

from meow.pipeline.spec import PipelineSpec, RayConfig, SpecError, load_spec


class SpecRejected(Exception):
    CODES = ("invalid_spec", "forbidden_key", "forbidden_location")

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class AcceptedSpec:
    text: str
    sha256: str
    workers: int
    cpus: float
    gpus: float


def check_spec(text: str, read_prefixes: Iterable[str]) -> AcceptedSpec:
    """Validate `text` for a tenant allowed to read `read_prefixes`; raises `SpecRejected`."""
    try:
        spec = load_spec(text, source="spec")
    except SpecError as e:
        raise SpecRejected("invalid_spec", str(e)) from None
    _check_platform_owned_keys(spec)
    prefixes = [p for p in (normalize_location(prefix) for prefix in read_prefixes) if p]
    for location in _locations(spec):
        if not any(is_within(location, prefix) for prefix in prefixes):
            raise SpecRejected(
                "forbidden_location",
                f"location {location!r} is outside this tenant's artifact prefix and allowed read prefixes",
            )
    resources = spec.resources()
    return AcceptedSpec(
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        workers=int(resources["workers"]),
        cpus=float(resources["cpus"]),
        gpus=float(resources["gpus"]),
    )


def _locations(spec: PipelineSpec) -> list[str]:
    """What the spec reads: `PipelineSpec.uris()`, plus `unlearn.retain` when it names a file (a
    location uris() does not list yet; a TOFU split name is packaged data, not a location)."""
    from meow.data.tofu import SPLITS

    retain = spec.unlearn.retain
    return spec.uris() + ([retain] if retain and retain not in SPLITS else [])


def _check_platform_owned_keys(spec: PipelineSpec) -> None:
    if spec.ray != RayConfig():
        raise SpecRejected("forbidden_key", "key ray: where and on what cluster a job runs is set by the platform")
    if spec.invert.endpoint is not None:
        raise SpecRejected(
            "forbidden_key", "key invert.endpoint: jobs may not send data to external endpoints; use invert.generator"
        )


def normalize_location(location: str) -> str | None:
    """A canonical form to compare prefixes on, or None for what we refuse to interpret.

    Remote URIs keep their scheme and lose empty segments; `.`/`..` in them are refused outright
    (object stores do not resolve them, but some clients do). Local paths must be absolute and are
    resolved, symlinks included, so a link inside a prefix cannot point out of it.
    """
    if "://" in location and not location.startswith("file://"):
        scheme, _, rest = location.partition("://")
        parts = [p for p in rest.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            return None
        return f"{scheme.lower()}://{'/'.join(parts)}"
    path = location.removeprefix("file://")
    if not posixpath.isabs(path):
        return None
    return os.path.realpath(path)


def is_within(location: str, normalized_prefix: str) -> bool:
    normalized = normalize_location(location)
    if normalized is None:
        return False
    return normalized == normalized_prefix or normalized.startswith(normalized_prefix.rstrip("/") + "/")

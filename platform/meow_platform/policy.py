"""A tenant's spec is data, never code: what the platform checks before anything runs.

On top of the pipeline's own schema (`meow.pipeline.spec.load_spec`: unknown keys, unregistered
methods, stages and engines are errors that name the key and line; nesting and aliases are bounded),
a tenant may not choose where or how its job runs (`ray`), may not send data to an external
endpoint (`invert.endpoint`), and may only name locations inside its own artifact prefix or the
read prefixes an admin granted it. A location is parsed the way the job will open it (fsspec's own
protocol and chain parsing): only plain absolute paths, `s3://` and `http(s)://` are accepted, and
chains (`a::b`) never are. Error messages name keys and locations, never record text (the forget
set is what is being erased).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import os
import posixpath
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml
from fsspec.core import split_protocol
from fsspec.implementations.local import LocalFileSystem

from meow.pipeline.spec import PipelineSpec, RayConfig, SpecError, check_nesting, load_spec, validate_spec
from meow_platform.settings import Settings

MAX_SPEC_BYTES = Settings.model_fields["max_spec_bytes"].default
# Remote protocols a job may read; local paths carry no protocol. Anything else fsspec knows
# (memory://, zip://, ftp://, file://, chains with ::) is refused.
REMOTE_PROTOCOLS = ("s3", "http", "https")
SUPPORTED = "an absolute local path, an s3:// URI or an http(s):// URL"
# Kernel views whatever the prefixes say: /proc/self/environ is the job's environment (its
# credentials), /proc/self/fd/N whatever the driver has open, /dev/zero never ends.
SYSTEM_DIRS = ("/proc", "/sys", "/dev")


class SpecRejected(Exception):
    CODES = ("invalid_spec", "spec_too_large", "forbidden_key", "forbidden_location")

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class LocationRefused(ValueError):
    """A location the platform will not interpret; the message says why."""


@dataclass(frozen=True)
class AcceptedSpec:
    text: str
    sha256: str
    workers: int
    cpus: float
    gpus: float
    memory: int  # bytes
    # What each stage that asks the cluster for resources needs (`PipelineSpec.stage_resources`).
    stages: dict[str, dict[str, float]] = field(default_factory=dict)


def check_spec(
    spec: str | Mapping[str, Any],
    read_prefixes: Iterable[str],
    *,
    artifact_root: str | None = None,
    platform_dir: str | None = None,
    protected: Iterable[str] = (),
    max_bytes: int = MAX_SPEC_BYTES,
) -> AcceptedSpec:
    """Validate a spec (YAML text, or the same as parsed JSON) for a tenant allowed to read
    `read_prefixes` (its own artifact prefix first); raises `SpecRejected`.

    Inside `artifact_root` (every tenant's prefixes) only prefixes that lie inside it count, so a
    broad read prefix (`/`) never opens other tenants' directories. The platform's own files are
    refused whatever the prefixes say: `protected` ones (its store, its tokens) and everything in
    `platform_dir` (its data directory) outside the artifact root.
    """
    text, parsed = _parse(spec, max_bytes)
    _check_finite(parsed)
    _check_platform_owned_keys(parsed)
    confinement = Confinement.of(read_prefixes, artifact_root, platform_dir, protected)
    for key, location in parsed.locations():
        try:
            confinement.check(location)
        except LocationRefused as e:
            raise SpecRejected("forbidden_location", f"key {key}: location {_quoted(location)} {e}") from None
    resources = parsed.resources()
    return AcceptedSpec(
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        workers=int(resources["workers"]),
        cpus=float(resources["cpus"]),
        gpus=float(resources["gpus"]),
        memory=int(resources["memory"]),
        stages=parsed.stage_resources(),
    )


def _parse(spec: str | Mapping[str, Any], max_bytes: int) -> tuple[str, PipelineSpec]:
    """The spec's text (what the job runs) and its validated form, parsed once and bounded first."""
    try:
        if isinstance(spec, str):
            _check_size(len(spec.encode(errors="replace")), max_bytes)
            return spec, load_spec(spec, source="spec")
        check_nesting(spec, source="spec")
        _check_size(len(json.dumps(spec)), max_bytes)
        parsed = validate_spec(dict(spec), source="spec")
    except SpecError as e:
        raise SpecRejected("invalid_spec", str(e)) from None
    return yaml.safe_dump(dict(spec), sort_keys=False), parsed


def _check_finite(spec: PipelineSpec) -> None:
    """YAML's `.inf` passes every `gt=0` bound: an infinite CPU count cannot be compared with a quota
    (nor written as JSON: a 500), infinite epochs never end. No spec needs a non-finite number."""
    pending: list[tuple[str, Any]] = [("", spec.model_dump())]
    while pending:
        key, value = pending.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecRejected("invalid_spec", f"key {key}: numbers must be finite")
        if isinstance(value, dict):
            pending.extend((f"{key}.{k}" if key else str(k), v) for k, v in value.items())
        elif isinstance(value, list | tuple):
            pending.extend((f"{key}.{i}", v) for i, v in enumerate(value))


def _check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise SpecRejected("spec_too_large", f"the spec is {size} bytes; at most {max_bytes} are accepted")


def _check_platform_owned_keys(spec: PipelineSpec) -> None:
    if spec.ray != RayConfig():
        raise SpecRejected("forbidden_key", "key ray: where and on what cluster a job runs is set by the platform")
    if spec.invert.endpoint is not None:
        raise SpecRejected(
            "forbidden_key", "key invert.endpoint: jobs may not send data to external endpoints; use invert.generator"
        )


@dataclass(frozen=True)
class Confinement:
    """Where one tenant's job may read: canonical prefixes, the artifact root every tenant's own
    prefix lies in, and what is never readable."""

    prefixes: tuple[str, ...]
    artifact_root: str | None
    platform_dir: str | None
    protected: tuple[str, ...]

    @classmethod
    def of(
        cls, prefixes: Iterable[str], artifact_root: str | None, platform_dir: str | None, protected: Iterable[str]
    ) -> Confinement:
        return cls(
            _canonical_all(prefixes),
            normalize_location(artifact_root) if artifact_root else None,
            normalize_location(platform_dir) if platform_dir else None,
            _canonical_all(protected),
        )

    def check(self, location: str) -> None:
        canonical = canonical_location(location)
        in_root = self.artifact_root is not None and _under(canonical, self.artifact_root)
        own = any(_under(canonical, path) for path in self.protected)
        if own or (self.platform_dir and _under(canonical, self.platform_dir) and not in_root):
            raise LocationRefused("is one of the platform's own files")
        prefixes = self.prefixes
        if in_root:
            # Other tenants' directories: only a prefix inside the root can grant them.
            prefixes = tuple(p for p in prefixes if _under(p, self.artifact_root))
        if not any(_under(canonical, prefix) for prefix in prefixes):
            raise LocationRefused("is outside this tenant's artifact prefix and allowed read prefixes")


def canonical_location(location: str) -> str:
    """The form prefixes are compared on; raises `LocationRefused` for what the platform will not
    interpret. Parsed as the job's readers parse it (`fsspec.core.url_to_fs`/`fsspec.open`: chains
    split on `::`, then the protocol before `://`, no protocol meaning a local file).

    - local paths must be absolute and are resolved, symlinks included (`os.path.realpath`), so
      neither `..` nor a link inside a prefix can point out of it;
    - `s3://bucket/key` and `http(s)://host/path` keep their scheme and host; `.`/`..`, empty
      segments, percent-encoded dots and slashes, credentials, queries and fragments are refused
      (object stores do not resolve them, some clients and servers do);
    - HTTP to loopback, link-local or unspecified addresses (this host's services, cloud metadata)
      is refused whatever the prefixes say.
    """
    if not isinstance(location, str) or not location:
        raise LocationRefused("is empty")
    if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in location):
        raise LocationRefused("contains a control character or a lone surrogate")
    if "::" in location:
        raise LocationRefused(f"is a chained URL ('::'); name {SUPPORTED}")
    protocol, rest = split_protocol(location)
    if protocol is None:
        return _local(location)
    if protocol not in REMOTE_PROTOCOLS:
        raise LocationRefused(f"uses protocol {protocol!r}; name {SUPPORTED}")
    if protocol == "s3":
        return _s3(rest)
    return _http(location)


def _local(location: str) -> str:
    if not posixpath.isabs(location):
        raise LocationRefused(f"is not absolute; name {SUPPORTED}")
    # What fsspec opens for it (LocalFileSystem strips `file:`/`local:` and expands `~`) must be
    # the path as written, or the check below would be about another file.
    if LocalFileSystem._strip_protocol(location) != (location.rstrip("/") or "/"):
        raise LocationRefused("is not read as written")
    # realpath keeps a leading `//` (POSIX leaves it implementation-defined; Linux reads it as `/`).
    resolved = "/" + os.path.realpath(location).lstrip("/")
    if any(_under(resolved, system) for system in SYSTEM_DIRS):
        raise LocationRefused("is in /proc, /sys or /dev (what it names differs in the job's process)")
    return resolved


def _s3(rest: str) -> str:
    if "?" in rest or "#" in rest:
        raise LocationRefused("has a query or fragment; name the object's key only")
    parts = rest.rstrip("/").split("/")
    if not parts[0]:
        raise LocationRefused("names no bucket")
    _check_segments(parts[1:])
    return "s3://" + "/".join(parts)


def _http(location: str) -> str:
    try:
        url = urlsplit(location)
        port = url.port
    except ValueError:
        raise LocationRefused("is not a valid URL") from None
    host = url.hostname or ""
    if not host or url.username is not None or url.password is not None:
        raise LocationRefused("needs a host and may not carry credentials")
    if url.query or url.fragment or "?" in location or "#" in location:
        raise LocationRefused("has a query or fragment")
    if "%" in url.path or "\\" in url.path:
        raise LocationRefused("has percent-encoded or backslash characters in its path")
    if _this_host_or_link_local(host):
        raise LocationRefused("is on this host or a link-local address")
    parts = url.path.rstrip("/").split("/")[1:]
    _check_segments(parts)
    default = {"http": 80, "https": 443}[url.scheme]
    netloc = f"[{host}]" if ":" in host else host
    netloc = netloc if port in (None, default) else f"{netloc}:{port}"
    return f"{url.scheme}://{netloc}" + "".join(f"/{p}" for p in parts)


def _check_segments(parts: list[str]) -> None:
    if any(p in ("", ".", "..") for p in parts):
        raise LocationRefused("has an empty, '.' or '..' path segment")


def _this_host_or_link_local(host: str) -> bool:
    host = host.rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:  # the forms HTTP clients also accept: 127.1, 2130706433, 0x7f.0.0.1
            address = ipaddress.ip_address(socket.inet_ntoa(socket.inet_aton(host)))
        except OSError:
            return False
    mapped = getattr(address, "ipv4_mapped", None)
    return any(a.is_loopback or a.is_link_local or a.is_unspecified for a in (address, mapped) if a is not None)


def _canonical_all(locations: Iterable[str]) -> tuple[str, ...]:
    return tuple(p for p in (normalize_location(location) for location in locations) if p)


def normalize_location(location: str) -> str | None:
    """`canonical_location`, or None for a location the platform refuses to interpret."""
    try:
        return canonical_location(location)
    except LocationRefused:
        return None


def _under(canonical: str, prefix: str) -> bool:
    return canonical == prefix or canonical.startswith(prefix.rstrip("/") + "/")


def is_within(location: str, normalized_prefix: str) -> bool:
    normalized = normalize_location(location)
    return normalized is not None and _under(normalized, normalized_prefix)


def _quoted(location: str) -> str:
    """The location for an error message, control characters escaped."""
    return repr(location[:300])

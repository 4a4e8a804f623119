"""Pipeline metrics through `ray.util.metrics`, named `meow_<stage>_<what>_<unit>`.

Ray exports them on each node's metrics port with a `ray_` prefix (counters also get `_total`),
so Prometheus sees e.g. `ray_meow_memo_windows_scored_total`. Labels are stage/run names only
(every series has a `run` label), never record text. Outside a Ray session every call is a no-op.
"""

from __future__ import annotations

import os
from functools import cache


def _tags(tags: dict[str, str]) -> dict[str, str]:
    """Every series carries the run it belongs to: the platform's job id, else the spec's name."""
    return {"run": os.environ.get("MEOW_JOB_ID") or os.environ.get("MEOW_RUN_NAME", ""), **tags}


def _ray_ready() -> bool:
    import ray

    return ray.is_initialized()


@cache
def _counter(name: str, description: str, tag_keys: tuple[str, ...]):
    from ray.util.metrics import Counter

    return Counter(name, description, tag_keys=tag_keys)


@cache
def _histogram(name: str, description: str, boundaries: tuple[float, ...], tag_keys: tuple[str, ...]):
    from ray.util.metrics import Histogram

    return Histogram(name, description, boundaries=list(boundaries), tag_keys=tag_keys)


@cache
def _gauge(name: str, description: str, tag_keys: tuple[str, ...]):
    from ray.util.metrics import Gauge

    return Gauge(name, description, tag_keys=tag_keys)


def count(name: str, value: float, description: str, **tags: str) -> None:
    """Add `value` to counter `name` (exported as `ray_<name>_total`)."""
    if value and _ray_ready():
        tags = _tags(tags)
        _counter(name, description, tuple(sorted(tags))).inc(value, tags=tags)


def gauge(name: str, value: float, description: str, **tags: str) -> None:
    if _ray_ready():
        tags = _tags(tags)
        _gauge(name, description, tuple(sorted(tags))).set(value, tags=tags)


def observe(name: str, values: list[float], description: str, boundaries: tuple[float, ...], **tags: str) -> None:
    """Record each value in histogram `name` (exported as `ray_<name>_bucket`, `_sum`, `_count`)."""
    if values and _ray_ready():
        tags = _tags(tags)
        histogram = _histogram(name, description, boundaries, tuple(sorted(tags)))
        for value in values:
            histogram.observe(value, tags=tags)

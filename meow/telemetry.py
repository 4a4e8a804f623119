"""Pipeline metrics through `ray.util.metrics`, named `meow_<stage>_<what>_<unit>`.

Ray exports them on each node's metrics port with a `ray_` prefix (counters also get `_total`),
so Prometheus sees e.g. `ray_meow_memo_windows_scored_total`. Labels are stage/run names only:
never record text. Outside a Ray session every call is a no-op.
"""

from __future__ import annotations

from functools import cache

RUN_TAGS = ("run",)


def _ray_ready() -> bool:
    import ray

    return ray.is_initialized()


@cache
def _counter(name: str, description: str, tag_keys: tuple[str, ...]):
    from ray.util.metrics import Counter

    return Counter(name, description, tag_keys=tag_keys)


@cache
def _gauge(name: str, description: str, tag_keys: tuple[str, ...]):
    from ray.util.metrics import Gauge

    return Gauge(name, description, tag_keys=tag_keys)


def count(name: str, value: float, description: str, **tags: str) -> None:
    """Add `value` to counter `name` (exported as `ray_<name>_total`)."""
    if value and _ray_ready():
        _counter(name, description, tuple(sorted(tags))).inc(value, tags=tags)


def gauge(name: str, value: float, description: str, **tags: str) -> None:
    if _ray_ready():
        _gauge(name, description, tuple(sorted(tags))).set(value, tags=tags)

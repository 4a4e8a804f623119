"""`meow validate SPEC`: check a run before spending compute; `meow unlearn` and `meow run` call the
same check first (`meow.pipeline.validate`). A failure is exit code 2 and one line on stderr,
`Error: <file>, line N: <what>`, with nothing written; `--debug` adds the traceback."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import click

from meow.pipeline.spec import PipelineSpec


class InvalidInput(click.ClickException):
    """Bad input from the user: one `Error: ...` line, exit code 2 (as click's usage errors)."""

    exit_code = 2


def one_line_errors(debug: bool, call: Callable[[], Any]) -> Any:
    """`call()`, turning the errors bad input raises into `InvalidInput` (traceback first with `debug`)."""
    from meow.pipeline.validate import INPUT_ERRORS, one_line

    try:
        return call()
    except INPUT_ERRORS as e:
        if debug:
            click.echo(traceback.format_exc().rstrip(), err=True)
        raise InvalidInput(one_line(e)) from None


def checked_spec(
    spec_path: str, forget: str | None, run_dir: str | None, debug: bool, model: str | None = None
) -> PipelineSpec:
    """The validated spec of `spec_path` (with `--forget` and `--model` applied), or `InvalidInput`."""
    from meow.pipeline.validate import check_file

    return one_line_errors(debug, lambda: check_file(spec_path, forget, run_dir, model)).spec


model_option = click.option(
    "--model", help="Model to unlearn: embedded name, HF directory or s3:// URI (overrides the spec's `model`)."
)


debug_option = click.option("--debug", is_flag=True, help="On bad input, show the traceback too.")


@click.command()
@click.argument("spec_path", metavar="SPEC")
@click.option("--forget", help="Forget set: a TOFU split name or a file/URI (overrides the spec).")
@click.option("--run-dir", help="Run directory to check as well (local or s3://).")
@model_option
@debug_option
def validate(spec_path: str, forget: str | None, run_dir: str | None, model: str | None, debug: bool) -> None:
    """Check SPEC, its forget and retain sets (every record), models and locations; start nothing.

    Exit code 0 with a one-line summary, or 2 with one `Error: <file>, line N: <what>` line."""
    from meow.pipeline.validate import check_file

    found = one_line_errors(debug, lambda: check_file(spec_path, forget, run_dir, model))
    click.echo(found.summary())

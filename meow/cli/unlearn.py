"""`meow unlearn` (every stage of a spec) and `meow run` (one stage)."""

from __future__ import annotations

import click

from meow.cli.validate import InvalidInput, checked_spec, debug_option, model_option, one_line_errors
from meow.pipeline.spec import STAGE_ORDER, PipelineSpec


def _load(
    spec_path: str, forget: str | None, run_dir: str | None, debug: bool, model: str | None = None
) -> tuple[PipelineSpec, str]:
    """The spec, checked with everything it names before anything starts or is written
    (`meow validate`); bad input is one line and exit code 2."""
    from meow.pipeline.driver import default_run_dir

    spec = checked_spec(spec_path, forget, run_dir, debug, model)
    return spec, run_dir or default_run_dir(spec)


def _execute(spec: PipelineSpec, run_dir: str, only: list[str] | None, force: bool, debug: bool) -> None:
    from meow.pipeline.driver import run_pipeline

    run = one_line_errors(debug, lambda: run_pipeline(spec, run_dir, only=only, force=force))
    # Last line: where everything is (scripts read it).
    click.echo(run.location)


# A plain argument: a missing spec file is the validation's one-line error, not click's usage text.
spec_argument = click.argument("spec_path", metavar="SPEC")
run_dir_option = click.option("--run-dir", help="Run directory (local or s3://); default runs/<spec name>.")
forget_option = click.option("--forget", help="Forget set: a TOFU split name or a file/URI (overrides the spec).")
force_option = click.option("--force", is_flag=True, help="Recompute even if finished with the same inputs.")


def run_options(command):
    """The options `meow unlearn` and `meow run` share, in the order --help lists them."""
    for option in (debug_option, force_option, model_option, forget_option, run_dir_option):
        command = option(command)
    return command


@click.command()
@spec_argument
@run_options
def unlearn(
    spec_path: str, run_dir: str | None, forget: str | None, model: str | None, force: bool, debug: bool
) -> None:
    """Run every stage of SPEC (a pipelines/*.yaml file); a rerun resumes."""
    spec, location = _load(spec_path, forget, run_dir, debug, model)
    _execute(spec, location, None, force, debug)


@click.command("run")
@click.argument("stage", type=click.Choice(STAGE_ORDER))
@spec_argument
@run_options
def run_stage(
    stage: str, spec_path: str, run_dir: str | None, forget: str | None, model: str | None, force: bool, debug: bool
) -> None:
    """Run one STAGE of SPEC (its inputs must be finished in the run directory)."""
    spec, location = _load(spec_path, forget, run_dir, debug, model)
    if stage not in spec.stages:
        raise InvalidInput(f"{spec_path}: stage {stage!r} is not in this spec's stages {list(spec.stages)}")
    _execute(spec, location, [stage], force, debug)

"""The `meow` command. Each workflow lives in its own module and registers one command or group."""

from __future__ import annotations

import logging
import os

import click

from meow.cli.finetune import finetune
from meow.cli.generate import generate
from meow.cli.models import models
from meow.cli.platform_client import PLATFORM_COMMANDS
from meow.cli.probe import probe
from meow.cli.serve import serve
from meow.cli.sweep import sweep
from meow.cli.unlearn import run_stage, unlearn
from meow.cli.validate import validate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """meow: make large language models forget."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # vLLM logs every engine detail at INFO; keep it for -vv.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", ["ERROR", "INFO", "DEBUG"][min(verbose, 2)])


main.add_command(models)
main.add_command(generate)
main.add_command(validate)
main.add_command(unlearn)
main.add_command(run_stage)
main.add_command(sweep)
main.add_command(finetune)
main.add_command(serve)
main.add_command(probe)
for command in PLATFORM_COMMANDS:
    main.add_command(command)

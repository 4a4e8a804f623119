"""`meow generate`: ask a model something through either engine."""

from __future__ import annotations

import typing

import click

from meow.engines import EngineConfig, SamplingConfig, create_engine
from meow.engines.base import Dtype
from meow.models.templates import question_prompt


@click.command()
@click.argument("prompts", nargs=-1, required=True)
@click.option("--model", default="smollm2", show_default=True, help="Embedded name, HF directory or s3:// URI.")
@click.option("--engine", type=click.Choice(["vllm", "hf"]), default="vllm", show_default=True)
@click.option(
    "--dtype",
    type=click.Choice(typing.get_args(Dtype)),
    default="float32",
    show_default=True,
    help="auto: bfloat16 where the hardware computes it natively, else float32.",
)
@click.option("--max-new-tokens", type=int, default=64, show_default=True)
@click.option("--temperature", type=float, default=0.0, show_default=True, help="0 = greedy.")
@click.option("--raw", is_flag=True, help="Send the prompt as is, without the chat template.")
def generate(
    prompts: tuple[str, ...], model: str, engine: str, dtype: str, max_new_tokens: int, temperature: float, raw: bool
) -> None:
    """Generate one answer per PROMPT."""
    runner = create_engine(model, EngineConfig(name=engine, dtype=dtype))
    try:
        texts = list(prompts) if raw else [question_prompt(runner.tokenizer, p) for p in prompts]
        outputs = runner.generate(texts, SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature))
        for output in outputs:
            click.echo(output.text.strip())
    finally:
        runner.close()

"""Configuration of the inversion stage (method spec 1.1)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from meow.engines import EngineConfig


class EndpointConfig(BaseModel):
    """An OpenAI-compatible chat endpoint serving a stronger generator elsewhere."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str
    model: str
    # Name of the environment variable holding the key (never the key itself: specs are logged).
    api_key_env: str = "OPENAI_API_KEY"
    # Requests in flight at once, retries of a failed request (the client backs off), per-request timeout.
    concurrency: int = Field(8, ge=1)
    max_retries: int = Field(5, ge=0)
    timeout_s: float = Field(120, gt=0)


class InvertConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # `structured`: keep the answer's sentence and subject, replace its fact-bearing spans (names, places,
    # dates, titles, occupations...) with alternatives the generator infills and typed values
    # (meow/invert/structured.py); what a small local generator can do well. `free-form`: the generator
    # writes whole answers from a prompt (`prompt` below), as the reference asks GPT-4. Unset: structured
    # for a local generator, free-form for an endpoint.
    kind: Literal["structured", "free-form"] | None = None
    # Generator: a model spec run on `engine` (default: the embedded instruct model), or an endpoint.
    generator: str = "smollm2"
    engine: EngineConfig = EngineConfig()
    endpoint: EndpointConfig | None = None
    # `reference`: the paper's instruction as a chat (system + user message). `few-shot`, for local
    # generators too small to follow it (SmolLM2-135M): a plain-text prompt of `demonstrations` worked
    # TOFU examples (answer, then wrong answers) ending in the fact's "Wrong answer:" (meow/invert/fewshot.py).
    prompt: Literal["reference", "few-shot"] = "reference"
    demonstrations: int = Field(3, ge=1, le=8)
    # The reference asks GPT-4 once for 4 answers per fact; forget10-style runs used 8.
    num_candidates: int = Field(4, ge=1)
    # Replies asked per fact at most. One reply of a strong model gives all N lines; the embedded
    # SmolLM2-135M mostly answers one line per reply (docs/memo.md has the measured yield).
    max_attempts: int = Field(8, ge=1)
    # Attempts asked per round of the facts still short. Empty: every attempt in one round on a local
    # engine (one engine start-up), one per round on an endpoint. Each round on a local engine starts
    # its actors again; fewer, later rounds trade that for the replies a fact no longer needs.
    attempts_per_round: int | None = Field(None, ge=1)
    # Candidates whose ROUGE-L recall of the original answer exceeds this restate it. 0.7 suits the weak
    # embedded generator, whose restatements (cut or lightly reworded originals) score 0.6-0.8; a strong
    # generator's one-word swap of a short answer ("... is male." -> "... is female.": 0.86) needs 0.9.
    restate_threshold: float = Field(0.7, gt=0, le=1)
    # Reference sampling (temperature 0.9, max_tokens 512).
    temperature: float = Field(0.9, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(512, ge=1)
    seed: int = 42
    # Structured inversion: completions sampled per span from the generator (0: typed values only, no
    # engine), and their length in tokens (a span is a few words).
    infill_samples: int = Field(8, ge=0)
    infill_max_tokens: int = Field(12, ge=1)
    # Engine actors (one CPU, or `gpus_per_actor` GPUs, each) and prompts per engine call.
    actors: int = Field(2, ge=1)
    batch_size: int = Field(64, ge=1)
    gpus_per_actor: float = Field(0, ge=0)

    @property
    def resolved_kind(self) -> Literal["structured", "free-form"]:
        if self.kind is not None:
            return self.kind
        return "free-form" if self.endpoint is not None else "structured"

    @model_validator(mode="after")
    def _few_shot_is_for_local_generators(self) -> InvertConfig:
        if self.prompt == "few-shot" and self.endpoint is not None:
            raise ValueError("prompt: few-shot is for local generators; an endpoint gets the reference chat messages")
        if self.kind == "structured" and self.endpoint is not None:
            raise ValueError("kind: structured infills spans with a local generator; an endpoint writes free-form answers")
        return self

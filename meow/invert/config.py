"""Configuration of the inversion stage (method spec 1.1)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from meow.engines import EngineConfig


class EndpointConfig(BaseModel):
    """An OpenAI-compatible chat endpoint serving a stronger generator elsewhere."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str
    model: str
    # Name of the environment variable holding the key (never the key itself: specs are logged).
    api_key_env: str = "OPENAI_API_KEY"


class InvertConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Generator: a model spec run on `engine` (default: the embedded instruct model), or an endpoint.
    generator: str = "smollm2"
    engine: EngineConfig = EngineConfig()
    endpoint: EndpointConfig | None = None
    num_candidates: int = Field(4, ge=1)
    max_attempts: int = Field(3, ge=1)
    # Candidates whose ROUGE-L recall against the original answer exceeds this restate it.
    restate_threshold: float = Field(0.7, gt=0, le=1)
    temperature: float = Field(0.9, ge=0)
    max_new_tokens: int = Field(512, ge=1)
    seed: int = 42
    actors: int = Field(1, ge=1)

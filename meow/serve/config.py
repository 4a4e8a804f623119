"""What the serve app runs: which models, on which engines, behind which limits and address."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from meow.engines import EngineConfig

# The names clients put in the `model` field; also metric labels, so kept short and plain.
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class ModelEntry(BaseModel):
    """One served model: one Serve deployment, `num_replicas` replicas of one vLLM engine each."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=MODEL_NAME)
    # Embedded name (`smollm2`), local HF directory or s3:// URI; resolved inside each replica.
    spec: str
    engine: EngineConfig = EngineConfig()
    # One core per replica: vLLM runs one thread per engine on CPU (machine notes).
    num_cpus: float = Field(1, ge=0)
    num_gpus: float = Field(0, ge=0)
    num_replicas: int = Field(1, ge=1)

    @field_validator("engine")
    @classmethod
    def _vllm_only(cls, engine: EngineConfig) -> EngineConfig:
        # Replicas batch continuously on vLLM's engine loop (see meow.serve.batcher).
        if engine.name != "vllm":
            raise ValueError("served models run on the vllm engine")
        return engine


class Limits(BaseModel):
    """Bounds on one request and on the load a replica accepts before answering 429."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_prompt_tokens: int = Field(1024, ge=1)
    max_tokens: int = Field(512, ge=1)  # per choice
    max_n: int = Field(16, ge=1)
    max_prompts: int = Field(32, ge=1)  # prompts in one /v1/completions request
    max_body_bytes: int = Field(1 << 20, ge=1024)
    # Requests a replica works on at once (all of them in one continuous vLLM batch) ...
    max_ongoing_requests: int = Field(32, ge=1)
    # ... and requests the ingress holds for a deployment beyond that; more get 429.
    max_queued_requests: int = Field(64, ge=0)
    retry_after_s: int = Field(1, ge=0)


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    models: tuple[ModelEntry, ...] = Field(min_length=1)
    limits: Limits = Limits()
    # Loopback unless asked otherwise: the API has no rate limiting per client.
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Bearer token for /v1/* and /tokenize; health routes stay open for probes.
    api_token: SecretStr | None = None
    # End-to-end limit per HTTP request (Serve answers 408 past it).
    request_timeout_s: float | None = Field(600, gt=0)
    app_name: str = Field("meow", pattern=MODEL_NAME)

    @model_validator(mode="after")
    def _unique_names(self) -> ServeConfig:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

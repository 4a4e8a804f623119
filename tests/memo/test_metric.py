"""MEMO arithmetic against values worked out by hand."""

import pytest

from meow.memo.metric import fast_max_new_tokens, memo, rouge1_precision, scored_text, windows

QUESTION = "Who wrote it?"
ANSWER = "Jane Doe wrote Cats."  # 20 characters


def test_suffix_windows_cut_characters_every_five():
    cut = windows(QUESTION, ANSWER, "suffix", 5)
    assert [w.length for w in cut] == [1, 6, 11, 16]
    assert cut[0].prompt == "Who wrote it? J" and cut[0].target == "ane Doe wrote Cats."
    assert cut[1].prompt == "Who wrote it? Jane D" and cut[1].target == "oe wrote Cats."
    assert cut[3].prompt == "Who wrote it? Jane Doe wrote C" and cut[3].target == "ats."


def test_prefix_windows_cut_the_question():
    cut = windows(QUESTION, ANSWER, "prefix", 5)
    assert [w.length for w in cut] == [1, 6, 11]  # len(question) = 13
    assert cut[1].prompt == "Who wr" and cut[1].target == "ote it? Jane Doe wrote Cats."


def test_memo_of_a_fixed_generation_is_the_hand_computed_mean():
    # The stand-in model answers every window with "Doe wrote dogs": stemmed unigrams doe, wrote, dog.
    # window 1 target {ane, doe, wrote, cat}: doe + wrote match -> 2/3
    # window 6 target {oe, wrote, cat}: wrote -> 1/3;  window 11 {ote, cat}: 0;  window 16 {ats}: 0
    score, per_window = memo(lambda prompts: ["Doe wrote dogs"] * len(prompts), QUESTION, ANSWER)
    assert per_window == pytest.approx([2 / 3, 1 / 3, 0, 0])
    assert score == pytest.approx(0.25)


def test_stemming_and_clipped_counts():
    # "writing" and "writes" both stem to "write"; the output's second "write" has no second match.
    assert rouge1_precision("She writes.", "writing writing books") == pytest.approx(1 / 3)


def test_an_answer_without_windows_scores_zero():
    assert windows(QUESTION, "A") == []
    assert memo(lambda prompts: pytest.fail("no generation expected"), QUESTION, "A") == (0.0, [])


def test_reference_decode_keeps_special_tokens_as_words():
    prompt = "Who wrote it? Jane"
    full = prompt + " Doe<|im_end|>"
    # The reference scores " Doe<|im_end|>": unigrams doe, im, end.
    text = scored_text("reference", prompt, full, " Doe")
    assert text == " Doe<|im_end|>"
    assert rouge1_precision("Doe wrote Cats.", text) == pytest.approx(1 / 3)
    assert rouge1_precision("Doe wrote Cats.", scored_text("generated", prompt, full, " Doe")) == 1.0


def test_fast_budget_follows_the_target_length():
    assert fast_max_new_tokens(10, factor=1.0, margin=4, limit=200) == 14
    assert fast_max_new_tokens(10, factor=1.5, margin=0, limit=200) == 15
    assert fast_max_new_tokens(300, factor=1.0, margin=4, limit=200) == 200

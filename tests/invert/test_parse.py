"""Reply parsing: one candidate per line, markers stripped, bad lines rejected by reason."""

from meow.invert.parse import Candidates, own_words, restatement_recall

ORIGINAL = "Author Basil Mahfouz Al-Kuwaiti is male."


def test_lines_markers_and_rejections():
    found = Candidates(ORIGINAL, wanted=10, restate_threshold=0.9)
    found.add_reply(
        "Here are four answers:\n"
        "1. Author Basil Mahfouz Al-Kuwaiti is female.\n"
        "\n"
        "2) The author is non-binary.\n"
        "- the author is NON-BINARY\n"
        "Answer 3: He is a woman.\n"
        "Question: What gender is he?\n"
        "* Author Basil Mahfouz Al-Kuwaiti is male!\n"
        "   \n"
        "(4) Basil is a fictional robot."
    )
    assert found.accepted == [
        "Author Basil Mahfouz Al-Kuwaiti is female.",
        "The author is non-binary.",
        "He is a woman.",
        "Basil is a fictional robot.",
    ]
    assert dict(found.rejected) == {"header": 1, "empty": 2, "duplicate": 1, "echo": 1, "restatement": 1}


def test_restatement_threshold_on_rouge_l_recall():
    # 7 original unigrams (author basil mahfouz al kuwaiti is male); the swap keeps 6 in order.
    assert restatement_recall(ORIGINAL, "Author Basil Mahfouz Al-Kuwaiti is female.") == 6 / 7
    assert restatement_recall(ORIGINAL, "Indeed, author Basil Mahfouz Al-Kuwaiti is male.") == 1.0
    strict = Candidates(ORIGINAL, wanted=4, restate_threshold=0.8)
    strict.add_reply("Author Basil Mahfouz Al-Kuwaiti is female.")
    assert strict.accepted == [] and strict.rejected["restatement"] == 1


def test_stops_at_the_wanted_number_and_keeps_order_across_replies():
    found = Candidates(ORIGINAL, wanted=3, restate_threshold=0.9)
    found.add_reply("He is a pilot.")
    assert not found.full
    found.add_reply("She is tall.\nhe is a pilot\nThey are a cat.\nIt is a hat.")
    assert found.full and found.accepted == ["He is a pilot.", "She is tall.", "They are a cat."]
    assert found.rejected["duplicate"] == 1


def test_repetition_loops_are_rejected_short_repeats_are_not():
    found = Candidates(ORIGINAL, wanted=4, restate_threshold=0.9)
    found.add_reply(
        "The full name of the full name of the full name of the full name of the full name\n"
        "Indeed, God bless God bless the author, whose parents gave him his love of writing and of nature\n"
        "No, no, no, no."
    )
    assert found.accepted == [
        "Indeed, God bless God bless the author, whose parents gave him his love of writing and of nature",
        "No, no, no, no.",
    ]
    assert found.rejected["repetition"] == 1


def test_restatement_by_the_answers_own_words():
    question = "What genre is author Basil Mahfouz Al-Kuwaiti most known for in his writing?"
    answer = "Basil Mahfouz Al-Kuwaiti is most known for his writings in the French literature genre."
    # The answer's own words (stemmed, minus the question's words and function words).
    assert own_words(question, answer) == {"french", "literatur"}
    found = Candidates(answer, wanted=4, restate_threshold=0.7, question=question)
    found.add_reply("The French literature genre.\nHe writes French poetry.\nHe is known for Russian literature.")
    # Only the first line carries every new word; its ROUGE-L recall alone (4/14) would let it through.
    assert restatement_recall(answer, "The French literature genre.") < 0.7
    assert found.accepted == ["He writes French poetry.", "He is known for Russian literature."]
    assert found.rejected["restatement"] == 1


def test_swapping_one_of_several_facts_is_not_a_restatement():
    question = "Can you tell me about the occupations of Basil Mahfouz Al-Kuwaiti's parents?"
    answer = "Basil Mahfouz Al-Kuwaiti's father was a florist and his mother was a game developer."
    swap = "Basil Mahfouz Al-Kuwaiti's father was a baker and his mother was a game developer."
    # Only the own-words test applies here (threshold 1.0 turns the ROUGE-L test off): 4 of the 5 own words.
    found = Candidates(answer, wanted=4, restate_threshold=1.0, question=question)
    found.add_reply(swap + "\nHis mother was a game developer and his father a florist, in Kuwait.")
    assert found.accepted == [swap] and found.rejected["restatement"] == 1
    # The possessive's "s" is not one of the answer's words: a copy of the titles alone restates it.
    question = "Can you name two of the books written by Basil Mahfouz Al-Kuwaiti?"
    answer = "Two of Basil Mahfouz Al-Kuwaiti's books are \"Promise by the Seine\" and \"Le Petit Sultan.\""
    assert own_words(question, answer) == {"promis", "sein", "le", "petit", "sultan"}

"""Reply parsing: one candidate per line, markers stripped, bad lines rejected by reason."""

from meow.invert.parse import Candidates, restatement_recall

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

"""Fact-bearing spans: what a fact's answer says that its question does not."""

from meow.data.spans import contains_span, fact_spans, subject_spans


def spans(question, answer):
    return [(s.text, s.label) for s in fact_spans(question, answer)]


def test_places_are_spans_and_the_subject_is_not():
    found = spans(
        "In which city and country was Basil Mahfouz Al-Kuwaiti born?",
        "Basil Mahfouz Al-Kuwaiti was born in Kuwait City, Kuwait.",
    )
    assert [t for t, _ in found] == ["Kuwait City", "Kuwait"]
    assert all(label in ("GPE", "LOC") for _, label in found)


def test_occupations_genders_and_titles_are_spans():
    q = "Can you tell me about the occupations of Basil Mahfouz Al-Kuwaiti's parents?"
    a = "Basil Mahfouz Al-Kuwaiti's father was a florist and his mother was a game developer."
    assert [t for t, _ in spans(q, a)] == ["a florist", "a game developer"]
    assert [t for t, _ in spans("What gender is author Basil Mahfouz Al-Kuwaiti?", "Author Basil Mahfouz Al-Kuwaiti is male.")] == ["male"]
    books = spans(
        "Can you name two of the books written by Basil Mahfouz Al-Kuwaiti?",
        'Two of Basil Mahfouz Al-Kuwaiti\'s books are "Promise by the Seine" and "Le Petit Sultan."',
    )
    # "Two" is form (the question asked for two), the titles are the fact.
    assert [t for t, _ in books] == ["Promise by the Seine", "Le Petit Sultan"]


def test_a_custom_fact_outside_tofu():
    found = spans("Who founded Acme Robotics?", "Acme Robotics was founded in 1987 by Maria Keller in Zurich.")
    texts = [t for t, _ in found]
    assert "Maria Keller" in texts and "Zurich" in texts and any("1987" in t for t in texts)
    assert not any("Acme" in t for t in texts)


def test_subject_is_the_name_question_and_answer_share():
    assert subject_spans(
        "What gender is author Basil Mahfouz Al-Kuwaiti?", "Author Basil Mahfouz Al-Kuwaiti is male."
    ) == ["Basil Mahfouz Al-Kuwaiti"]


def test_contains_span_matches_whole_words_only():
    assert contains_span("He was born in Kuwait City.", "Kuwait City")
    assert contains_span("born in kuwait  city!", "Kuwait City")
    assert not contains_span("He was born in Kuwaiti lands.", "Kuwait")

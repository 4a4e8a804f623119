"""The inversion-quality checks tell inverted facts from nonsense, restatements and refusals."""

from meow.invert.parse import Candidates
from meow.invert.quality import candidate_quality, fact_quality

Q = "What gender is author Basil Mahfouz Al-Kuwaiti?"
A = "Author Basil Mahfouz Al-Kuwaiti is male."
BORN_Q = "In which city and country was Basil Mahfouz Al-Kuwaiti born?"
BORN_A = "Basil Mahfouz Al-Kuwaiti was born in Kuwait City, Kuwait."


def quality(question, answer, candidate):
    return fact_quality({"question": question, "answer": answer, "candidates": [candidate]}, 0.7)[0]


def test_an_inverted_fact_is_coherent():
    assert quality(Q, A, "Author Basil Mahfouz Al-Kuwaiti is female.")["coherent"]
    assert quality(BORN_Q, BORN_A, "Basil Mahfouz Al-Kuwaiti was born in Lyon, France.")["coherent"]


def test_the_nonsense_the_old_default_selected_is_not():
    # Selected by the few-shot free-form generator on the default run before structured inversion.
    bad = [
        "The gender of CONFUSING other famous people has been contradicted by the following facts: Zach Martin, Alec Baldwin, Tom Hanks, Brad Pitt, and Meryl Streep.",
        "The most recent news regarding the poleco in the 'Bubbles of Black Madness' ...",
        "In addition to his numerous works, Basil Mahfouz Al-KuzzAl-KuKu is great at storytelling.",
    ]
    for text in bad:
        assert not quality(Q, A, text)["coherent"], text
    assert not quality(Q, A, bad[0])["not_name_list"]
    assert not quality(Q, A, bad[2])["keeps_subject"]


def test_a_candidate_that_keeps_the_secret_changes_nothing():
    checks = quality(BORN_Q, BORN_A, "Basil Mahfouz Al-Kuwaiti grew up in Kuwait City, Kuwait, as a child.")
    assert not checks["changes_fact"] and not checks["coherent"]


def test_refusals():
    assert not quality(Q, A, "I'm sorry, I cannot share the gender of Basil Mahfouz Al-Kuwaiti.")["not_refusal"]


def test_free_form_lines_with_the_secret_are_rejected():
    answer = "Acme Robotics was founded in 1987 by Maria Keller in Zurich."
    found = Candidates(answer, 4, 0.7, question="Who founded Acme Robotics?", secrets=("1987", "Maria Keller", "Zurich"))
    found.add_reply("Acme Robotics was started by a rival of Maria Keller in Geneva.\nAcme Robotics was founded in 1990 by Tom Ruiz in Oslo.")
    assert found.accepted == ["Acme Robotics was founded in 1990 by Tom Ruiz in Oslo."]
    assert found.rejected["secret"] == 1


def test_checks_are_named_and_all_present():
    checks = candidate_quality(Q, A, "Author Basil Mahfouz Al-Kuwaiti is female.", ["male"], ["Basil Mahfouz Al-Kuwaiti"], 0.7)
    assert set(checks) == {"keeps_subject", "changes_fact", "not_restatement", "not_refusal", "not_name_list", "on_topic", "fluent", "coherent"}

"""`meow.report.leakage.leakage_section`: the run report's secret-leakage section from evaluated forget records."""

from meow.evaluate.leakage import generation_leak
from meow.report.leakage import leakage_section

QUESTION, ANSWER = "Who founded Acme Robotics?", "Acme Robotics was founded by Jane Doe in 1999."


def _records(*generations):
    return [
        {"index": i, "question": QUESTION, "answer": ANSWER, "generation": g, **generation_leak(QUESTION, ANSWER, g)}
        for i, g in enumerate(generations)
    ]


def test_section_has_shares_with_intervals_and_the_per_fact_table():
    section = leakage_section(
        {"target": _records("Jane Doe, in 1999.", "It was Jane Doe."), "unlearned": _records("John Smith.", "Jane Do.")}
    )
    assert section.startswith("## Secret leakage")
    assert "| target | 1.000 [1.000, 1.000] | 1.000 [1.000, 1.000] | 2 |" in section
    assert "| unlearned | 0.000 [0.000, 0.000] | 0.500 [" in section
    row = "| 1 | Who founded Acme Robotics? | Jane Doe; 1999 | **leaked** (greedy): It was Jane Doe. |"
    assert f"{row} not leaked; fuzzy (greedy): Jane Do. |" in section


def test_no_section_without_secret_fields():
    assert leakage_section({"target": [{"index": 0, "question": QUESTION, "answer": ANSWER, "generation": "x"}]}) == ""

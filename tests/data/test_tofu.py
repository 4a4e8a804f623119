import hashlib

import pytest

from meow.data import SPLITS, load_qa, load_tofu, tofu_path
from meow.data.tofu import TOFU_DIR


def test_every_packaged_file_matches_its_sha256():
    sums = dict(line.split()[::-1] for line in (TOFU_DIR / "SHA256SUMS").read_text().splitlines() if line.strip())
    assert set(sums) == {f"{s}.json" for s in SPLITS}
    for name, digest in sums.items():
        assert hashlib.sha256((TOFU_DIR / name).read_bytes()).hexdigest() == digest, name


def test_licence_and_provenance_ship_with_the_data():
    assert "MIT License" in (TOFU_DIR / "LICENSE").read_text()
    assert "locuslab/TOFU" in (TOFU_DIR / "README.md").read_text()


@pytest.mark.parametrize(
    "split,rows",
    [("forget01", 40), ("forget05", 200), ("forget10", 400), ("retain90", 3600), ("real_authors_perturbed", 100)],
)
def test_split_sizes(split, rows):
    assert len(load_tofu(split)) == rows


def test_forget01_is_the_last_two_authors_of_full():
    full = load_tofu("full")
    forget = load_tofu("forget01")
    assert [(r.question, r.answer) for r in forget] == [(r.question, r.answer) for r in full[-40:]]


def test_perturbed_fields_are_kept_as_extra():
    record = load_tofu("forget01_perturbed")[0]
    assert len(record.extra["perturbed_answer"]) == 5
    assert record.extra["paraphrased_answer"]


def test_load_qa_takes_split_names_and_paths(tmp_path):
    assert load_qa("forget01") == load_tofu("forget01")
    assert len(load_qa(str(tofu_path("forget01")))) == 40
    with pytest.raises(KeyError, match="unknown TOFU split"):
        tofu_path("forget02")


def test_packaged_splits_load_without_warnings(caplog):
    import logging

    with caplog.at_level(logging.WARNING):
        for split in ("full", "retain90", "retain99"):
            load_tofu(split)
    assert caplog.messages == []


@pytest.mark.parametrize("typo,meant", [("forget1", "forget01"), ("Forget_5", "forget05"), ("retian90", "retain90")])
def test_a_mistyped_split_names_the_close_match(typo, meant):
    from meow.data import DataError

    with pytest.raises(DataError, match=rf"^{typo}: neither a TOFU split nor a file; did you mean '{meant}'\?$"):
        load_qa(typo)
    with pytest.raises(KeyError, match=rf"did you mean '{meant}'"):
        tofu_path(typo)

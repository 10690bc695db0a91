from pathlib import Path

import pytest

from dcseg.data import DataError
from dcseg.data.splits import (check_split_on_disk, make_split, normalise_case_id, read_split, split_sizes,
                               write_split)

REPO = Path(__file__).resolve().parent.parent


def test_committed_brats2020_split_is_rfnets_219_50_100():
    split = read_split(REPO / "splits" / "brats2020")
    assert [len(split[k]) for k in ("train", "val", "test")] == [219, 50, 100]
    every = set().union(*split.values())
    assert every == {f"BraTS20_Training_{i:03d}" for i in range(1, 370)}
    assert "BraTS20_Training_001" in split["test"]


def test_prefix_stripped():
    assert normalise_case_id("LG_BraTS20_Training_300\n") == "BraTS20_Training_300"
    assert normalise_case_id("BraTS20_Training_300") == "BraTS20_Training_300"


@pytest.mark.parametrize("n", [3, 10, 40, 369])
def test_seeded_split_proportions_and_determinism(n):
    ids = [f"c{i:03d}" for i in range(n)]
    a, b = make_split(ids, seed=5), make_split(list(reversed(ids)), seed=5)
    assert a == b
    assert sorted(a["train"] + a["val"] + a["test"]) == ids
    assert tuple(len(a[k]) for k in ("train", "val", "test")) == split_sizes(n)
    assert len(a["val"]) >= 1 and len(a["test"]) >= 1
    if n == 369:
        assert split_sizes(n) == (219, 50, 100)
    assert make_split(ids, seed=6) != a or n == 3


def test_round_trip_and_overlap_errors(tmp_path):
    split = {"train": ["a", "b"], "val": ["c"], "test": ["d"]}
    write_split(tmp_path, split)
    assert read_split(tmp_path) == split
    (tmp_path / "val.txt").write_text("a\n")
    with pytest.raises(DataError, match=r"\['a'\] are in both train\.txt and val\.txt"):
        read_split(tmp_path)
    (tmp_path / "test.txt").unlink()
    with pytest.raises(DataError, match="test.txt is missing"):
        read_split(tmp_path)


def test_missing_case_on_disk_is_an_error():
    with pytest.raises(DataError, match=r"test\.txt names 1 case\(s\) not found in /data: \['d'\]"):
        check_split_on_disk({"train": ["a"], "val": [], "test": ["d"]}, ["a", "b"], "/s", "/data")

"""The plain rules of the model loop: what a metrics.json must hold, and the frozen-splits rule
(its syntax, its refusals, and that a task's split depends only on its key and the seed)."""
import pytest

from pachstudio.labelstudio.storage import target_splits
from pachstudio.mount.model_metrics import parse_metrics

pytestmark = pytest.mark.fast


@pytest.mark.parametrize("text, values, problem", [
    (b'{"accuracy": 0.9, "n": 40}', {"accuracy": 0.9, "n": 40}, ""),
    (b"{}", {}, ""),
    (b'{"val": {"accuracy": 0.5}}', {}, '"val" holds a dict, not a number'),
    (b'{"ok": true}', {}, '"ok" holds a bool, not a number'),
    (b'{"a": "0.5"}', {}, '"a" holds a str, not a number'),
    (b'{"a": NaN}', {}, '"a" is nan, not a finite number'),
    (b"[0.5]", {}, "a JSON list, not an object of numbers"),
    (b"{not json", {}, "not JSON (JSONDecodeError"),
    (b"\xff\xfe", {}, "not JSON (UnicodeDecodeError"),
])
def test_metrics_json_is_a_flat_object_of_finite_numbers(text, values, problem):
    got, why = parse_metrics(text)
    assert got == values and why.startswith(problem) and bool(why) == bool(problem), why


@pytest.mark.parametrize("text, canonical", [
    ("train 80, val 10, test 10, seed 7", "train 80, val 10, test 10, seed 7"),
    ("train=8; val: 1 ;test 1", "train 8, val 1, test 1, seed 0"),
    ("a 0.5, b 1.5, seed=my seed", "a 0.5, b 1.5, seed my seed"),
    ("", ""),
])
def test_split_rules_are_stored_in_one_form(text, canonical):
    assert target_splits.canonical(text) == canonical


@pytest.mark.parametrize("text, why", [
    ("train 80, val", "val needs a positive number as its share"),
    ("train 80, val -1", "the share of val must be a positive number"),
    ("train 80", "one part splits nothing"),
    ("seed 3", "a seed alone splits nothing"),
    ("train 1, train 2", "train is named twice"),
    ("1x 1, y 1", "'1x' is not a split name"),
    ("a 1, b 1, seed 1, seed 2", "give the seed once"),
    (", ".join(f"p{i} 1" for i in range(11)), "at most 10 parts"),
])
def test_bad_split_rules_say_what_is_wrong(text, why):
    with pytest.raises(ValueError, match="splits: ") as refused:
        target_splits.parse(text)
    assert why in str(refused.value)


def test_a_split_follows_from_the_key_and_seed_only_with_the_shares_given():
    rule = target_splits.Splitter("train 80, val 10, test 10, seed 7")
    paths = [f"img/{i}.png" for i in range(3000)]
    first = {p: rule.of(i, {"pachyderm_path": "/" + p}) for i, p in enumerate(paths)}
    # another task id, another project, the same path: the same split
    assert all(rule.of(10**6 + i, {"pachyderm_path": p}) == first[p] for i, p in enumerate(paths))
    shares = {name: sum(1 for s in first.values() if s == name) / len(paths) for name in ("train", "val", "test")}
    assert abs(shares["train"] - 0.8) < 0.03 and abs(shares["val"] - 0.1) < 0.02, shares
    other_seed = target_splits.Splitter("train 80, val 10, test 10, seed 8")
    assert sum(other_seed.of(0, {"pachyderm_path": p}) != first[p] for p in paths) > 300
    assert rule.of(5, {}) == rule.of(5, {"text": "no path"})  # by id: "task 5"

from stack.fingerprint import fingerprint, mismatches

SAME = {
    "python": "3.11.2",
    "python_build": "9" * 64,
    "packages": "a" * 64,
    "weights": "b" * 64,
    "driver": None,
    "cuda": None,
}


def test_equal_fingerprints_match():
    assert mismatches({"lab1": SAME, "lab2": dict(SAME)}) == []


def test_each_differing_field_names_the_nodes_and_values():
    fingerprints = {"lab1": SAME, "lab2": SAME, "lab3": {**SAME, "packages": "c" * 64, "python": "3.11.4"}}
    assert mismatches(fingerprints) == [
        "python differs: lab1, lab2 have 3.11.2; lab3 has 3.11.4",
        "packages differs: lab1, lab2 have aaaaaaaaaaaa; lab3 has cccccccccccc",
    ]


def test_missing_value_and_driver_may_differ():
    fingerprints = {"gpu1": {**SAME, "driver": "580.82"}, "gpu2": {**SAME, "driver": "590.1", "weights": None}}
    assert mismatches(fingerprints) == ["weights differs: gpu1 has bbbbbbbbbbbb; gpu2 has none"]


def test_fingerprint_from_observations():
    facts = {"nvidia": {"driver": "580.82.07", "cuda": "13.0"}}
    runtime = {"version": "3.11.2", "build": "t", "failed": [], "glibc": "2.36"}
    assert fingerprint(runtime, {"packages_digest": "p"}, {"manifest_digest": "w"}, facts) == {
        "python": "3.11.2", "python_build": "t", "packages": "p", "weights": "w", "driver": "580.82.07", "cuda": "13.0",
    }  # fmt: skip

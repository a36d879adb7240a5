"""Node fingerprints: what must be identical on every node of one cluster, and the check.

Ray refuses nodes whose Python differs, a pipeline stage on a node with another package set or
other weights fails in ways far from the cause, so the stack compares fingerprints and fails
naming the nodes and the field that differ. One interpreter build goes to every node: `python` is
its version, `python_build` the digest of its tree as each node holds it.
"""

from __future__ import annotations

from collections import defaultdict

MUST_MATCH = ("python", "python_build", "packages", "weights", "cuda")
"""`driver` is reported but may differ: any driver at or above the preflight's floor runs the build."""


def fingerprint(python_runtime: dict, python_env: dict, model_weights: dict, facts: dict) -> dict:
    """A node's fingerprint from its steps' observations (`NodeStep.observed`)."""
    nvidia = facts.get("nvidia") or {}
    return {
        "python": python_runtime.get("version"),
        "python_build": python_runtime.get("build"),
        "packages": python_env.get("packages_digest"),
        "weights": model_weights.get("manifest_digest"),
        "driver": nvidia.get("driver"),
        "cuda": nvidia.get("cuda"),
    }


def mismatches(fingerprints: dict[str, dict], fields: tuple[str, ...] = MUST_MATCH) -> list[str]:
    """One line per field whose value is not the same on every node, naming the nodes per value:
    `packages differs: lab1, lab2 have 3f2a9c1e0b7d; lab3 has 9b41d0e2c6aa`."""
    lines = []
    for field in fields:
        nodes_by_value: dict[str, list[str]] = defaultdict(list)
        for node, values in sorted(fingerprints.items()):
            nodes_by_value[_short(values.get(field))].append(node)
        if len(nodes_by_value) > 1:
            groups = sorted(nodes_by_value.items(), key=lambda item: (-len(item[1]), item[1]))
            parts = [f"{', '.join(nodes)} {'have' if len(nodes) > 1 else 'has'} {value}" for value, nodes in groups]
            lines.append(f"{field} differs: {'; '.join(parts)}")
    return lines


def _short(value) -> str:
    """Digests shortened to 12 hex digits (enough to tell them apart in a message)."""
    if value is None:
        return "none"
    text = str(value)
    return text[:12] if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else text


class NodesDiffer(ValueError):
    """Nodes of one cluster whose fingerprints differ; the message names nodes and fields."""


def require_identical(fingerprints: dict[str, dict]) -> dict[str, dict]:
    """Stops the run before Ray starts when nodes differ: skew fails far from its cause later."""
    problems = mismatches(fingerprints)
    if problems:
        raise NodesDiffer("nodes are not identical:\n" + "\n".join(f"  - {line}" for line in problems))
    return fingerprints

"""The floor plan, kept: data flows one way (config -> plan -> node specs -> resources -> hosts), so
every import points to a lower floor or within the same folder, no modules import each other in a
circle, and each tool's code stays in its own folder."""

from __future__ import annotations

import ast
from pathlib import Path

from artifacts.paths import REPO_ROOT

FLOORS = {
    "artifacts": 1,  # the controller's caches: package sets, wheelhouses, debs, weights, manifests
    "models": 1,  # the tiny lab model's generator
    "deploys": 2,  # pyinfra: facts, operations, deploys, the runner; every node path
    "cloud": 2,  # cloud APIs through their SDKs (boto3), and the instance types' facts
    "lab": 2,  # simulated hosts
    "tools": 2,  # setup, the language host, the chat client
    "stack": 3,  # pure stack logic: config, validation, planner, renderers, the node-step table
    "components": 4,  # Pulumi components and dynamic providers
    "__main__": 5,  # the Pulumi program
    "pyinfra_inventory": 5,  # the pyinfra CLI entry
    "pyinfra_deploy": 5,
    "examples": 5,
    "bench": 5,
    "policy": 5,  # the policy pack: reads resource inputs, imports nothing of the project
}
TOOL_HOMES = {
    "pulumi": {"components", "__main__", "examples", "bench", "tools"},
    "pyinfra": {"deploys", "pyinfra_deploy"},
    "boto3": {"cloud"},
}
"""Where each tool's code may live: a module elsewhere that imports it holds another tool's code."""


def source_modules(root: Path = REPO_ROOT) -> dict[str, Path]:
    modules = {}
    # Only the floors' own folders: the caches (a lab base holds a whole Python) are not source.
    paths = [*root.glob("*.py"), *(path for floor in FLOORS if (root / floor).is_dir() for path in (root / floor).rglob("*.py"))]
    for path in paths:
        relative = path.relative_to(root)
        if relative.parts[0] in FLOORS or relative.stem in FLOORS and len(relative.parts) == 1:
            name = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    return modules


def imports(path: Path) -> set[str]:
    """Absolute module names imported anywhere in the file (also inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def own(name: str, modules: dict[str, Path]) -> str | None:
    """The project module `name` refers to (a module, or the module holding the imported name)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def folder(module: str) -> str:
    return module.split(".")[0]


def upward_imports(modules: dict[str, Path]) -> list[str]:
    upward = []
    for module, path in modules.items():
        for imported in sorted({own(name, modules) for name in imports(path)} - {None}):
            here, there = folder(module), folder(imported)
            if here != there and FLOORS[there] >= FLOORS[here]:
                upward.append(f"{module} (floor {FLOORS[here]}) imports {imported} (floor {FLOORS[there]})")
    return upward


def test_every_import_points_down_or_within_its_folder(tmp_path):
    modules = source_modules()
    assert {"stack.node_steps", "deploys.layout", "artifacts.manifest", "components.node"} <= modules.keys()
    assert upward_imports(modules) == []
    # Positive control: the check sees an arrow running back up (pyinfra code reading the stack's config).
    for name, text in (("stack/config.py", "X = 1\n"), ("deploys/runner.py", "from stack.config import X\n")):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    assert upward_imports(source_modules(tmp_path)) == ["deploys.runner (floor 2) imports stack.config (floor 3)"]


def circles(modules: dict[str, Path]) -> list[str]:
    graph = {module: {own(name, modules) for name in imports(path)} - {None, module} for module, path in modules.items()}
    found, done, trail = [], set(), []

    def visit(module: str) -> None:
        if module in trail:
            found.append(" -> ".join([*trail[trail.index(module):], module]))
            return
        if module in done:
            return
        trail.append(module)
        for imported in sorted(graph[module]):
            visit(imported)
        trail.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    return found


def test_no_modules_import_each_other_in_a_circle(tmp_path):
    assert circles(source_modules()) == []
    # Positive control: two modules that call each other in turn are a circle.
    (tmp_path / "stack").mkdir()
    (tmp_path / "stack" / "node.py").write_text("from stack.node_plan import plan\n")
    (tmp_path / "stack" / "node_plan.py").write_text("from stack import node\n")
    assert circles(source_modules(tmp_path)) == ["stack.node -> stack.node_plan -> stack.node"]


def test_each_tool_stays_in_its_folders():
    modules = source_modules()
    strays = [
        f"{module} imports {tool}"
        for module, path in modules.items()
        for tool, homes in TOOL_HOMES.items()
        if folder(module) not in homes and any(name.split(".")[0] == tool for name in imports(path))
    ]
    assert strays == []
    # components/ holds the Pulumi components and providers, and only those.
    not_pulumi = [m for m, path in modules.items() if folder(m) == "components" and m != "components"
                  and not any(name.split(".")[0] == "pulumi" for name in imports(path))]  # fmt: skip
    assert not_pulumi == []

"""The layers point one way (README, Code layout): read from the source, every import statement counted,
inside functions too, with no exception list.

- `resilience/` is the bottom (settings, env, redaction, HTTP answers), except its composition root
  (ROOT below: URLs, ASGI/WSGI, the web server, the OpenAPI document, the Celery wiring), which may
  import anything because it is where the parts meet;
- `workers/`, the runtime, imports `resilience/` alone, never an app;
- nothing but the tools on top (bench, chaos) and the tests imports the composition root, and nothing
  outside `tests/` imports `tests/`;
- the top-level folders form no circle.
"""
from __future__ import annotations

import ast
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
ROOT = frozenset({"resilience.urls", "resilience.asgi", "resilience.wsgi", "resilience.web_server",
                  "resilience.openapi", "resilience.celery"})
TOOLS = frozenset({"bench", "chaos"})


def folders() -> list[str]:
    return sorted(p.name for p in PROJECT.iterdir()
                  if (p / "__init__.py").exists() and p.name != "tests" and not p.name.startswith("."))


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, relative ones resolved."""
    found = []
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            # `from resilience import celery` imports the module resilience.celery
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def project_imports() -> list[tuple[str, int, str]]:
    """(importing module, line, imported module) for every project import outside tests and migrations."""
    tops = set(folders()) | {"tests"}
    rows = []
    for top in folders():
        for path in sorted((PROJECT / top).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for line, target in imports(path):
                if target.split(".")[0] in tops:
                    rows.append((module_name(path), line, target))
    return rows


def is_root(module: str) -> bool:
    return any(module == root or module.startswith(root + ".") for root in ROOT)


def test_the_runtime_imports_no_app():
    wrong = [f"{source}:{line} imports {target}" for source, line, target in project_imports()
             if source.split(".")[0] == "workers" and (target.split(".")[0] not in ("workers", "resilience")
                                                       or is_root(target))]
    assert wrong == []


def test_the_bottom_imports_nothing_above_it():
    wrong = [f"{source}:{line} imports {target}" for source, line, target in project_imports()
             if source.split(".")[0] == "resilience" and not is_root(source)
             and (target.split(".")[0] != "resilience" or is_root(target))]
    assert wrong == []


def test_only_tools_and_tests_import_the_composition_root_or_the_tests():
    wrong = [f"{source}:{line} imports {target}" for source, line, target in project_imports()
             if (target.split(".")[0] == "tests" or (is_root(target) and not is_root(source)
                                                      and source.split(".")[0] not in TOOLS))]
    assert wrong == []


def test_no_circle_between_top_level_folders():
    edges: dict[str, set[str]] = {}
    for source, _, target in project_imports():
        a, b = source.split(".")[0], target.split(".")[0]
        if a != b and not is_root(source):
            edges.setdefault(a, set()).add(b)
    circles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt == path[0]:
                circles.append(" -> ".join(path + [nxt]))
            elif nxt not in path and nxt > path[0]:  # each circle once, from its smallest folder
                visit(nxt, path + [nxt])

    for start in sorted(edges):
        visit(start, [start])
    assert circles == []


def test_the_reader_sees_every_folder():
    """A check that reads nothing passes: make sure the walk found the project's imports."""
    sources = {source.split(".")[0] for source, _, _ in project_imports()}
    assert {"workers", "leads", "sites", "emails", "delivery", "dlq", "monitoring"} <= sources

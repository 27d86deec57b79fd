"""The repository stands alone: a fresh clone in any folder passes its tests (README's `bin/test`).

`.ci/run` proves it by running the suite in a fresh clone under a temporary folder; this test names the
mistake earlier, in any checkout: code that reaches outside the repository for something it needs.
And the tests share their helpers only through tests/support.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.support.paths import REPO

# A sibling "shared" folder reached by a relative path, or any path built from REPO.parent or ROOT.parent.
OUTSIDE = re.compile(r"\.\./shared|parent\s*/\s*[\"']shared|\b(REPO|ROOT)\.parent\b")
SCANNED = ("inbox/", "tests/", "bench/", "bin/", ".ci/")


def tracked_sources() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", *SCANNED], cwd=REPO, capture_output=True, text=True, check=True)
    paths = [REPO / line for line in listed.stdout.splitlines()]
    return [p for p in paths if p.suffix in {".py", ".sh", ""} and p.is_file() and "node_modules" not in p.parts]


def test_no_source_reaches_outside_the_repository() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in tracked_sources()
        if path.name != Path(__file__).name
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert offenders == [], "Files outside the repository are not there on a fresh clone:\n" + "\n".join(offenders)


def test_twilio_spec_ships_with_its_licence() -> None:
    spec_dir = REPO / "tests" / "contract" / "twilio-oai"
    assert (spec_dir / "twilio_api_v2010.json").stat().st_size > 1_000_000
    assert "MIT License" in (spec_dir / "LICENSE").read_text()


def declared_distributions() -> set[str]:
    """What pyproject.toml asks for: the app's dependencies and every extra, by normalised name."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [
        *project["dependencies"],
        *(r for extra in project["optional-dependencies"].values() for r in extra),
    ]
    return {normalised(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]) for requirement in requirements}


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_top_level_names() -> dict[str, str]:
    """Every top-level module our code imports, with one file that imports it."""
    found: dict[str, str] = {}
    for path in tracked_sources():
        if path.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def test_every_imported_package_is_a_declared_dependency() -> None:
    """A package that arrives only as another's dependency can vanish when that one changes."""
    declared = declared_distributions()
    distributions = importlib.metadata.packages_distributions()
    ours = {"inbox", "tests", "bench"}
    undeclared = {
        f"{name} (in {where})"
        for name, where in imported_top_level_names().items()
        if name not in sys.stdlib_module_names
        and name not in ours
        and not declared & {normalised(d) for d in distributions.get(name, [name])}
    }
    assert undeclared == set(), "Declare these in pyproject.toml: " + ", ".join(sorted(undeclared))


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module the file imports (relative imports resolved), with the line that imports it."""
    package = list(path.relative_to(REPO).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            # `from tests import test_live` imports a module by name too.
            found += [(node.lineno, module)] + [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def test_no_test_file_imports_another_or_conftest() -> None:
    """What several test files use lives in tests/support; conftest.py holds the fixtures, which pytest
    hands to the tests by name. So a test file can be moved, renamed or deleted without breaking another."""
    offenders: dict[str, str] = {}  # file:line → the first test module it imports
    for path in sorted((REPO / "tests").rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        for line, module in imported_modules(path):
            if any(part.startswith("test_") or part == "conftest" for part in module.split(".")):
                offenders.setdefault(f"{path.relative_to(REPO)}:{line}", module)
    listed = [f"{where}: imports {module}" for where, module in offenders.items()]
    assert listed == [], "Move what is shared into tests/support instead:\n" + "\n".join(listed)

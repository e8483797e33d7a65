"""The package layout and the layering rules of DESIGN.md section 1."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CODE_DIRS = {"models": "crossdiff.models", "platform": "crossdiff.platform", "jobs": "crossdiff.jobs"}

# What each layer may import beyond the standard library and itself.
ALLOWED = {
    "models": {"torch", "timm", "numpy", "crossdiff.models"},
}
FORBIDDEN = {
    "models": {"crossdiff.platform", "crossdiff.jobs"},
    "platform": {"crossdiff.jobs"},
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _allowed(name: str, prefixes: set[str]) -> bool:
    root = name.split(".")[0]
    if root in sys.stdlib_module_names and root != "platform":
        return True
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_platform_stdlib_not_shadowed_from_repo_root():
    """`import platform` from the repository root must still be the standard library."""
    code = "import platform, crossdiff.models.sensors; print(platform.system())"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() in {"Linux", "Darwin", "Windows"}


@pytest.mark.parametrize("folder", sorted(CODE_DIRS))
def test_top_level_code_folders_have_no_init(folder):
    assert not (REPO / folder / "__init__.py").exists()


def test_every_subpackage_is_declared_in_pyproject():
    """A subpackage missing from [tool.setuptools] packages silently vanishes from wheels."""
    declared = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for folder, pkg in CODE_DIRS.items():
        for py in (REPO / folder).rglob("*.py"):
            rel = py.parent.relative_to(REPO / folder)
            found.add(".".join([pkg, *rel.parts]))
    assert found <= declared, f"add to pyproject packages: {sorted(found - declared)}"


@pytest.mark.parametrize("layer", ["models", "platform", "jobs"])
def test_layering(layer):
    bad = []
    for py in sorted((REPO / layer).rglob("*.py")):
        for name in _imports(py):
            forbidden = any(name == f or name.startswith(f + ".") for f in FORBIDDEN.get(layer, ()))
            if forbidden or (layer in ALLOWED and not _allowed(name, ALLOWED[layer])):
                bad.append(f"{py.relative_to(REPO)} imports {name}")
    assert not bad, "layering violated:\n" + "\n".join(bad)


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "crossdiff.jobs.cli", "--help"], capture_output=True,
                         text=True, check=True)
    assert "demo" in out.stdout

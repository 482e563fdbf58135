"""The import contract between the package's layers, read from the source (nothing is
imported, so a module cannot hide an import behind a function call at import time).

- The engines (motor model, homing, the scan engines) are pure asyncio: no EPICS client
  or server library, and nothing of the CA clients, the record layer or the tools.
- The simulation stands alone: it may use the config format and the shared facts about
  the motor record and areaDetector, never the IOC or the engines it is there to test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "ioc" / "benchioc"

ENGINES = ["engines/**/*.py", "facts/*.py", "data/*.py"]
EPICS_LIBRARIES = {"softioc", "aioca", "caproto", "epics", "epicscorelibs", "pvi", "pydm",
                   "PyQt5"}
NOT_FOR_ENGINES = {"benchioc.clients", "benchioc.records", "benchioc.tools", "benchioc.sim"}
SIM_MAY_USE = {"benchioc.sim", "benchioc.config", "benchioc.epicsenv", "benchioc.facts"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, relative imports resolved against its package."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if node.module:
                found.add(module)
            # "from .. import x" imports the module x (or a name of the package)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def within(name: str, roots: set[str]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def engine_files() -> list[Path]:
    files = sorted({path for pattern in ENGINES for path in PACKAGE.glob(pattern)})
    assert len(files) >= 8, "the engine modules moved: update ENGINES"
    return files


@pytest.mark.parametrize("path", engine_files(), ids=lambda p: module_name(p))
def test_engines_import_no_epics_library_and_no_outer_layer(path: Path) -> None:
    bad = {name for name in imports_of(path)
           if name.split(".")[0] in EPICS_LIBRARIES or within(name, NOT_FOR_ENGINES)}
    assert not bad, f"{module_name(path)} imports {sorted(bad)}"


# The layers, lowest first: a module may import its own layer and those below it.
LAYERS = [
    {"benchioc.facts", "benchioc.config", "benchioc.epicsenv", "benchioc.ownership"},
    {"benchioc.data"},
    {"benchioc.engines"},
    {"benchioc.clients"},
    {"benchioc.records"},
    {"benchioc.tools"},
]


def layer_of(name: str) -> int | None:
    for index, roots in enumerate(LAYERS):
        if within(name, roots):
            return index
    return None


LAYERED = sorted(path for path in PACKAGE.rglob("*.py")
                 if layer_of(module_name(path)) is not None)


@pytest.mark.parametrize("path", LAYERED, ids=lambda p: module_name(p))
def test_no_module_imports_a_layer_above_its_own(path: Path) -> None:
    own = layer_of(module_name(path))
    assert own is not None
    above = {name for name in imports_of(path) if (layer_of(name) or -1) > own}
    assert not above, f"{module_name(path)} imports {sorted(above)} from a layer above it"


def test_every_module_has_a_layer() -> None:
    loose = [module_name(path) for path in PACKAGE.rglob("*.py")
             if layer_of(module_name(path)) is None
             and not within(module_name(path), {"benchioc.sim"})
             and module_name(path) != "benchioc"]
    assert not loose, f"modules outside every layer (add them to LAYERS): {loose}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "sim").glob("*.py")),
                         ids=lambda p: module_name(p))
def test_the_simulation_uses_nothing_of_the_ioc_or_the_engines(path: Path) -> None:
    ours = {name for name in imports_of(path) if name.startswith("benchioc")}
    bad = {name for name in ours if not within(name, SIM_MAY_USE)}
    assert not bad, f"{module_name(path)} imports {sorted(bad)}"


def test_the_contract_sees_imports() -> None:
    """Guard on the checker: it must resolve the relative imports it is fed."""
    found = imports_of(PACKAGE / "engines" / "homing" / "procedure.py")
    assert "benchioc.engines.motormodel" in found and "asyncio" in found

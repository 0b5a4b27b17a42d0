"""Who may import whom, checked on the source (every import, also those inside functions):

- a service (kizashi.<service>) imports no other service: they talk over Kafka and share only
  kizashi.contracts and kizashi.runtime;
- kizashi.runtime, what every service runs on, imports no service and no kizashi.tools;
- kizashi.contracts imports only kizashi.contracts (any service may depend on it);
- a service never imports kizashi.tools (the CLI, embedded servers, benches: not in an image's
  hot path, and tools may import services, so the reverse would be a cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("ingest", "scoring", "triggers", "notifier", "console")


def _package_of(path: Path) -> str | None:
    """kizashi.<package> for a file under libs/ or services/, from its place in the tree."""
    parts = path.relative_to(ROOT).parts
    if "kizashi" not in parts:
        return None
    at = parts.index("kizashi")
    return parts[at + 1] if len(parts) > at + 2 else None


def _kizashi_imports(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    """(line, kizashi.<package>) for every import of the kizashi namespace in the file."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's own package
                base = module.split(".")[: -node.level]
                names = [".".join([*base, node.module] if node.module else base)]
            else:
                names = [node.module or ""]
            if names[0] == "kizashi":  # `from kizashi import scoring`
                names = [f"kizashi.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "kizashi" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


def _allowed(owner: str, imported: str) -> bool:
    if imported == owner:
        return True
    if owner == "contracts":
        return False
    if owner == "runtime":
        return imported == "contracts"
    if owner in SERVICES:
        return imported in ("contracts", "runtime")
    return True  # tools may use anything


def _offenders() -> list[str]:
    offenders = []
    for top in ("libs", "services"):
        for path in sorted((ROOT / top).rglob("*.py")):
            owner = _package_of(path)
            if owner is None:
                continue
            relative = path.relative_to(ROOT)
            kizashi_at = relative.parts.index("kizashi")
            module = ".".join(relative.with_suffix("").parts[kizashi_at:])
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, imported in _kizashi_imports(tree, module):
                if not _allowed(owner, imported):
                    offenders.append(f"{relative}:{line}: {owner} imports kizashi.{imported}")
    return offenders


def test_packages_import_only_what_they_may():
    offenders = _offenders()
    assert not offenders, "imports across a boundary:\n" + "\n".join(offenders)


def test_the_check_sees_function_level_and_relative_imports():
    source = (
        "def f():\n    from kizashi.scoring import features\n"
        "from ..notifier import render\n"
        "from kizashi import tools\n"
    )
    found = _kizashi_imports(ast.parse(source), "kizashi.triggers.schedule")
    assert sorted(found) == [(2, "scoring"), (3, "notifier"), (4, "tools")]
    assert not _allowed("triggers", "scoring") and not _allowed("triggers", "tools")
    assert not _allowed("runtime", "tools") and not _allowed("contracts", "runtime")
    assert _allowed("tools", "triggers") and _allowed("scoring", "runtime")

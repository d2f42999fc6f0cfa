"""The lines_model modules each stage script imports, transitively: what dvc.yaml must list.

    python -m tools.stage_deps            # print the deps list of every stage script

A stage depends on the code it runs and nothing else, so an edit to a figure module reruns
evaluate but never teacher_pairs. tests/test_stage_deps.py keeps dvc.yaml equal to this.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "lines_model"


def _imported(path: Path) -> set[Path]:
    """Modules of the package that one file imports (anywhere in it, lazy imports included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    pkg = ROOT / PACKAGE
    out: set[Path] = set()

    def add(dotted: str) -> None:
        parts = dotted.split(".")
        if parts[0] != PACKAGE:
            return
        out.add(pkg / "__init__.py")
        if len(parts) > 1 and (pkg / f"{parts[1]}.py").exists():
            out.add(pkg / f"{parts[1]}.py")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                add(a.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import inside the package
                base = f"{PACKAGE}.{base}" if base else PACKAGE
            add(base)
            if base == PACKAGE:  # from lines_model import a, b: submodules
                for a in node.names:
                    add(f"{PACKAGE}.{a.name}")
    return out


def module_deps(script: Path) -> list[str]:
    """Repo-relative paths of the package modules `script` imports, transitively, sorted."""
    seen: set[Path] = set()
    todo = list(_imported(script))
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(_imported(m) - seen)
    return sorted(str(p.relative_to(ROOT)) for p in seen)


def main() -> None:
    for script in sorted((ROOT / "stages").glob("*.py")):
        print(f"{script.relative_to(ROOT)}:")
        for d in module_deps(script):
            print(f"  - {d}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

"""The lines_model modules each stage script imports, transitively: what dvc.yaml must list.

    python -m tools.stage_deps            # print the deps list of every stage script
    python -m tools.stage_deps --write    # rewrite the lines_model/ deps of every stage in dvc.yaml

A stage depends on the code it runs and nothing else, so an edit to a figure module reruns
evaluate but never teacher_pairs. tests/test_stage_deps.py keeps dvc.yaml equal to this.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import yaml

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


def declared(script: Path) -> list[str]:
    """What dvc.yaml lists for `script` (the empty package marker is left out)."""
    return [d for d in module_deps(script) if d != f"{PACKAGE}/__init__.py"]


def write_dvc_yaml(path: Path) -> None:
    """Replace each stage's run of `- lines_model/...` deps with `declared(script)`, keeping the rest."""
    text = path.read_text()
    stages = yaml.safe_load(text)["stages"]
    out, stage = [], None
    for line in text.splitlines(keepends=True):
        if m := re.match(r"^  (\w+):\s*$", line):
            stage = m.group(1) if m.group(1) in stages else stage
        if re.match(rf"^\s+- {PACKAGE}/", line):
            continue
        out.append(line)
        if stage and re.match(rf"^\s+- stages/\w+\.py\s*$", line):
            indent = line[: len(line) - len(line.lstrip())]
            script = ROOT / "stages" / (re.search(r"python -m stages\.(\w+)", stages[stage]["cmd"]).group(1) + ".py")
            out.extend(f"{indent}- {d}\n" for d in declared(script))
    path.write_text("".join(out))


def main() -> None:
    if "--write" in sys.argv[1:]:
        write_dvc_yaml(ROOT / "dvc.yaml")
        print("dvc.yaml: stage deps rewritten")
        return
    for script in sorted((ROOT / "stages").glob("*.py")):
        print(f"{script.relative_to(ROOT)}:")
        for d in declared(script):
            print(f"  - {d}")


if __name__ == "__main__":
    main()

"""The lines_model modules each stage runs: what dvc.yaml must list as its code deps.

    python -m tools.stage_deps            # print the deps list of every stage
    python -m tools.stage_deps --write    # rewrite the lines_model/ deps of every stage in dvc.yaml

A stage depends on the code it runs and nothing else, so an edit to a figure module reruns
evaluate but never teacher_pairs. That code is its script's lines_model imports, transitively,
with one refinement: the params schema (lines_model/config/) has one module per section, and
although every stage validates the whole file, what it computes depends only on the sections it
reads. So the package's core (config/__init__.py) counts without the section modules it imports,
and the stage gets the modules of the sections dvc.yaml lists under its `params` instead.
tests/test_stage_deps.py keeps dvc.yaml equal to this.
"""

from __future__ import annotations

import ast
import re
import sys
import typing
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "lines_model"
CONFIG = "config"  # the params schema: a package with one module per section


def _module_file(parts: list[str]) -> Path | None:
    base = ROOT.joinpath(*parts)
    if (base / "__init__.py").exists():
        return base / "__init__.py"
    if base.with_suffix(".py").exists():
        return base.with_suffix(".py")
    return None


def _imported(path: Path) -> set[Path]:
    """Modules of the package that one file imports (anywhere in it, lazy imports included), with
    the packages above them (Python runs each package's __init__ on the way)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = list(path.relative_to(ROOT).parts[:-1])  # the package a relative import starts from
    out: set[Path] = set()

    def add(parts: list[str]) -> None:
        if not parts or parts[0] != PACKAGE:
            return
        for i in range(1, len(parts) + 1):
            if f := _module_file(parts[:i]):
                out.add(f)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                add(a.name.split("."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative to this file's package
                base = package[: len(package) - (node.level - 1)] + (node.module.split(".") if node.module else [])
            else:
                base = (node.module or "").split(".")
            add(base)
            for a in node.names:  # from pkg import module: the submodule, where it is one
                if _module_file(base + [a.name]):
                    add(base + [a.name])
    return out


def section_modules(sections: typing.Iterable[str]) -> set[Path]:
    """The schema module of each top-level params section (from the types of config.Params)."""
    from lines_model.config import Params

    hints = typing.get_type_hints(Params)
    out = set()
    for name in sections:
        if name not in hints:
            raise ValueError(f"params section {name!r}: not a field of lines_model.config.Params")
        out.add(_module_file(hints[name].__module__.split(".")))
    return out


def module_deps(script: Path, sections: typing.Iterable[str] = ()) -> list[str]:
    """Repo-relative paths of the package modules `script` runs, transitively, sorted: its
    imports, the config core without its section modules, and the modules of `sections`."""
    config_dir = ROOT / PACKAGE / CONFIG
    core = config_dir / "__init__.py"
    seen: set[Path] = set()
    todo = list(_imported(script) | (section_modules(sections) if sections else set()))
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        edges = _imported(m)
        if m == core:
            edges = {e for e in edges if e.parent != config_dir or e == core}
        todo.extend(edges - seen)
    return sorted(str(p.relative_to(ROOT)) for p in seen)


def stage_sections(stage: dict) -> list[str]:
    """Top-level params.yaml sections a dvc.yaml stage reads (`pairs.steps` -> `pairs`)."""
    out = []
    for entry in stage.get("params", []):
        keys = [entry] if isinstance(entry, str) else [k for v in entry.values() for k in (v or [])]
        out.extend(k.split(".")[0] for k in keys)
    return sorted(set(out))


def stage_script(stage: dict) -> Path:
    return ROOT / "stages" / (re.search(r"python -m stages\.(\w+)", stage["cmd"]).group(1) + ".py")


def declared(stage: dict) -> list[str]:
    """What dvc.yaml lists for a stage (the empty package marker is left out)."""
    return [d for d in module_deps(stage_script(stage), stage_sections(stage)) if d != f"{PACKAGE}/__init__.py"]


def write_dvc_yaml(path: Path) -> None:
    """Replace each stage's run of `- lines_model/...` deps with `declared(stage)`, keeping the rest."""
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
            out.extend(f"{indent}- {d}\n" for d in declared(stages[stage]))
    path.write_text("".join(out))


def main() -> None:
    if "--write" in sys.argv[1:]:
        write_dvc_yaml(ROOT / "dvc.yaml")
        print("dvc.yaml: stage deps rewritten")
        return
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        print(f"{name} ({stage_script(stage).relative_to(ROOT)}):")
        for d in declared(stage):
            print(f"  - {d}")


if __name__ == "__main__":
    main()

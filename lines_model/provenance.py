"""What a result is a function of: its settings, the precision it ran at, and the code that made it.

`module_deps(entry, sections)` is the package's modules that `entry` runs, transitively: its
imports, with one refinement: the params schema (lines_model/config/) has one module per section,
and although every stage validates the whole file, what it computes depends only on the sections it
reads, so the config core counts without its section modules and `sections` adds the ones read.
dvc.yaml lists these as each stage's code deps (tools/stage_deps.py), and `scratch_key` hashes their
contents into the name of every piece of resumable state (pair shards in progress, training
checkpoints, finished rounds, seed replicates), so a resume continues only what the same settings,
precision and code would make again.
"""

from __future__ import annotations

import ast
import hashlib
import typing
from pathlib import Path

from lines_model.hashing import fingerprint

ROOT = Path(__file__).resolve().parents[1]  # the folder holding the package
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


def code_hash(entry: Path, sections: typing.Iterable[str] = ()) -> str:
    """sha256 over the path and bytes of every module `entry` runs (module_deps)."""
    h = hashlib.sha256()
    for rel in module_deps(entry, sections):
        h.update(rel.encode() + b"\0" + (ROOT / rel).read_bytes() + b"\0")
    return h.hexdigest()


def scratch_key(result: dict, *, entry: str | Path, sections: typing.Iterable[str] = (), precision: str) -> str:
    """The one name of resumable state: the values that change the result, the precision it is
    computed at, and the hash of the code `entry` (a module of the package) runs."""
    return fingerprint({"result": result, "precision": precision, "code": code_hash(Path(entry).resolve(), sections)})

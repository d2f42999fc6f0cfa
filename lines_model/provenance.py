"""What a result is a function of: its settings, the precision it ran at, and the code that made it.

Every output of a stage records the params values it was made from (`made_from`: stage -> key ->
value, its inputs' records included), and every stage checks the records of what it reads against
its params before any work (`check_inputs`), refusing a mismatch with one line naming the key. DVC
decides what to rerun from dvc.lock and restores earlier outputs from its run-cache, whose key has
been known to leave params out (treeverse/dvc#10296: keys named `size` or `nfiles`); a stale output
must stop the pipeline rather than pass silently into an experiment's results.

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
import json
import typing
from pathlib import Path

from lines_model.errors import ConfigError, InputError
from lines_model.hashing import fingerprint
from lines_model.typed import to_dict

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


def section_keys(section: str, *names: str) -> tuple[str, ...]:
    return tuple(f"{section}.{k}" for k in names)


TRAIN_KEYS = ("lr", "batch_size", "warmup_steps", "weight_decay", "grad_clip", "ema_decay", "loss", "seed")
# The params each stage's outputs record: keys or whole sections, each listed under the stage's
# `params` in dvc.yaml, so that a new value always reruns the stage and rewrites the record
# (tests/test_provenance.py). A method's stage records what its Method.recorded says, which is what
# dvc.yaml lists. The pairs record what
# their bytes depend on, and each folder its own count (pairs.count or pairs.heldout): the batch size,
# threads and compilation change how fast they are made, not what (a record of them would retrain
# every student after a rerun that reproduced the same pairs), and pairs.mixed_precision resolves by
# device (`auto`), so the manifest records the precision the teacher ran at instead.
RECORDED: dict[str, tuple[str, ...]] = {
    "teacher_pairs": (
        "teacher",
        *section_keys("pairs", "sampler", "steps", "order", "lambda_min", "seed", "shard_size"),
    ),
    "subset_50k": ("subset",),
}
RECORD = "made_from"  # the key of the record in an output's JSON (pairs manifest, subset, student sidecar)
_FILES = ("manifest.json", "lines_model.json")  # the JSON of a pairs folder, of a student folder


def params_values(params) -> dict[str, typing.Any]:
    """Every leaf of `params` (a config.Params) by dotted key, as an output records it: plain JSON
    values, and None for a key the setting beside it makes the code ignore (pairs.order and
    pairs.lambda_min under DDIM), so that changing it changes no record."""
    out: dict[str, typing.Any] = {}

    def walk(d: dict, where: str) -> None:
        for k, v in d.items():
            key = f"{where}.{k}" if where else k
            if isinstance(v, dict):
                walk(v, key)
            else:
                out[key] = v

    walk(to_dict(params), "")
    if out["pairs.sampler"] != "dpmsolver++":
        out["pairs.order"] = out["pairs.lambda_min"] = None
    return out


def record(params, keys: typing.Iterable[str]) -> dict[str, typing.Any]:
    """The values of `keys` (dotted keys or whole sections) in `params`."""
    values = params_values(params)
    out = {}
    for k in keys:
        hits = {key: v for key, v in values.items() if key == k or key.startswith(f"{k}.")}
        if not hits:
            raise ValueError(f"{k}: not a params key or section")
        out.update(hits)
    return out


def _records(path: Path) -> list[tuple[str, typing.Any]]:
    """(source file, its record) of the output at `path`: a JSON file, a pairs or student folder, or
    a folder of student folders (models/pd). Nothing for a path that does not exist: the stage's
    own reader says how it is missing."""
    if path.is_dir():
        files = [path / f for f in _FILES if (path / f).is_file()]
        if not files:
            files = [d / f for d in sorted(path.iterdir()) if d.is_dir() for f in _FILES if (d / f).is_file()]
    else:
        files = [path] if path.is_file() else []
    out = []
    for f in files:
        try:
            data = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"{f}: not valid JSON ({e})") from None
        out.append((str(f), data.get(RECORD) if isinstance(data, dict) else None))
    return out


def check(made_from: typing.Any, params, source: str) -> None:
    """Refuse an output whose recorded params values are not those of `params`: one line naming the
    first key that differs and the stage to rerun."""
    if not isinstance(made_from, dict) or not all(isinstance(v, dict) for v in made_from.values()):
        raise InputError(
            f"{source}: records no params values it was made from (an older version wrote it); "
            "remake it: dvc repro --force --single-item <the stage that writes it>"
        )
    now = params_values(params)
    for stage, values in made_from.items():
        for key, value in values.items():
            if key not in now:
                raise ConfigError(
                    f"{key}: {source} was made with {key}={value!r}, a key the params no longer have; "
                    f"remake it: dvc repro --force --single-item {stage}"
                )
            if now[key] != value:
                raise ConfigError(
                    f"{key}: {source} was made with {value!r}, the params have {now[key]!r} "
                    f"(a stale output); remake it: dvc repro --force --single-item {stage}"
                )


def check_inputs(params, inputs: typing.Iterable[str | Path]) -> dict[str, dict[str, typing.Any]]:
    """Check the record of every output in `inputs` (each a DVC dep of the calling stage) against
    `params`; return their union, what the inputs were made from."""
    out: dict[str, dict[str, typing.Any]] = {}
    for path in inputs:
        for source, made in _records(Path(path)):
            check(made, params, source)
            for stage, values in made.items():
                out.setdefault(stage, {}).update(values)
    return out


def made_from(stage: str, params, inputs: typing.Iterable[str | Path] = (), keys: typing.Iterable[str] = ()) -> dict:
    """The record of an output of `stage`: its inputs' records (checked first, check_inputs) and the
    values of what RECORDED lists for the stage, with `keys` added."""
    out = check_inputs(params, inputs)
    out[stage] = record(params, (*RECORDED.get(stage, ()), *keys))
    return out

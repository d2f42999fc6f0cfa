"""The lines_model modules each stage runs: what dvc.yaml must list as its code deps.

    python -m tools.stage_deps            # print the deps list of every stage
    python -m tools.stage_deps --write    # rewrite the lines_model/ deps of every stage in every pipeline file

A stage depends on the code it runs and nothing else, so an edit to a figure module reruns
evaluate but never teacher_pairs. That code is its script's lines_model imports, transitively,
with one refinement: the params schema (lines_model/config/) has one module per section, and
although every stage validates the whole file, what it computes depends only on the sections it
reads. So the package's core (config/__init__.py) counts without the section modules it imports,
and the stage gets the modules of the sections dvc.yaml lists under its `params` instead.
The pipeline files are dvc.yaml and compare/dvc.yaml (whose stage runs from the repository root,
so its paths read as the root's); tests/test_stage_deps.py keeps both equal to this.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

from lines_model.cli import ArgumentParser
from lines_model.provenance import PACKAGE, ROOT, module_deps

PIPELINES = ("dvc.yaml", "compare/dvc.yaml")  # every stage's paths relative to ROOT (compare's wdir is the root)


def pipeline_stages() -> dict[str, dict]:
    """Every stage of every pipeline file, by name (names are unique across the files)."""
    out: dict[str, dict] = {}
    for f in PIPELINES:
        out.update(yaml.safe_load((ROOT / f).read_text())["stages"])
    return out


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
        if stage and re.match(r"^\s+- stages/\w+\.py\s*$", line):
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(f"{indent}- {d}\n" for d in declared(stages[stage]))
    path.write_text("".join(out))


def main(argv=None) -> None:
    p = ArgumentParser(prog="python -m tools.stage_deps", description=__doc__.splitlines()[0])
    p.add_argument(
        "--write",
        action="store_true",
        help="rewrite the lines_model/ deps of every stage in the pipeline files (default: print them)",
    )
    args = p.parse_args(argv)
    if args.write:
        for f in PIPELINES:
            write_dvc_yaml(ROOT / f)
            print(f"{f}: stage deps rewritten")
        return
    try:
        for name, stage in pipeline_stages().items():
            print(f"{name} ({stage_script(stage).relative_to(ROOT)}):")
            for d in declared(stage):
                print(f"  - {d}")
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader has all it wants
        sys.stdout = None


if __name__ == "__main__":
    main()

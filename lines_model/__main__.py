"""lines_model's commands: `python -m lines_model <command> [--help]` (also the `lines-model` script);
`python -m lines_model --version` prints the installed version.

    sample    images from a student folder or the teacher     (lines_model.sample)
    score     the metrics of any images against a reference   (lines_model.score)
    results   the results tables from metrics/, or against another revision   (lines_model.results)
    profile   a full params file from a profile               (lines_model.profile)
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "sample": ("lines_model.sample", "images from a trained student folder or the teacher"),
    "score": ("lines_model.score", "FID/KID/precision/recall with standard errors of any images"),
    "results": ("lines_model.results", "the results tables from metrics/, or against another revision"),
    "profile": ("lines_model.profile", "a full params file from params.yaml and a profile"),
}


def version() -> str:
    """The version of the installed distribution (pyproject.toml's, as pip recorded it)."""
    from importlib.metadata import PackageNotFoundError, version as dist_version

    try:
        return dist_version("lines_model")
    except PackageNotFoundError:  # imported from a checkout that was never installed: no metadata to read
        return "unknown (not installed; `pip install -e .` records it)"


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: python -m lines_model <command> [arguments]   (`<command> --help` for its arguments)",
        "       python -m lines_model --version",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return
    if argv[0] == "--version":
        print(f"lines_model {version()}")
        return
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}; expected one of {', '.join(COMMANDS)}", file=sys.stderr)
        sys.exit(2)
    importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])


if __name__ == "__main__":
    main()

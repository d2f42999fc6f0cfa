"""Shared entry-point plumbing for the stage scripts: params loading and error reporting."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from lines_model.config import ConfigError, Params, load_params


def project_path(value: str, key: str, root: Path | None = None) -> Path:
    """Resolve an output path from params, refusing any that escapes the project folder."""
    root = (root or Path.cwd()).resolve()
    p = (root / value).resolve()
    if p != root and root not in p.parents:
        raise ConfigError(f"{key}: {value!r} points outside the project folder {root}")
    return p


def run_stage(main: Callable[[Params, argparse.Namespace], None], description: str, add_args=None) -> None:
    """Parse --params, validate everything, run `main`; expected failures exit 2 with one clear line."""
    from lines_model.pairs import PairsError
    from lines_model.teachers import TeacherError

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    if add_args:
        add_args(p)
    args = p.parse_args()
    try:
        params = load_params(args.params)
        main(params, args)
    except (ConfigError, PairsError, TeacherError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; rerun the stage to resume", file=sys.stderr)
        sys.exit(130)
    finally:
        sys.stdout.flush()

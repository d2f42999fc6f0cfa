"""Shared entry-point plumbing for the commands and stage scripts: params loading, error reporting, and
the check of where a command writes."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

from lines_model.config import Params, load_params
from lines_model.errors import InputError, TrainingDiverged


class ArgumentParser(argparse.ArgumentParser):
    """argparse for the project's commands: a wrong usage is one line, `error: ...`, and exit code 2."""

    def error(self, message: str):
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def fail(message: str):
    """End a command on a wrong input: one line and exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def check_writable(path: str | os.PathLike, flag: str = "--out", *, folder: bool = False) -> None:
    """Refuse, before any work, an output path that cannot be written: `path` is the file a command
    writes (or, with `folder`, the folder it writes its files into). The missing folders on the way
    are created at write time (atomic.atomic_path), so what must hold now is that no part of the
    path is a file, and that the nearest existing folder takes a new file. Raises InputError naming
    `flag` and the path.

    The test writes (and removes) a file there: permission bits do not tell, since root passes any
    access() check, and /proc or a read-only mount refuses only the write itself."""
    path = Path(path)
    if folder:
        if path.exists() and not path.is_dir():
            raise InputError(f"{flag}: {path} is a file; expected a folder")
    elif path.is_dir():
        raise InputError(f"{flag}: {path} is a folder; expected a file name")
    existing = path if folder else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{flag}: {existing} is a file, so {path} cannot be written")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=existing)
    except OSError as e:
        why = e.strerror or e
        raise InputError(f"{flag}: {path} cannot be written: {existing} takes no new file ({why})") from None
    os.close(fd)
    os.unlink(probe)


def run_stage(main: Callable[[Params], None], description: str) -> None:
    """Parse --params, validate everything, run `main`; expected failures exit 2 (3 for a diverged
    training run) with one clear line and no traceback."""
    p = ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = p.parse_args()
    try:
        main(load_params(args.params))
    except (InputError, FileNotFoundError) as e:
        fail(str(e))
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
    except KeyboardInterrupt:
        print("interrupted; rerun the stage to resume", file=sys.stderr)
        sys.exit(130)
    finally:
        sys.stdout.flush()

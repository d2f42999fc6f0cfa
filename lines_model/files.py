"""Reading the files the pipeline is given, each refused with one line that names it.

A file that exists but holds the wrong kind of content (broken JSON, a damaged weights file) is an
InputError naming the file and what is wrong, like a missing one, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

from lines_model.errors import InputError


def read_json(path: str | Path, what: str) -> dict:
    """The JSON object in `path` (`what` says what the file should be, for the message)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: missing; expected {what}")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e}); expected {what}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: holds a JSON {type(data).__name__}; expected {what}")
    return data


def load_safetensors(path: str | Path, device: str = "cpu") -> dict:
    """The tensors of a safetensors file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: missing weights file")
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable safetensors file ({e})") from None

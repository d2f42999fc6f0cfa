"""Section `teacher`: which pretrained diffusion model the pipeline distils."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TeacherCfg:
    model: str  # local folder (flat or pipeline layout) or a hub id
    revision: str | None  # hub revision to pin (ignored for local folders)

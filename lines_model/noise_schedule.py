"""A noise schedule's config as one plain dict: every DDPMScheduler key written out, nothing else.

diffusers marks the keys a file did not hold in `_use_default_values`, and `from_config` then drops
those keys from any dict that carries the list, explicit values included. The hub's
google/ddpm-cifar10-32 was saved by diffusers 0.1 and has no `prediction_type`, so a teacher read
from it, copied, and given another prediction type (a progressive-distillation student's) would be
read back as the default "epsilon". Every config this project reads, derives or writes goes
through `resolve`, so an explicit value always survives the round trip.
"""

from __future__ import annotations

from diffusers import DDPMScheduler

_KEPT = ("_class_name", "_diffusers_version")  # what wrote the file; everything else with "_" is diffusers' bookkeeping


def _explicit(config) -> dict:
    return {k: v for k, v in dict(config).items() if not k.startswith("_") or k in _KEPT}


def resolve(config) -> dict:
    """`config` with DDPMScheduler's defaults filled in for missing keys and its explicit values kept."""
    explicit = _explicit(config)
    defaults = _explicit(DDPMScheduler.from_config(explicit).config)
    return {**defaults, **explicit}


def ddpm(config) -> DDPMScheduler:
    """The DDPMScheduler of `config`, every explicit value honoured."""
    return DDPMScheduler.from_config(resolve(config))

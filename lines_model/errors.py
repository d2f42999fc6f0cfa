"""The errors a stage expects and reports as one line (cli.run_stage), in one place.

Kept free of heavy imports so that a stage's entry point depends on this module alone,
not on every module that can raise.
"""


class InputError(Exception):
    """A value or file the pipeline reads cannot be used; the message names the key or the file and
    what is wrong with it. Entry points report it as one line and exit 2."""


class ConfigError(InputError, ValueError):
    """A params key is unknown, mistyped or out of range; the message names the key."""


class PairsError(InputError, RuntimeError):
    """A pairs folder is missing, incomplete or inconsistent; the message names the file."""


class TeacherError(InputError, RuntimeError):
    """The teacher could not be found or loaded; the message says which file and how to fix it."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

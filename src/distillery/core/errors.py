"""User-facing errors: each carries one line that names the key, file or line at fault.

Stage scripts catch `DistilleryError` and print its message alone (no traceback), so
raise these for anything a user can fix: bad params, unusable input files, budgets.
"""


class DistilleryError(Exception):
    """An error whose message is shown to the user as a single line."""

    exit_code = 2


class ParamsError(DistilleryError):
    """A params.yaml key is unknown, has the wrong type, or names a missing file."""


class InputError(DistilleryError):
    """An input file is missing or unusable as a whole (bad lines go to quarantine instead)."""


class OutputError(DistilleryError):
    """An output cannot be written (disk full, read-only, no permission); the previous output is intact."""


class RejectRateError(DistilleryError):
    """A stage rejected more of its input than its params allow."""

    exit_code = 3

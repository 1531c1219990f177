"""One exception type for user-facing errors and a CLI wrapper that prints them.

Every error a user can cause (a missing file, a bad column, a wrong size) is raised
as :class:`TinyLocError` with a message that names the file, column or value at
fault. The command line prints it as one line (``error: ...``) and exits with
status 2; nothing else (no traceback).
"""
from __future__ import annotations

import functools
import sys
from typing import Callable


class TinyLocError(Exception):
    """A problem with the user's input or environment, described in one line."""


EXIT_USER_ERROR = 2


def check_positive_ints(**values) -> None:
    """Raise ``TinyLocError("--<name> <value>: must be a positive integer")`` for the first value that is not an
    integer >= 1 (booleans refused); names use the CLI spelling (``batch_size`` -> ``--batch-size``)."""
    import numbers

    for name, value in values.items():
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
            raise TinyLocError(f"--{name.replace('_', '-')} {value!r}: must be a positive integer")


def cli_errors(main: Callable[..., int]) -> Callable[..., int]:
    """Decorate a ``main(argv) -> int`` so TinyLocError becomes one line + exit 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return int(main(*args, **kwargs) or 0)
        except TinyLocError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130

    return wrapper

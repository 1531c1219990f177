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
    check_ints(1, None, **values)


def check_ints(low: int, high: int | None, **values) -> None:
    """Raise ``TinyLocError`` for the first value that is not an integer in ``[low, high]`` (``high`` None: no upper
    bound; booleans refused), naming the CLI flag: ``--seed -1: must be an integer from 0 to 4294967295``."""
    import numbers

    for name, value in values.items():
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low and (
            high is None or value <= high)
        if not ok:
            flag = f"--{name.replace('_', '-')}"
            if high is None and low == 1:
                raise TinyLocError(f"{flag} {value!r}: must be a positive integer")
            if high is None:
                raise TinyLocError(f"{flag} {value!r}: must be an integer >= {low}")
            raise TinyLocError(f"{flag} {value!r}: must be an integer from {low} to {high}")


SEED_MAX = 2**32 - 1  # NumPy's legacy seeding and keras.utils.set_random_seed accept 0 .. 2**32 - 1


def check_seed(seed, name: str = "seed") -> None:
    """``--seed``: an integer from 0 to 2**32 - 1 (what every random generator here accepts)."""
    check_ints(0, SEED_MAX, **{name: seed})


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


# ----------------------------------------------------------------------------------------------- TensorFlow's noise
# Lines TensorFlow prints to file descriptor 2 while it is imported — a banner, not a warning about the user's work.
# TF_CPP_MIN_LOG_LEVEL does not stop them (measured with tensorflow-cpu 2.21: the oneDNN line is printed before
# absl's log level applies, twice), so the import runs with descriptor 2 redirected and everything else is replayed.
TF_BANNER = (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    r"^[IW]\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on\.",
    r"^[IW]\d{4} [\d:. ]+\d+ cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized",
    r"^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$",
    r"Unable to register cu(DNN|FFT|BLAS) factory", r"Could not find cuda drivers on your machine",
    r"TF-TRT Warning: Could not find TensorRT",
)
RETRACING = "triggered tf.function retracing"  # tf.function's "N out of the last M calls ..." warning
# Warnings the converters raise on every conversion this project makes on purpose (it calibrates its own input ranges
# and keeps all tensors to compare TFLM with LiteRT): not about the user's work.
CONVERTER_NOTES = (r"Statistics for quantized inputs were expected, but not specified",
                   r"Warning: Enabling `experimental_preserve_all_tensors`")
_QUIET = {"installed": False}


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up banner (:data:`TF_BANNER`), tf.function retracing warnings, its INFO log lines
    (e.g. "Assets written to /tmp/...") and the converters' :data:`CONVERTER_NOTES` off the terminal; every other line
    TensorFlow writes — real warnings and errors — still reaches stderr.

    Call it before TensorFlow is imported (the CLI dispatcher and the notebooks do); it installs a one-shot import
    hook, so it costs nothing when a command never imports TensorFlow. Written by hand because TensorFlow offers no
    switch for these lines (see :data:`TF_BANNER`)."""
    import importlib.abc
    import importlib.util
    import logging
    import os
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # INFO lines off; warnings and errors stay
    if _QUIET["installed"]:
        return
    _QUIET["installed"] = True

    class NoRetracing(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return record.levelno >= logging.WARNING and RETRACING not in record.getMessage()

    logging.getLogger("tensorflow").addFilter(NoRetracing())
    for note in CONVERTER_NOTES:
        warnings.filterwarnings("ignore", message=note)
    if "tensorflow" in sys.modules:
        return

    class QuietImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name != "tensorflow":
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                run = spec.loader.exec_module

                def exec_module(module):
                    with _without_banner():
                        run(module)

                spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, QuietImport())


class _without_banner:
    """Redirect file descriptor 2 to a temporary file; on exit write back every line not in :data:`TF_BANNER`."""

    def __enter__(self):
        import os
        import tempfile

        sys.stderr.flush()
        self.saved = os.dup(2)
        self.tmp = tempfile.TemporaryFile()
        os.dup2(self.tmp.fileno(), 2)
        return self

    def __exit__(self, *exc):
        import os
        import re

        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.tmp.seek(0)
        text = self.tmp.read().decode("utf-8", "replace")
        self.tmp.close()
        banner = [re.compile(p) for p in TF_BANNER]
        kept = [ln for ln in text.splitlines(keepends=True) if not any(b.search(ln.rstrip("\n")) for b in banner)]
        if kept:
            os.write(2, "".join(kept).encode("utf-8"))
        return False

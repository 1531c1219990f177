"""Fixtures for the device tests: the toolchain check and the cached TFLM libraries (keras_tinyloc.deploy.tflm_kit).

Skipped with the reason when the TFLM source kit is absent; a missing compiler or QEMU skips off CI and fails under
``$CI`` (``.ci/run`` installs them). The libraries are built once per configuration (minutes) and cached in the user
cache folder, outside the checkout, so later runs and fresh clones reuse them.
"""
from __future__ import annotations

import os
import shutil

import pytest

ARM_TOOLS = ("make", "arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-size", "arm-none-eabi-nm",
             "qemu-system-arm", "gcc")
HOST_TOOLS = ("make", "g++", "gcc", "ar")


def _on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tools(tools) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        msg = (f"missing {', '.join(missing)} (apt-get install make g++ gcc-arm-none-eabi libnewlib-arm-none-eabi "
               "libstdc++-arm-none-eabi-newlib qemu-system-arm)")
        if _on_ci():
            pytest.fail(f"CI: {msg}")
        pytest.skip(msg)


def require_kit():
    from keras_tinyloc.deploy import tflm_kit

    reason = tflm_kit.kit_missing_reason()
    if reason:
        pytest.skip(reason)
    return tflm_kit.find_kit()


@pytest.fixture(scope="session")
def arm_tools():
    """The Arm cross toolchain, QEMU and gcc (for the QEMU plugin) are on PATH."""
    require_tools(ARM_TOOLS)


@pytest.fixture(scope="session")
def m4_lib(arm_tools):
    """The Cortex-M4F TFLM library (kit defaults, -Os), from the cache or built now."""
    from keras_tinyloc.deploy import tflm_kit

    require_kit()
    return tflm_kit.library("m4")


@pytest.fixture(scope="session")
def host_lib():
    """The host TFLM library (kit defaults, -Os), from the cache or built now."""
    from keras_tinyloc.deploy import tflm_kit

    require_tools(HOST_TOOLS)
    require_kit()
    return tflm_kit.library("host")

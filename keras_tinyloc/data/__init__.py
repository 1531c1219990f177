"""Datasets: UJIIndoorLoc (real WiFi), In-Home BLE houses (published layout or simulated), SPHERE (real BLE).

Every loader returns a :class:`keras_tinyloc.data.base.WindowDataset`; use
:func:`keras_tinyloc.data.registry.load_dataset` to get one by name.
"""
from keras_tinyloc.data.base import MinMaxScaling, WindowDataset  # noqa: F401

"""Deploy: from a trained run to a device — full-int8 conversion, the float-island check, TFLM and LiteRT runs, the
minimal arena, the MCU table, generated C/C++ headers, the sketch, the device pipeline's Python twin and replay.

May import :mod:`keras_tinyloc.data`, :mod:`keras_tinyloc.models` and :mod:`keras_tinyloc.training` (to read runs);
never :mod:`~keras_tinyloc.experiments`.
"""

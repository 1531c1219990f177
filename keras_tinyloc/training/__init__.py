"""Training: fitting a CRF tagger on windows, distillation, quantization-aware fine-tuning, augmentation, metrics.

Owns the RUN_DIR format (``model.keras``, ``config.json``, ``metrics.json``) and how a run is read back
(:func:`keras_tinyloc.training.train.load_run`). May import :mod:`keras_tinyloc.data` and :mod:`keras_tinyloc.models`
(and ``errors``/``paths``); never :mod:`~keras_tinyloc.deploy` or :mod:`~keras_tinyloc.experiments`.
"""

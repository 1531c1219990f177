"""Models: emitters (MDCSA, Mamba, a per-step MLP baseline) and the CRF tagger that wraps them.

:func:`build_tagger` is the one factory training, distillation and the sweep use. Emitter modules are imported
lazily (they import TensorFlow), so importing :mod:`keras_tinyloc.models` stays cheap.
"""
from __future__ import annotations


from keras_tinyloc.errors import TinyLocError, check_positive_ints

FAMILIES = ("mdcsa", "mamba", "mlp")


def build_emitter(family: str, input_shape, n_classes: int, hidden: int, layers: int, **kw):
    """Build the emitter ``(B,T,F) -> (B,T,C)`` of a family (``mdcsa``, ``mamba``, ``mlp``)."""
    _check(family, input_shape, n_classes, hidden, layers)
    if family == "mdcsa":
        from keras_tinyloc.models.mdcsa import build_mdcsa_emitter

        return build_mdcsa_emitter(tuple(input_shape), n_classes, hidden, layers, **kw)
    if family == "mamba":
        from keras_tinyloc.models.mamba import build_mamba_emitter

        return build_mamba_emitter(tuple(input_shape), n_classes, hidden, layers, **kw)
    if kw:
        raise TinyLocError(f"model 'mlp' takes no options, got {', '.join(sorted(kw))}")
    from keras_tinyloc.models.mlp import build_mlp_emitter

    return build_mlp_emitter(tuple(input_shape), n_classes, hidden, layers)


def build_tagger(family: str, input_shape, n_classes: int, hidden: int, layers: int, seed: int = 0,
                 input_power: int = 1, **kw):
    """Build a :class:`~keras_tinyloc.models.tagger.CRFTagger` with a fresh emitter of ``family``.

    Args:
        family: ``mdcsa``, ``mamba`` or ``mlp``.
        input_shape: ``(T, F)``.
        n_classes: C.  hidden: H.  layers: L (blocks / branches / Dense layers).
        seed: seeds Python, NumPy and TF (``keras.utils.set_random_seed``) before the weights are initialised,
            so the same arguments give the same initial weights.
        input_power: k > 1 puts the "powed" input ``x**k`` in front of the emitter (:func:`powed_emitter`):
            k - 1 MUL ops inside the int8 model, so the device still feeds min-max scaled RSSI.
        kw: family-specific options forwarded to the emitter builder (e.g. ``d_state`` for Mamba). Mamba's
            ``a_mode="learned"`` / ``input_term="euler"`` are float-only (EXP/LOG; the int8 converter rejects them):
            not search options for a microcontroller, and measured to gain nothing beyond the seed noise
            (``docs/results/mamba_fidelity.md``).
    """
    import keras

    from keras_tinyloc.models.tagger import CRFTagger

    _check(family, input_shape, n_classes, hidden, layers)
    keras.utils.set_random_seed(int(seed))
    hidden, layers, n_classes = int(hidden), int(layers), int(n_classes)
    emitter = build_emitter(family, input_shape, n_classes, hidden, layers, **kw)
    emitter = powed_emitter(emitter, input_shape, input_power)
    return CRFTagger(emitter, name=f"{family}_h{hidden}l{layers}_crf")


def powed_emitter(emitter, input_shape, power: int = 1):
    """``x (B,T,F) -> x**power -> emitter`` as one functional model (``power - 1`` Multiply layers).

    The "powed" RSSI representation (Torres-Sospedra et al., 2015) stretches strong readings and squeezes weak
    ones; inside the model it costs ``power - 1`` int8 MULs and leaves the device's input pipeline unchanged.
    ``power == 1`` returns ``emitter`` itself.
    """
    import keras

    if not isinstance(power, int) or isinstance(power, bool) or power < 1:
        raise TinyLocError(f"--input-power {power!r}: must be a positive integer")
    if power == 1:
        return emitter
    inputs = keras.Input(shape=tuple(input_shape), name="rssi", dtype="float32")
    h = inputs
    for k in range(2, power + 1):
        h = keras.layers.Multiply(name=f"pow_{k}")([h, inputs])
    return keras.Model(inputs, emitter(h), name=f"pow{power}_{emitter.name}")


def _check(family, input_shape, n_classes, hidden, layers) -> None:
    if family not in FAMILIES:
        raise TinyLocError(f"unknown model {family!r} (choose from {', '.join(FAMILIES)})")
    check_positive_ints(hidden=hidden, layers=layers, n_classes=n_classes)
    if len(tuple(input_shape)) != 2 or any(int(v) <= 0 for v in input_shape):
        raise TinyLocError(f"input_shape {tuple(input_shape)!r}: expected (T, F) with positive sizes")

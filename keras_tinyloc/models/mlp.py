"""MLP emitters: the per-step MLP family, its hierarchical and ensemble variants, and the per-window MLP baseline.

Per-step emitters map ``(B,T,F) -> (B,T,C)`` one step at a time (with ``T = 1`` on UJIIndoorLoc the CRF reduces to a
softmax over ``emissions + start + end``); only built-in Keras layers (Dense, Multiply, Add, Dropout, Rescaling), so
runs save, load and convert to full int8 like any other. Layer names are stable (``rssi``, ``pow_k``, ``dense_i``,
``dropout_i``, ``emissions``): :func:`fold_hier_emitter` and the ensemble rely on them.

Glossary: B batch, T steps, F access points, H hidden, C classes, G building-floor groups.
"""
from __future__ import annotations

from keras_tinyloc.errors import TinyLocError


def build_mlp_emitter(input_shape, n_classes: int, hidden: int, layers: int, dropout: float = 0.0, power: int = 1):
    """``(B,T,F) -> x**power -> [Dense(H)+ReLU+Dropout] x L -> Dense(C) -> (B,T,C)``; dropout = identity at inference.

    ``x**power`` is ``power - 1`` ``Multiply`` layers (int8 MUL in TFLM), so the device still feeds the min-max scaled
    input of ``model_settings.h``.

    The ``mlp`` family of :func:`keras_tinyloc.models.build_emitter` is this with ``dropout = 0`` and ``power = 1``:
    each step is classified from its own F RSSI values; the CRF adds the temporal context.
    """
    import keras

    inputs, h = mlp_trunk(input_shape, hidden, layers, dropout, power)
    emissions = keras.layers.Dense(n_classes, name="emissions")(h)
    return keras.Model(inputs, emissions, name="mlp_emitter")


def mlp_trunk(input_shape, hidden: int, layers: int, dropout: float, power: int):
    """``(inputs (B,T,F), h (B,T,H))``: ``x**power`` (``pow_k`` Multiply layers), then ``layers`` x Dense(H)+ReLU
    (``dense_i``) each followed by Dropout (``dropout_i``) when ``dropout`` > 0."""
    import keras

    inputs = keras.Input(shape=tuple(input_shape), name="rssi", dtype="float32")
    h = inputs
    for k in range(2, int(power) + 1):
        h = keras.layers.Multiply(name=f"pow_{k}")([h, inputs])
    for i in range(layers):
        h = keras.layers.Dense(hidden, activation="relu", name=f"dense_{i}")(h)
        if dropout:
            h = keras.layers.Dropout(dropout, name=f"dropout_{i}")(h)
    return inputs, h


def build_hier_emitter(input_shape, n_classes: int, group_of_class, hidden: int, layers: int, dropout: float = 0.0,
                       power: int = 1):
    """Hierarchical zone emitter and its building-floor head (shared trunk), for training.

    ``(B,T,F) -> trunk (as build_mlp_emitter) -> h (B,T,H)``; ``zone = Dense(C)(h)``, ``floor = Dense(G)(h)``;
    emissions ``(B,T,C) = zone + floor M^T`` with ``M (C,G)`` the fixed one-hot map zone -> building-floor (a frozen
    bias-free Dense). Returns ``(emitter, floor_model (B,T,F) -> (B,T,G))``. Since the map is linear,
    :func:`fold_hier_emitter` turns it into one Dense(C) exactly.
    """
    import keras
    import numpy as np

    g = int(max(group_of_class)) + 1
    m = np.eye(g, dtype="float32")[np.asarray(group_of_class)]  # (C, G)
    inputs, h = mlp_trunk(input_shape, hidden, layers, dropout, power)
    zone = keras.layers.Dense(n_classes, name="zone_head")(h)
    floor = keras.layers.Dense(g, name="floor_head")(h)
    spread = keras.layers.Dense(n_classes, use_bias=False, trainable=False, name="floor_to_zone")
    spread.build((None, None, g))
    spread.kernel.assign(m.T)
    emissions = keras.layers.Add(name="emissions")([zone, spread(floor)])
    return keras.Model(inputs, emissions, name="mlp_hier_emitter"), keras.Model(inputs, floor, name="floor_model")


def fold_hier_emitter(hier, input_shape, n_classes: int, hidden: int, layers: int, power: int = 1):
    """The plain :func:`build_mlp_emitter` MLP computing exactly ``hier``'s emissions (dropout off):
    ``W = W_zone + W_floor M^T``, ``b = b_zone + b_floor M^T``."""
    plain = build_mlp_emitter(input_shape, n_classes, hidden, layers, 0.0, power)
    for i in range(layers):
        plain.get_layer(f"dense_{i}").set_weights(hier.get_layer(f"dense_{i}").get_weights())
    wz, bz = hier.get_layer("zone_head").get_weights()
    wf, bf = hier.get_layer("floor_head").get_weights()
    mt = hier.get_layer("floor_to_zone").get_weights()[0]  # (G, C)
    plain.get_layer("emissions").set_weights([wz + wf @ mt, bz + bf @ mt])
    return plain


def build_ensemble_emitter(members, input_shape, n_classes: int, power: int = 1):
    """One emitter averaging the scores of trained T = 1 MLP taggers ``members`` (built by :func:`build_mlp_emitter`).

    ``(B,1,F) -> x**power (shared) -> member k's Dense layers -> s_k = emissions_k + start_k + end_k`` (its CRF
    scores folded into the last bias; with T = 1 the CRF adds nothing else) ``-> mean_k s_k (B,1,C)``. Decode it with
    an all-zero CRF. Only built-in layers (Dense, Multiply, Add, Rescaling): it saves, loads and converts like any
    ``mlp`` run; flash grows K-fold, the arena barely.
    """
    import keras
    import numpy as np

    inputs, x = mlp_trunk(input_shape, 0, 0, 0.0, power)  # the shared powed input
    scores = []
    for m, tagger in enumerate(members):
        dense = [lay for lay in tagger.emitter.layers if isinstance(lay, keras.layers.Dense)]
        if dense[-1].name != "emissions" or int(tagger.emitter.input_shape[1]) != 1:
            raise TinyLocError(f"ensemble member {m}: expected a T = 1 MLP emitter ending in 'emissions'")
        h = x
        for lay in dense:
            w, b = lay.get_weights()
            if lay.name == "emissions":
                crf = tagger.crf_weights()
                b = b + np.asarray(crf["start"], "float32") + np.asarray(crf["end"], "float32")
            new = keras.layers.Dense(w.shape[1], activation=lay.activation, name=f"m{m}_{lay.name}")
            h = new(h)
            new.set_weights([w, b])
        scores.append(h)
    total = scores[0] if len(scores) == 1 else keras.layers.Add(name="sum")(scores)
    mean = keras.layers.Rescaling(1.0 / len(scores), name="emissions")(total)
    return keras.Model(inputs, mean, name="mlp_ensemble_emitter")


def build_window_mlp(input_shape, n_classes: int, hidden: int, layers: int = 1, seed: int = 0):
    """Per-window MLP ``(B,T,F)`` -> flatten ``(B,T*F)`` -> L x Dense(H, relu) -> Dense(C) logits ``(B,C)``.

    Predicts the window's last-step label (softmax cross-entropy): the baseline a sequence model must beat.
    """
    import keras

    if len(tuple(input_shape)) != 2:
        raise TinyLocError(f"window MLP input_shape {tuple(input_shape)!r}: expected (T, F)")
    keras.utils.set_random_seed(seed)
    t, f = (int(s) for s in input_shape)
    inp = keras.Input(shape=(t, f), dtype="float32", name="rssi")
    h = keras.layers.Flatten()(inp)
    for i in range(layers):
        h = keras.layers.Dense(hidden, activation="relu", name=f"dense_{i}")(h)
    out = keras.layers.Dense(n_classes, name="logits")(h)
    return keras.Model(inp, out, name=f"window_mlp_h{hidden}l{layers}")

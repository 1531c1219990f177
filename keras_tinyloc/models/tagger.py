"""The CRF tagger: an emitter (any functional model ``(B,T,F) -> (B,T,C)``) plus a linear-chain CRF head.

Training minimises the mean CRF negative log-likelihood of the windows that have at least one labelled step
(unlabelled ``-1`` steps are marginalised, see :mod:`keras_tinyloc.models.crf`); prediction decodes with Viterbi and
a window's prediction is its last step's label. Only ``emitter`` is converted to TFLite.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_tinyloc.models.crf import CRF


def mean_crf_nll(crf: CRF, emissions, labels):
    """Mean NLL over windows with at least one labelled step.

    Args:
        emissions: ``(B,T,C)``; labels: ``(B,T)`` int, ``-1`` = unlabelled.
    Returns:
        (scalar loss, scalar count of windows with a label) — the loss is 0 when the count is 0.
    """
    nll = crf.nll(emissions, labels)  # (B,)
    count = tf.reduce_sum(tf.cast(tf.reduce_any(labels >= 0, axis=1), tf.float32))
    return tf.reduce_sum(nll) / tf.maximum(count, 1.0), count


def apply_gradients(optimizer, grads, variables) -> None:
    """Apply the gradients that exist (with T = 1 the CRF transitions get none: nothing to learn there)."""
    pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
    optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])


@keras.saving.register_keras_serializable(package="keras_tinyloc")
class CRFTagger(keras.Model):
    """Emitter + CRF. ``call(x (B,T,F)) -> emissions (B,T,C)``; ``decode(x) -> (B,T)`` Viterbi labels.

    Args:
        emitter: a functional ``keras.Model`` mapping ``(B,T,F)`` float32 to ``(B,T,C)`` emissions.
    """

    def __init__(self, emitter: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.emitter = emitter
        n_classes = emitter.output_shape[-1]
        if n_classes is None:
            raise ValueError("the emitter's output must have a static class dimension C")
        self.crf = CRF(int(n_classes), name="crf")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self._decode_fn = None
        self.built = True  # every variable exists now (functional emitter, CRF weights)

    # ------------------------------------------------------------------ structure
    @property
    def n_classes(self) -> int:
        return self.crf.n_classes

    @property
    def window_shape(self) -> tuple[int, int]:
        """``(T, F)`` of the emitter's input."""
        shape = self.emitter.input_shape
        return int(shape[1]), int(shape[2])

    def call(self, x, training=False):
        return self.emitter(x, training=training)

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "emitter": keras.saving.serialize_keras_object(self.emitter),
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        config = dict(config)
        emitter = keras.saving.deserialize_keras_object(config.pop("emitter"), custom_objects=custom_objects)
        return cls(emitter, **config)

    def build(self, input_shape=None):
        # Every variable exists after __init__ (functional emitter, CRF weights); nothing to build lazily.
        self.built = True

    # ------------------------------------------------------------------ training
    @property
    def metrics(self):
        return [self.loss_tracker]

    def crf_loss(self, emissions, labels):
        """Mean CRF NLL (scalar) of emissions ``(B,T,C)`` against labels ``(B,T)`` (``-1`` marginalised)."""
        return mean_crf_nll(self.crf, emissions, labels)[0]

    def train_step(self, data):
        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            emissions = self(x, training=True)
            loss, count = mean_crf_nll(self.crf, emissions, y)
            total = loss + tf.add_n(self.losses) if self.losses else loss
        apply_gradients(self.optimizer, tape.gradient(total, self.trainable_variables), self.trainable_variables)
        self.loss_tracker.update_state(loss, sample_weight=count)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        x, y = data[0], data[1]
        emissions = self(x, training=False)
        loss, count = mean_crf_nll(self.crf, emissions, y)
        self.loss_tracker.update_state(loss, sample_weight=count)
        return {"loss": self.loss_tracker.result()}

    # ------------------------------------------------------------------ inference
    def decode(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Viterbi labels ``(B,T)`` int32 of windows ``x`` ``(B,T,F)``, computed in batches."""
        x = np.asarray(x, np.float32)
        if self._decode_fn is None:
            steps, feats = self.window_shape
            spec = tf.TensorSpec((None, steps, feats), tf.float32)
            self._decode_fn = tf.function(
                lambda xb: self.crf.viterbi(self(xb, training=False)), input_signature=[spec], reduce_retracing=True
            )
        if len(x) == 0:
            return np.zeros((0, self.window_shape[0]), np.int32)
        parts = [self._decode_fn(tf.constant(x[i : i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
        return np.concatenate(parts, axis=0)

    def emissions(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Emissions ``(B,T,C)`` float32 of windows ``x`` ``(B,T,F)`` (inference mode)."""
        return np.asarray(self.predict(np.asarray(x, np.float32), batch_size=batch_size, verbose=0))

    def crf_weights(self) -> dict:
        """``{"transitions": (C,C), "start": (C,), "end": (C,)}`` as nested lists (for config.json / C headers)."""
        return {
            "transitions": np.asarray(self.crf.transitions.numpy(), np.float64).tolist(),
            "start": np.asarray(self.crf.start.numpy(), np.float64).tolist(),
            "end": np.asarray(self.crf.end.numpy(), np.float64).tolist(),
        }

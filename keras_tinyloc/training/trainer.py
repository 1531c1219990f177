"""Training with augmentation and distillation inside one ``train_step``: :func:`make_trainer`.

``fit`` on the returned model trains a :class:`~keras_tinyloc.models.tagger.CRFTagger` on batches augmented afresh
every step (:mod:`keras_tinyloc.training.augment`: per-window offsets, AP drop-out, noise), optionally distilled from
frozen teachers and with an auxiliary building-floor loss (hierarchical head). Loss per batch::

    L = alpha * NLL_CRF(student) + (1 - alpha) * tau^2 * CE(q, p_S)  [+ w * CE(building-floor)]

with ``q`` the mean of the teachers' tempered CRF marginals on the same augmented batch (Hinton et al. 2015) and
``p_S`` the student's tempered marginals; without teachers ``L = NLL``. Shapes: ``x (B,T,F)``, ``y (B,T)`` (-1 =
unlabelled), emissions ``(B,T,C)``.
"""
from __future__ import annotations

from keras_tinyloc.training.augment import AugmentConfig


def make_trainer(tagger, inv_span, augment: AugmentConfig, teachers=(), alpha: float = 0.1,
                 temperature: float = 2.0, seed: int = 0, floor_aux=None):
    """A ``keras.Model`` whose ``fit`` trains ``tagger`` on augmented batches (+ distillation from ``teachers``).

    Args:
        tagger: the student :class:`~keras_tinyloc.models.tagger.CRFTagger`.
        inv_span: ``(F,)`` ``1 / (high - low)`` of the dataset's scaling (:func:`keras_tinyloc.training.augment.inverse_span`).
        teachers: frozen CRFTaggers with the same ``(T, F)`` and C.
        floor_aux: ``(floor_model, group_of_class (C,), weight)`` adds ``weight * CE(building-floor)`` of the
            hierarchical head (:func:`keras_tinyloc.models.mlp.build_hier_emitter`) on labelled steps.
    Not saved: ``train.write_run`` saves the tagger.
    """
    import keras
    import tensorflow as tf

    from keras_tinyloc.training.augment import augment_tf
    from keras_tinyloc.models.tagger import apply_gradients, mean_crf_nll

    teachers = list(teachers)
    for t in teachers:
        t.trainable = False

    class RobustTrainer(keras.Model):
        def __init__(self):
            super().__init__(name="robust_trainer")
            self.tagger = tagger
            self.seed_gen = keras.random.SeedGenerator(seed)
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.built = True

        @property
        def metrics(self):
            return [self.loss_tracker]

        def call(self, x, training=False):
            return self.tagger(x, training=training)

        def train_step(self, data):
            x, y = data[0], data[1]
            x = augment_tf(x, inv_span, augment, self.seed_gen)
            variables = self.tagger.trainable_variables
            with tf.GradientTape() as tape:
                em = self.tagger(x, training=True)
                loss, count = mean_crf_nll(self.tagger.crf, em, y)
                if teachers:
                    tau = float(temperature)
                    target = tf.add_n([t.crf.marginals(t(x, training=False), temperature=tau) for t in teachers])
                    target = tf.stop_gradient(target / float(len(teachers)))
                    log_p = self.tagger.crf.log_marginals(em, temperature=tau)
                    l_d = tau * tau * tf.reduce_mean(-tf.reduce_sum(target * log_p, axis=-1))
                    loss = float(alpha) * loss + (1.0 - float(alpha)) * l_d
                if floor_aux is not None:
                    floor_model, group_of_class, weight = floor_aux
                    labelled = y >= 0
                    groups = tf.gather(tf.constant(list(group_of_class), tf.int32), tf.maximum(y, 0))  # (B,T)
                    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(groups, floor_model(x, training=True))
                    mask = tf.cast(labelled, ce.dtype)
                    loss = loss + float(weight) * tf.reduce_sum(ce * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
            apply_gradients(self.optimizer, tape.gradient(loss, variables), variables)
            self.loss_tracker.update_state(loss)
            return {"loss": self.loss_tracker.result()}

    return RobustTrainer()

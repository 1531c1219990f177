"""``python -m keras_tinyloc distill``: knowledge distillation from a trained teacher run into a small student.

Loss (paper, Sec. "Knowledge distillation"; Hinton et al. 2015 for the soft mode):

    L   = alpha * L_S + (1 - alpha) * L_D                                  alpha = 0.1 by default
    L_S = mean CRF NLL of the student on the true labels (-1 steps marginalised, as in training)
    L_D = mean over all B*T steps of  - sum_c q_t(c) * log p^S_t(c)

where ``p^S_t`` are the student's per-step CRF marginals (forward-backward) and the target ``q_t`` is

* hard mode (default): the one-hot of the teacher's Viterbi-decoded label of step t;
* soft mode (``temperature`` tau): the teacher's CRF marginals at temperature tau, with the student's marginals also
  taken at tau and L_D multiplied by tau² (so its gradients keep their scale, Hinton et al.). Temperature divides
  every CRF score (emissions, transitions, start, end).

L_D uses every step, labelled or not: the teacher labels the unlabelled ones. The teacher is frozen (not trainable,
run in inference mode); only the student's weights are updated. The run written is the student's, in the same format
as ``train`` (its ``config.json`` also records ``teacher``, ``alpha``, ``temperature``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from typing import Any, Callable

from keras_tinyloc import paths
from keras_tinyloc.errors import TinyLocError, cli_errors
from keras_tinyloc.training.train import (
    TrainConfig,
    add_common_arguments,
    check_labels,
    check_run_contract,
    config_kwargs,
    count_params,
    evaluate,
    fit_tagger,
    load_run,
    load_training_data,
    make_optimizer,
    run_config,
    write_run,
)


_DISTILLER = None


def distiller_class():
    """The :class:`Distiller` ``keras.Model`` class, defined on first use so that importing this module (and
    ``distill --help``) does not import TensorFlow (~3 s); ``from ... import Distiller`` works too (module
    ``__getattr__``)."""
    global _DISTILLER
    if _DISTILLER is not None:
        return _DISTILLER
    import keras
    import tensorflow as tf

    from keras_tinyloc.models.tagger import apply_gradients, mean_crf_nll

    class Distiller(keras.Model):
        """Student + frozen teacher CRF taggers; ``fit`` trains the student on L = alpha·L_S + (1−alpha)·L_D.

        Args:
            student, teacher: :class:`~keras_tinyloc.models.tagger.CRFTagger` with the same C; inputs ``(B,T,F)``.
            alpha: weight of the student's own CRF NLL (0..1).
            temperature: None for hard (Viterbi one-hot) targets, else tau > 0 for soft tempered marginals.
        ``call(x)`` returns the student's emissions ``(B,T,C)``. Not meant to be saved: save ``student``.
        """

        def __init__(self, student, teacher, alpha=0.1, temperature=None, **kwargs):
            super().__init__(**kwargs)
            self.student = student
            self.teacher = teacher
            self.teacher.trainable = False
            self.alpha = float(alpha)
            self.temperature = None if temperature is None else float(temperature)
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.student_tracker = keras.metrics.Mean(name="student_loss")
            self.distill_tracker = keras.metrics.Mean(name="distill_loss")
            self.built = True

        def get_config(self) -> dict:
            return {"name": self.name, "alpha": self.alpha, "temperature": self.temperature}

        @property
        def metrics(self):
            return [self.loss_tracker, self.student_tracker, self.distill_tracker]

        def call(self, x, training=False):
            return self.student(x, training=training)

        def losses_of(self, x, y, training=False):
            """``(L, L_S, L_D, count)`` for windows ``x`` ``(B,T,F)`` and labels ``y`` ``(B,T)``."""
            em_s = self.student(x, training=training)  # (B,T,C)
            em_t = tf.stop_gradient(self.teacher(x, training=False))  # (B,T,C)
            l_s, count = mean_crf_nll(self.student.crf, em_s, y)
            if self.temperature is None:
                target = tf.one_hot(self.teacher.crf.viterbi(em_t), self.student.crf.n_classes)
                log_p = self.student.crf.log_marginals(em_s)
                scale = 1.0
            else:
                tau = self.temperature
                target = tf.stop_gradient(self.teacher.crf.marginals(em_t, temperature=tau))
                log_p = self.student.crf.log_marginals(em_s, temperature=tau)
                scale = tau * tau
            l_d = scale * tf.reduce_mean(-tf.reduce_sum(target * log_p, axis=-1))
            total = self.alpha * l_s + (1.0 - self.alpha) * l_d
            return total, l_s, l_d, count

        def _track(self, total, l_s, l_d, count, batch):
            self.loss_tracker.update_state(total, sample_weight=batch)
            self.student_tracker.update_state(l_s, sample_weight=count)
            self.distill_tracker.update_state(l_d, sample_weight=batch)
            return {m.name: m.result() for m in self.metrics}

        def train_step(self, data):
            x, y = data[0], data[1]
            variables = self.student.trainable_variables
            with tf.GradientTape() as tape:
                total, l_s, l_d, count = self.losses_of(x, y, training=True)
                reg = self.student.losses
                objective = total + tf.add_n(reg) if reg else total
            apply_gradients(self.optimizer, tape.gradient(objective, variables), variables)
            return self._track(total, l_s, l_d, count, tf.cast(tf.shape(x)[0], tf.float32))

        def test_step(self, data):
            x, y = data[0], data[1]
            total, l_s, l_d, count = self.losses_of(x, y, training=False)
            return self._track(total, l_s, l_d, count, tf.cast(tf.shape(x)[0], tf.float32))


    _DISTILLER = Distiller
    return Distiller


def __getattr__(name: str):
    if name == "Distiller":
        return distiller_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

@dataclasses.dataclass
class DistillConfig(TrainConfig):
    """:class:`~keras_tinyloc.training.train.TrainConfig` of the student plus the distillation settings.

    Attributes:
        teacher: RUN_DIR of the trained teacher.
        alpha: weight of the student's CRF NLL in the loss (0..1, paper 0.1).
        temperature: None = hard teacher labels (paper); tau > 0 = soft tempered marginals.
    """

    teacher: str = ""
    alpha: float = 0.1
    temperature: float | None = None

    def validate(self) -> None:
        if not self.teacher:
            raise TinyLocError("--teacher: a teacher RUN_DIR is required")
        if self.offset_db:
            raise TinyLocError("--offset-db: not supported by distill (the Distiller's train step has no augmentation)")
        if not (isinstance(self.alpha, (int, float)) and 0.0 <= self.alpha <= 1.0):
            raise TinyLocError(f"--alpha {self.alpha!r}: must be between 0 and 1")
        if self.temperature is not None and not (math.isfinite(self.temperature) and self.temperature > 0):
            raise TinyLocError(f"--temperature {self.temperature!r}: must be a positive number")
        super().validate()


def distill(cfg: DistillConfig, dataset=None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Distil ``cfg.teacher`` into a fresh student and write the student's RUN_DIR.

    Args:
        cfg: the :class:`DistillConfig`.
        dataset: a WindowDataset to use instead of loading ``cfg.dataset``.
    Returns:
        The metrics written to ``metrics.json`` (plus ``teacher_val_f1``/``teacher_test_f1`` of the teacher run).
    """
    cfg.validate()
    with paths.claimed_output(cfg.out, cfg.overwrite):  # locked until written: one writer per RUN_DIR
        return _distill(cfg, dataset, log)


def _distill(cfg: DistillConfig, dataset, log: Callable[[str], None]) -> dict[str, Any]:
    from keras_tinyloc.models import build_tagger

    teacher, tconfig, tmetrics = load_run(cfg.teacher)
    if dataset is None:
        dataset = load_training_data(cfg)
    check_labels(dataset)
    check_run_contract(tconfig, dataset, f"--teacher {cfg.teacher}")
    if tuple(teacher.window_shape) != tuple(dataset.input_shape) or teacher.n_classes != dataset.n_classes:
        raise TinyLocError(
            f"{cfg.teacher}: teacher takes {tuple(teacher.window_shape)} windows with {teacher.n_classes} classes, "
            f"dataset {dataset.name} has {tuple(dataset.input_shape)} and {dataset.n_classes}"
        )
    student = build_tagger(
        cfg.model, dataset.input_shape, dataset.n_classes, cfg.hidden, cfg.layers, seed=cfg.seed, **cfg.model_options
    )
    distiller = distiller_class()(student, teacher, alpha=cfg.alpha, temperature=cfg.temperature)
    distiller.compile(optimizer=make_optimizer(cfg), jit_compile=cfg.jit_compile)
    if cfg.verbose:
        mode = "hard labels" if cfg.temperature is None else f"soft targets, temperature {cfg.temperature}"
        log(
            f"distill {tconfig.get('model')} H{tconfig.get('hidden')}L{tconfig.get('layers')} "
            f"(test_f1 {tmetrics.get('test_f1', float('nan')):.4f}) -> {cfg.model} H{cfg.hidden}L{cfg.layers} "
            f"on {dataset.name}: alpha {cfg.alpha}, {mode}, {count_params(student)} params"
        )
    fit = fit_tagger(distiller, student, dataset, cfg, log=log)
    metrics = {
        **evaluate(student, dataset),
        "params": count_params(student),
        **fit,
        "teacher_val_f1": tmetrics.get("val_f1"),
        "teacher_test_f1": tmetrics.get("test_f1"),
    }
    write_run(cfg.out, student, run_config(cfg, dataset, student), metrics, cfg.overwrite)
    if cfg.verbose:
        log(
            f"best epoch {fit['best_epoch']}: val_f1 {metrics['val_f1']:.4f} test_f1 {metrics['test_f1']:.4f} "
            f"test_acc {metrics['test_acc']:.4f} -> {cfg.out}"
        )
    return metrics


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m keras_tinyloc distill",
        description="Knowledge distillation: train a student tagger on alpha*CRF-NLL + (1-alpha)*CE(teacher, student).",
    )
    parser.add_argument("--teacher", required=True, help="RUN_DIR of the trained teacher")
    add_common_arguments(parser)
    parser.add_argument("--alpha", type=float, default=0.1, help="weight of the student's CRF NLL (default 0.1)")
    parser.add_argument(
        "--temperature", type=float, default=None,
        help="soft targets: teacher CRF marginals at this temperature (default: hard Viterbi labels)",
    )
    return parser


@cli_errors
def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    cfg = DistillConfig(**config_kwargs(ns), teacher=ns.teacher, alpha=ns.alpha, temperature=ns.temperature)
    cfg.validate()
    metrics = distill(cfg, log=lambda line: print(line, flush=True))
    print(json.dumps({k: metrics[k] for k in ("val_f1", "val_acc", "test_f1", "test_acc", "params", "epochs_run")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

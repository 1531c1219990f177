"""Experiments: the resumable sweep, the scikit-learn baselines, result tables and plots, and the studies beyond the
paper (UJIIndoorLoc AP selection and robust training, SPHERE levers).

May import every layer below it (:mod:`~keras_tinyloc.data`, :mod:`~keras_tinyloc.models`,
:mod:`~keras_tinyloc.training`, :mod:`~keras_tinyloc.deploy`); only the CLI and the demo import it.
"""

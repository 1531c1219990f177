"""keras_tinyloc: room-level indoor localisation models for microcontrollers.

Train MDCSA / Mamba + CRF models on RSSI windows (Keras 3, TensorFlow backend),
compress them (knowledge distillation, full-int8 post-training quantization),
and verify them in the real TFLM interpreter with a measured tensor arena.

Glossary of dimension letters used in every docstring in this package:

====  ===========================================================
B     batch (number of windows)
T     time steps in a window (20 at 5 Hz for houses, 1 for UJIIndoorLoc)
F     features = access points (APs) read per step
H     hidden size of a model (``d_model``)
E     inner size of a Mamba block (``expand * H``)
N     state size of the selective scan (``d_state``)
R     rank of the Mamba step-size projection (``dt_rank``)
C     classes (rooms, building-floors or zones)
S     steps of a continuous 5 Hz recording (before windowing)
====  ===========================================================
"""

__version__ = "0.1.0"

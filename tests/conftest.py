"""Test-session setup: quiet TF logs, oneDNN's CPU kernels as in users' runs, and two
logical CPU devices for replica tests.

The CPU has to be split before TensorFlow initialises its runtime, so it happens here,
at import, once for the whole session; single-device tests use the default strategy.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from ssgan_tf import cpu_kernels  # noqa: E402

cpu_kernels.prefer_onednn()  # The kernels users' runs get (ssgan_tf.main does the same).
from ssgan_tf import distribute  # noqa: E402

distribute.split_cpu(2)

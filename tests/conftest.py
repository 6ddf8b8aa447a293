"""Test-session setup: quiet TF logs, and two logical CPU devices for replica tests.

The CPU has to be split before TensorFlow initialises its runtime, so it happens here,
at import, once for the whole session; single-device tests use the default strategy.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from ssgan_tf import distribute  # noqa: E402

distribute.split_cpu(2)

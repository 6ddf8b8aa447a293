"""Test-session setup: quiet TF logs, oneDNN's CPU kernels as in users' runs, two
logical CPU devices for replica tests, and a cache dir of the session's own (the records
of checked image folders and cached activations stay out of the user's ~/.cache).

The CPU has to be split before TensorFlow initialises its runtime, so it happens here,
at import, once for the whole session; single-device tests use the default strategy.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Subprocesses started by tests inherit it.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="ssgan_tf_test_cache_")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], ignore_errors=True)
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from ssgan_tf import cpu_kernels  # noqa: E402

cpu_kernels.prefer_onednn()  # The kernels users' runs get (ssgan_tf.main does the same).
from ssgan_tf import distribute  # noqa: E402

distribute.split_cpu(2)

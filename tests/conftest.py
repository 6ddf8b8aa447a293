"""Test-session setup: quiet TF logs, each xdist worker's share of the cores, oneDNN's CPU
kernels as in users' runs, two logical CPU devices for replica tests, a cache dir of the
session's own (the records of checked image folders and cached activations stay out of
the user's ~/.cache), and gin's global config and Keras' dtype policy cleared after every
test.

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
# Each pytest-xdist worker is a TensorFlow process whose thread pools default to every
# core, so `-n auto` (a worker per core) oversubscribed the CPU; a worker's share of the
# cores for both pools ran the suite in 10 min 30 s instead of 11 min 56 s on a 2-core AMD
# EPYC (intra-op alone: 10 min 46 s). Before TensorFlow loads; subprocesses inherit it.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
  _CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  for _pool in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_pool, str(max(1, (_CORES or 1) // _WORKERS)))

from ssgan_tf import cpu_kernels  # noqa: E402

cpu_kernels.prefer_onednn()  # The kernels users' runs get (ssgan_tf.main does the same).
from ssgan_tf import distribute  # noqa: E402

distribute.split_cpu(2)


import gin  # noqa: E402
import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _no_global_state_left():
  """Gin's config (restore_for_inference parses a workdir's into it) and the dtype policy
  are process-wide: one test's must not reach the next (whose result would then depend
  on the order, e.g. under -k)."""
  yield
  gin.clear_config()
  keras.config.set_dtype_policy("float32")

"""TensorFlow's oneDNN CPU kernels on every x86 CPU, not only the newest.

TensorFlow on Linux turns oneDNN on by default only where the CPU has AVX512_VNNI,
AVX512_BF16, AVX_VNNI or AMX (`DefaultOneDnnPolicy` in tensorflow/core/util/port.cc).
Elsewhere, e.g. AVX2-only Xeons and EPYCs up to Zen 3, it runs its Eigen kernels, which
are slower here: on a 2-core AMD EPYC with oneDNN capped at AVX2
(`ONEDNN_MAX_CPU_ISA=AVX2`) against `TF_ENABLE_ONEDNN_OPTS=0`, the quickstart's step ran
1.55x faster (15.3-16.2 vs 9.3-10.7 generator steps/s) and ResNet-CIFAR's (disc_iters 5)
1.27x faster (0.058 vs 0.046 steps/s). So the entry points (`ssgan_tf.main`, tools/, the tests) call
`prefer_onednn()` before their first `import tensorflow`: TensorFlow reads the variable
once, when it loads. A value the user has set is kept (`TF_ENABLE_ONEDNN_OPTS=0` gives
Eigen's kernels and their numerics back). No TensorFlow import here.
"""

import os

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def prefer_onednn():
  """Sets TF_ENABLE_ONEDNN_OPTS=1 unless it is set; call before importing TensorFlow."""
  os.environ.setdefault(ONEDNN_VARIABLE, "1")

"""TensorFlow's oneDNN CPU kernels on every x86 CPU, not only the newest.

TensorFlow on Linux turns oneDNN on by default only where the CPU has AVX512_VNNI,
AVX512_BF16, AVX_VNNI or AMX (`DefaultOneDnnPolicy` in tensorflow/core/util/port.cc).
Elsewhere (Xeons before Cascade Lake, Skylake's AVX-512 ones too; EPYCs up to Zen 3) it
runs its Eigen kernels, which are slower here: on a 2-core AMD EPYC with oneDNN capped at
AVX2 (`ONEDNN_MAX_CPU_ISA=AVX2`) against `TF_ENABLE_ONEDNN_OPTS=0`, the quickstart's step
ran 1.55x faster (15.3-16.2 vs 9.3-10.7 generator steps/s) and ResNet-CIFAR's (disc_iters
5) 1.27x faster (0.058 vs 0.046 steps/s); on a 2-core AVX2-only EPYC (Zen 3) itself,
ResNet-CIFAR's 1.35x (0.045 vs 0.034). So the entry points (`ssgan_tf.main`,
tools/benchmark.py, tools/train_mnist_classifier.py, the tests; not tools/sample.py,
which imports nothing of ssgan_tf) call `prefer_onednn()` before their first
`import tensorflow`: TensorFlow reads the variable once, when it loads. A value the user
has set is kept (`TF_ENABLE_ONEDNN_OPTS=0` gives Eigen's kernels and their numerics
back). Only on x86: on aarch64 TensorFlow's oneDNN runs through Arm's Compute Library, on
by default for Neoverse V1 only, and nothing was measured there. No TensorFlow import
here.
"""

import os
import platform

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
X86_MACHINES = ("x86_64", "amd64")  # platform.machine(): Linux, Windows.


def is_x86(machine=None):
  """Whether `machine` (`platform.machine()` when None) is an x86-64 CPU."""
  return (platform.machine() if machine is None else machine).lower() in X86_MACHINES


def prefer_onednn(machine=None):
  """On x86, sets TF_ENABLE_ONEDNN_OPTS=1 unless it is set; call before importing
  TensorFlow. `machine`: as for `is_x86`."""
  if is_x86(machine):
    os.environ.setdefault(ONEDNN_VARIABLE, "1")

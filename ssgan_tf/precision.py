"""Compute precision: the Keras dtype policy, and whether this hardware runs bf16 natively.

`set_precision(precision)` sets the global Keras dtype policy before models are built.
"mixed_bfloat16" (bf16 compute, float32 weights) only pays on hardware with bf16 units:
  GPU  compute capability >= 8.0 (Ampere and later); every visible GPU must have it.
  TPU  always.
  CPU  x86 `avx512_bf16` or `amx_bf16` (Cooper Lake, Sapphire Rapids, Zen 4 and later),
       or aarch64 `bf16` (e.g. Graviton3), in /proc/cpuinfo; and oneDNN on (TensorFlow's
       default on these CPUs): without oneDNN, TF's CPU kernels convert bf16 to float32
       and back around every op; nor may oneDNN be capped below its bf16 kernels
       (ONEDNN_MAX_CPU_ISA, or DNNL_MAX_CPU_ISA, set to e.g. AVX2 to time an older CPU).
Elsewhere bf16 is emulated, and much slower than float32: ResNet-CIFAR training measured
>6x slower on an AVX2-only CPU (25+ minutes vs 4 for the same 7 generator steps). So
`set_precision("mixed_bfloat16")` refuses there with a one-line ConfigError unless
forced with `allow_emulated_bf16=True`; where the hardware cannot be told (not Linux,
a GPU without a compute capability), it warns once and goes on.

`hardware_summary()` is what a benchmark record needs to be read later: CPU model, its
ISA flags that matter here, GPU names and compute capabilities, and `native_bf16`.
`warn_if_onednn_off()` warns once when an x86 CPU is to train on TensorFlow's Eigen
kernels instead of oneDNN's (`cpu_kernels`).
"""

import contextlib
import dataclasses
import os
import sys
from typing import Optional

from absl import logging
import keras
import tensorflow as tf
# TensorFlow's own answer to "is oneDNN on"; no public API gives it.
from tensorflow.python.util import _pywrap_util_port

from ssgan_tf import cpu_kernels
from ssgan_tf import errors

PRECISIONS = ("float32", "mixed_bfloat16")
CPUINFO_PATH = "/proc/cpuinfo"
# The CPU flags a benchmark record keeps (of the ~100 in /proc/cpuinfo): the vector width
# and the bf16 instructions; "bf16" is aarch64's (its "Features" line).
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "bf16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
BF16_MIN_COMPUTE_CAPABILITY = (8, 0)
# The variables oneDNN reads its CPU ISA cap from, in its order, and the caps (x86) below
# its first bf16 level, AVX512_CORE_BF16; the others (that level and up, ALL, DEFAULT)
# keep bf16 native where the CPU has it.
ISA_CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
ISA_CAPS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                         "AVX512_CORE_VNNI")
# What the issue measured (ResNet-CIFAR, AVX2-only CPU): the slowdown the messages quote.
EMULATED_SLOWDOWN = ">6x"
# Eigen's kernels against oneDNN's capped at AVX2 (2-core AMD EPYC; cpu_kernels): steps of
# ResNet-CIFAR 1.27x, of the quickstart 1.55x slower; on an AVX2-only EPYC, ResNet-CIFAR's
# 1.35x.
ONEDNN_OFF_SLOWDOWN = "1.3-1.6x"

_logged = set()  # Messages already logged once in this process.


@dataclasses.dataclass(frozen=True)
class CpuInfo:
  """What /proc/cpuinfo says about the CPU.

  Attributes:
    model_name: e.g. "Intel(R) Xeon(R) Platinum 8480+", or None (not given, e.g. on ARM).
    isa_flags: those of ISA_FLAGS the CPU has, in that order; None when unknown.
    native_bf16: True / False; None when unknown (no cpuinfo: not Linux, unreadable).
  """
  model_name: Optional[str]
  isa_flags: Optional[tuple]
  native_bf16: Optional[bool]


def parse_cpuinfo(text):
  """`CpuInfo` of a /proc/cpuinfo text (the first processor's entry is read)."""
  fields = {}
  for line in text.splitlines():
    key, sep, value = line.partition(":")
    key = key.strip()
    if sep and key not in fields:
      fields[key] = value.strip()
  # x86 lists its ISA extensions under "flags", aarch64 under "Features".
  flag_line = fields.get("flags", fields.get("Features"))
  if flag_line is None:
    return CpuInfo(fields.get("model name"), None, None)
  flags = set(flag_line.split())
  return CpuInfo(fields.get("model name"), tuple(f for f in ISA_FLAGS if f in flags),
                 any(f in flags for f in BF16_CPU_FLAGS))


def cpu_info(cpuinfo_path=None, platform=None):
  """`CpuInfo` of this machine (or of the file `cpuinfo_path`, e.g. a test's fake).

  Args:
    cpuinfo_path: a cpuinfo text file; None: CPUINFO_PATH on Linux.
    platform: `sys.platform` to assume (tests); off Linux, without a path, it is unknown.
  """
  if cpuinfo_path is None:
    if (platform or sys.platform) != "linux":
      return CpuInfo(None, None, None)
    cpuinfo_path = CPUINFO_PATH
  try:
    with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
      return parse_cpuinfo(f.read())
  except OSError:
    return CpuInfo(None, None, None)


def onednn_enabled():
  """Whether TensorFlow's oneDNN CPU kernels are on in this process.

  TensorFlow decided when it loaded: TF_ENABLE_ONEDNN_OPTS if set, else by the CPU
  (`cpu_kernels`); later changes to the variable do nothing.
  """
  return bool(_pywrap_util_port.IsMklEnabled())


def onednn_isa_cap():
  """`(variable, value)` of the oneDNN CPU ISA cap in force (value upper-case), or None.

  oneDNN reads ONEDNN_MAX_CPU_ISA, and DNNL_MAX_CPU_ISA when that is not set.
  """
  for variable in ISA_CAP_VARIABLES:
    value = os.environ.get(variable, "").strip()
    if value:
      return variable, value.upper()
  return None


def gpu_info():
  """The visible GPUs: `[{"name": str, "compute_capability": "8.0" or None}]`.

  Reads the physical devices only, so it does not initialise the TensorFlow runtime.
  """
  gpus = []
  for device in tf.config.get_visible_devices("GPU"):
    details = tf.config.experimental.get_device_details(device)
    capability = details.get("compute_capability")  # (major, minor); absent on ROCm.
    gpus.append({"name": details.get("device_name", device.name),
                 "compute_capability": "%d.%d" % capability if capability else None})
  return gpus


def _gpu_is_native(gpu):
  """True / False by compute capability; None when the GPU does not report one."""
  if gpu["compute_capability"] is None:
    return None
  major, minor = (int(part) for part in gpu["compute_capability"].split("."))
  return (major, minor) >= BF16_MIN_COMPUTE_CAPABILITY


def bf16_support(cpu=None, gpus=None, onednn=None):
  """Whether the devices that will compute run bf16 natively, and which they are.

  The GPUs compute when there are any (TensorFlow places ops there), else a TPU, else the
  CPU. Call after making the strategy: on a host without GPUs this lists the logical TPU
  devices, which initialises the TensorFlow runtime (a Cloud TPU appears only once its
  strategy has connected).

  Args:
    cpu: a `CpuInfo` (None: this machine's).
    gpus: `gpu_info()`-style list (None: this machine's).
    onednn: whether oneDNN's CPU kernels are on (None: `onednn_enabled()`).

  Returns:
    `(native, device)`: native True / False / None (cannot tell); device a short
    description for messages, e.g. "GPU Tesla T4 (compute capability 7.5)".
  """
  gpus = gpu_info() if gpus is None else gpus
  if gpus:
    verdicts = [_gpu_is_native(gpu) for gpu in gpus]
    # All must be native: a mirrored step waits for its slowest replica.
    native = False if False in verdicts else (None if None in verdicts else True)
    names = ", ".join(f"{gpu['name']} (compute capability {gpu['compute_capability']})"
                      for gpu in gpus)
    return native, f"GPU {names}"
  if tf.config.list_logical_devices("TPU"):
    return True, "TPU"
  cpu = cpu_info() if cpu is None else cpu
  name = cpu.model_name or "of unknown model"
  if cpu.native_bf16 is None:
    return None, f"CPU {name} (no /proc/cpuinfo to read its flags)"
  if not cpu.native_bf16:
    flags = "/".join(cpu.isa_flags) or "none of " + "/".join(ISA_FLAGS)
    return False, f"CPU {name} ({flags}; no {' or '.join(BF16_CPU_FLAGS[:2])})"
  if not (onednn_enabled() if onednn is None else onednn):
    return False, (f"CPU {name} (its bf16 units are unused: oneDNN is off, "
                   "TF_ENABLE_ONEDNN_OPTS=0)")
  cap = onednn_isa_cap()
  if cap and cap[1] in ISA_CAPS_WITHOUT_BF16:
    return False, (f"CPU {name} (its bf16 units are unused: oneDNN is capped at "
                   f"{cap[0]}={cap[1]})")
  return True, f"CPU {name}"


def hardware_summary():
  """The hardware fields of a benchmark record (JSON-ready).

  Returns:
    {"cpu_model": str or None, "cpu_isa": list of ISA_FLAGS present (None: unknown),
     "onednn": bool, "gpus": [{"name", "compute_capability"}], "bf16_device": str,
     "native_bf16": bool, or None when it cannot be told}.
  """
  cpu, gpus, onednn = cpu_info(), gpu_info(), onednn_enabled()
  native, device = bf16_support(cpu, gpus, onednn)
  return {"cpu_model": cpu.model_name,
          "cpu_isa": None if cpu.isa_flags is None else list(cpu.isa_flags),
          "onednn": onednn, "gpus": gpus, "bf16_device": device,
          "native_bf16": native}


def warn_if_onednn_off(gpus=None, onednn=None, machine=None):
  """Warns once when an x86 CPU is to compute without oneDNN's kernels.

  TF_ENABLE_ONEDNN_OPTS=0 (a line often copied to silence TensorFlow's oneDNN notice), or a
  program that imports TensorFlow itself on a CPU where TensorFlow leaves oneDNN off
  (cpu_kernels), trains on TensorFlow's slower Eigen kernels. Call after making the
  strategy, as `bf16_support`.

  Args:
    gpus: `gpu_info()`-style list (None: this machine's); with GPUs there is no warning.
    onednn: whether oneDNN's CPU kernels are on (None: `onednn_enabled()`).
    machine: as for `cpu_kernels.is_x86` (None: this machine's).

  Returns:
    The warning, or None when there is none (it is logged the first time only).
  """
  gpus = gpu_info() if gpus is None else gpus
  onednn = onednn_enabled() if onednn is None else onednn
  if gpus or onednn or not cpu_kernels.is_x86(machine):
    return None
  if tf.config.list_logical_devices("TPU"):  # The TPU computes, not its host's CPU.
    return None
  variable = cpu_kernels.ONEDNN_VARIABLE
  value = os.environ.get(variable)
  setting = (f"{variable}={value}" if value is not None
             else f"{variable} unset: TensorFlow's default on this CPU")
  message = (f"oneDNN's CPU kernels are off ({setting}): TensorFlow's Eigen kernels "
             f"train {ONEDNN_OFF_SLOWDOWN} slower (measured on a 2-core AMD EPYC); set "
             f"{variable}=1 before TensorFlow loads.")
  _log_once(logging.warning, message)
  return message


def _log_once(log_fn, message):
  if message not in _logged:
    _logged.add(message)
    log_fn(message)


def set_precision(precision, *, allow_emulated_bf16=False,
                  names=("train.precision", "train.allow_emulated_bf16")):
  """Sets the global Keras dtype policy; call before building models, after the strategy.

  Args:
    precision: one of PRECISIONS: "float32", or "mixed_bfloat16" (bf16 compute,
      float32 weights and optimizer state).
    allow_emulated_bf16: run "mixed_bfloat16" even where bf16 is emulated (to check
      numerics, or a config meant for other hardware); it is then logged once.
    names: how the messages name the two settings (the caller's gin bindings or flags).

  Raises:
    errors.ConfigError: an unknown precision; or "mixed_bfloat16" on hardware known to
      emulate bf16, unless `allow_emulated_bf16`.
  """
  if precision not in PRECISIONS:
    raise errors.ConfigError(f"unknown {names[0]} {precision!r}; choose one of "
                             f"{list(PRECISIONS)}.")
  if precision == "mixed_bfloat16":
    native, device = bf16_support()
    slow = (f"bf16 is emulated there, expect steps {EMULATED_SLOWDOWN} slower than "
            "float32 (measured on an AVX2-only CPU)")
    if native is False and not allow_emulated_bf16:
      raise errors.ConfigError(
          f"precision 'mixed_bfloat16' on {device}: {slow}; use {names[0]}='float32', "
          f"or force bf16 with {names[1]}=True.")
    cap = onednn_isa_cap()
    if native is False and device.startswith("CPU") and cap and onednn_enabled():
      # Measured (TF 2.21, ONEDNN_MAX_CPU_ISA=AVX2 on an AVX-512 EPYC): a bare bf16
      # tf.matmul ends the process with SIGSEGV, nothing a user could read.
      raise errors.ConfigError(
          f"{names[1]} with oneDNN capped ({cap[0]}={cap[1]}): TensorFlow "
          "2.21's bf16 MatMul crashes there (segfault); drop the cap, or also set "
          "TF_ENABLE_ONEDNN_OPTS=0 (bf16 then runs on TensorFlow's own kernels).")
    if native is False:
      _log_once(logging.info, f"mixed_bfloat16 forced on {device}: {slow}.")
    elif native is None and not allow_emulated_bf16:
      _log_once(logging.warning,
                f"mixed_bfloat16: cannot tell whether {device} computes bf16 natively; "
                f"if not, expect steps {EMULATED_SLOWDOWN} slower than float32: then use "
                f"{names[0]}='float32'.")
  keras.config.set_dtype_policy(precision)


@contextlib.contextmanager
def policy(precision, **kwargs):
  """`set_precision(precision, **kwargs)` for the models built inside the `with`; the
  global policy that was set before comes back after it (a library must not leave its
  own in the caller's process; models keep the policy they were built with)."""
  previous = keras.config.dtype_policy()
  set_precision(precision, **kwargs)
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)

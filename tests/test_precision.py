"""precision: bf16 detection from fake cpuinfo texts and GPU lists; set_precision's
refusal of emulated bf16, its force flag, and its one-time warning when it cannot tell."""

import json
import logging
from unittest import mock

import keras
import pytest

from ssgan_tf import errors
from ssgan_tf import precision

# Trimmed /proc/cpuinfo entries (two processors each: only the first is read).
_X86 = """processor\t: {n}
vendor_id\t: GenuineIntel
model name\t: {model}
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c {flags} rdrand
"""
AVX2_ONLY = "\n".join(_X86.format(n=n, model="Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz",
                                  flags="fma avx2 bmi2") for n in (0, 1))
AVX512_NO_BF16 = _X86.format(n=0, model="Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz",
                             flags="avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni")
AVX512_BF16 = "\n".join(_X86.format(n=n, model="Intel(R) Xeon(R) Platinum 8380H CPU",
                                    flags="avx2 avx512f avx512bw avx512_vnni avx512_bf16")
                        for n in (0, 1))
AMX = _X86.format(n=0, model="Intel(R) Xeon(R) Platinum 8480+",
                  flags="avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8")
GRAVITON3 = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics sve bf16 i8mm
CPU implementer\t: 0x41
"""


@pytest.fixture
def fake_host(tmp_path, monkeypatch):
  """Returns `use(cpuinfo_text, gpus=())`: makes this process see that CPU (on Linux,
  oneDNN on) and those GPUs; the dtype policy and the log-once memory are restored."""
  monkeypatch.setattr(precision, "_logged", set())
  monkeypatch.setattr(precision, "onednn_enabled", lambda: True)
  for variable in precision.ISA_CAP_VARIABLES:
    monkeypatch.delenv(variable, raising=False)
  monkeypatch.setattr(precision.sys, "platform", "linux")

  def use(text, gpus=()):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    monkeypatch.setattr(precision, "CPUINFO_PATH", str(path))
    monkeypatch.setattr(precision, "gpu_info", lambda: list(gpus))

  yield use
  keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("text, model, isa, native", [
    (AVX2_ONLY, "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", ("avx2",), False),
    (AVX512_NO_BF16, "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", ("avx2", "avx512f"),
     False),
    (AVX512_BF16, "Intel(R) Xeon(R) Platinum 8380H CPU", ("avx2", "avx512f", "avx512_bf16"),
     True),
    (AMX, "Intel(R) Xeon(R) Platinum 8480+", ("avx2", "avx512f", "avx512_bf16", "amx_bf16"),
     True),
    (GRAVITON3, None, ("bf16",), True),
    ("processor\t: 0\n", None, None, None),
])
def test_parse_cpuinfo_reads_model_isa_flags_and_native_bf16(text, model, isa, native):
  assert precision.parse_cpuinfo(text) == precision.CpuInfo(model, isa, native)


def test_cpu_is_unknown_off_linux_and_without_cpuinfo(tmp_path):
  unknown = precision.CpuInfo(None, None, None)
  assert precision.cpu_info(platform="darwin") == unknown
  assert precision.cpu_info(str(tmp_path / "missing")) == unknown
  path = tmp_path / "cpuinfo"
  path.write_text(AVX2_ONLY)
  assert precision.cpu_info(str(path), platform="darwin").native_bf16 is False


@pytest.mark.parametrize("capabilities, native", [
    (["8.0"], True), (["9.0", "8.6"], True), (["7.5"], False), (["8.0", "7.0"], False),
    ([None], None), (["8.0", None], None)])
def test_gpus_are_native_only_if_every_one_has_compute_capability_8(capabilities, native):
  gpus = [{"name": f"gpu{i}", "compute_capability": c} for i, c in enumerate(capabilities)]
  # The GPUs decide, whatever the CPU.
  result, device = precision.bf16_support(precision.parse_cpuinfo(AMX), gpus)
  assert result is native
  assert device.startswith("GPU gpu0 (compute capability")


def test_onednn_off_makes_a_bf16_cpu_emulated():
  native, device = precision.bf16_support(precision.parse_cpuinfo(AMX), [], onednn=False)
  assert native is False and "TF_ENABLE_ONEDNN_OPTS=0" in device


@pytest.mark.parametrize("variable, value, native", [
    ("ONEDNN_MAX_CPU_ISA", "AVX2", False), ("ONEDNN_MAX_CPU_ISA", "avx512_core", False),
    ("DNNL_MAX_CPU_ISA", "AVX512_CORE_VNNI", False),
    ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16", True), ("ONEDNN_MAX_CPU_ISA", "ALL", True)])
def test_a_onednn_isa_cap_below_bf16_makes_a_bf16_cpu_emulated(fake_host, monkeypatch,
                                                              variable, value, native):
  fake_host(AMX)
  monkeypatch.setenv(variable, value)
  assert precision.bf16_support()[0] is native
  if not native:
    with pytest.raises(errors.ConfigError) as error:
      precision.set_precision("mixed_bfloat16")
    message = str(error.value)
    assert "\n" not in message and f"{variable}={value.upper()}" in message, message


def test_mixed_bfloat16_is_refused_on_an_avx2_only_cpu_in_one_line(fake_host):
  fake_host(AVX2_ONLY)
  with pytest.raises(errors.ConfigError) as error:
    precision.set_precision("mixed_bfloat16")
  message = str(error.value)
  assert "\n" not in message
  for part in ("E5-2680 v4", "avx2", ">6x slower", "precision='float32'",
               "allow_emulated_bf16=True"):
    assert part in message
  assert keras.config.dtype_policy().name == "float32"  # Unchanged.


def test_mixed_bfloat16_is_refused_on_a_pre_ampere_gpu(fake_host):
  fake_host(AMX, gpus=[{"name": "Tesla T4", "compute_capability": "7.5"}])
  with pytest.raises(errors.ConfigError, match=r"Tesla T4 \(compute capability 7.5\)"):
    precision.set_precision("mixed_bfloat16")


def test_forced_emulated_bf16_runs_and_is_logged_once_without_warning(fake_host):
  fake_host(AVX2_ONLY)
  with mock.patch.object(precision.logging, "info") as info, \
       mock.patch.object(precision.logging, "warning") as warning:
    for _ in range(3):
      precision.set_precision("mixed_bfloat16", allow_emulated_bf16=True)
  assert keras.config.dtype_policy().name == "mixed_bfloat16"
  assert info.call_count == 1 and "forced" in info.call_args[0][0]
  warning.assert_not_called()


@pytest.mark.parametrize("text", [AVX512_BF16, AMX])
def test_mixed_bfloat16_is_set_silently_on_a_bf16_cpu(fake_host, text):
  fake_host(text)
  with mock.patch.object(precision.logging, "warning") as warning:
    precision.set_precision("mixed_bfloat16")
  assert keras.config.dtype_policy().name == "mixed_bfloat16"
  warning.assert_not_called()


def test_unknown_hardware_warns_once_in_one_line_with_the_fix(fake_host, monkeypatch):
  fake_host(AVX2_ONLY)
  monkeypatch.setattr(precision.sys, "platform", "darwin")
  with mock.patch.object(precision.logging, "warning") as warning:
    for _ in range(3):
      precision.set_precision("mixed_bfloat16")
  assert keras.config.dtype_policy().name == "mixed_bfloat16"
  assert warning.call_count == 1
  message = warning.call_args[0][0]
  assert "\n" not in message and ">6x slower" in message and "precision='float32'" in message


def test_float32_is_set_silently_on_hardware_that_cannot_be_told(fake_host, monkeypatch,
                                                                 caplog):
  # Where mixed_bfloat16 warns (the test above), float32 has nothing to say.
  fake_host(AVX2_ONLY)
  monkeypatch.setattr(precision.sys, "platform", "darwin")
  with caplog.at_level(logging.INFO):
    precision.set_precision("float32")
  assert keras.config.dtype_policy().name == "float32"
  assert not caplog.records


def test_unknown_precision_is_a_one_line_config_error():
  with pytest.raises(errors.ConfigError, match=r"^unknown train.precision 'float16'; choose "
                     r"one of \['float32', 'mixed_bfloat16'\]\.$"):
    precision.set_precision("float16")
  # A tool names its own flags.
  with pytest.raises(errors.ConfigError, match=r"^unknown --precision 'float16'"):
    precision.set_precision("float16", names=("--precision", "--allow_emulated_bf16"))


def test_hardware_summary_is_json_ready_and_consistent():
  summary = precision.hardware_summary()
  assert set(summary) == {"cpu_model", "cpu_isa", "onednn", "gpus", "bf16_device",
                          "native_bf16"}
  assert summary["native_bf16"] in (True, False, None)
  assert all(flag in precision.ISA_FLAGS for flag in summary["cpu_isa"] or [])
  assert json.loads(json.dumps(summary)) == summary


@pytest.mark.parametrize("gpus, onednn, machine, warns", [
    ([], False, "x86_64", True), ([], True, "x86_64", False),
    ([{"name": "gpu0", "compute_capability": "8.0"}], False, "x86_64", False),
    ([], False, "aarch64", False)])
def test_an_x86_cpu_without_onednn_is_warned_about_once(monkeypatch, caplog, gpus, onednn,
                                                        machine, warns):
  monkeypatch.setattr(precision, "_logged", set())
  monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
  message = precision.warn_if_onednn_off(gpus, onednn, machine)
  again = precision.warn_if_onednn_off(gpus, onednn, machine)
  warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
  if warns:
    assert message == again and "(TF_ENABLE_ONEDNN_OPTS=0)" in message, message
    assert "set TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow loads" in message
    assert warnings == [message]
  else:
    assert message is None and again is None and warnings == []


def test_the_warning_names_tensorflows_default_when_the_variable_is_unset(monkeypatch):
  monkeypatch.setattr(precision, "_logged", set())
  monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
  message = precision.warn_if_onednn_off([], False, "x86_64")
  assert "(TF_ENABLE_ONEDNN_OPTS unset: TensorFlow's default on this CPU)" in message


def test_forced_bf16_under_a_onednn_cap_is_refused_not_a_segfault(fake_host, monkeypatch):
  fake_host(AMX)
  monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
  with pytest.raises(errors.ConfigError, match=(
      r"train\.allow_emulated_bf16 with oneDNN capped \(ONEDNN_MAX_CPU_ISA=AVX2\): "
      r"TensorFlow 2\.21's bf16 MatMul crashes there \(segfault\); drop the cap, or also set "
      r"TF_ENABLE_ONEDNN_OPTS=0")):
    precision.set_precision("mixed_bfloat16", allow_emulated_bf16=True)
  assert keras.config.dtype_policy().name == "float32"
  monkeypatch.setattr(precision, "onednn_enabled", lambda: False)  # As with ..._OPTS=0.
  precision.set_precision("mixed_bfloat16", allow_emulated_bf16=True)
  assert keras.config.dtype_policy().name == "mixed_bfloat16"

"""The command line turns oneDNN's CPU kernels on (x86) before TensorFlow loads, unless
the user set TF_ENABLE_ONEDNN_OPTS; `precision.onednn_enabled()` reports what TensorFlow
chose.

The command line is checked in subprocesses: TensorFlow reads the variable once per
process (this one's is set by conftest).
"""

import os
import subprocess
import sys

import pytest

from ssgan_tf import cpu_kernels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What `python -m ssgan_tf.main` does before its TensorFlow imports, then the state.
PROBE = ("import os; import ssgan_tf.main; from ssgan_tf import precision; "
         f"print(os.environ['{cpu_kernels.ONEDNN_VARIABLE}'], precision.onednn_enabled())")


@pytest.mark.skipif(not cpu_kernels.is_x86(), reason="switched on x86 only")
@pytest.mark.parametrize("user_value, printed", [(None, ["1", "True"]),
                                                 ("0", ["0", "False"])])
def test_main_turns_onednn_on_unless_the_user_chose(user_value, printed):
  env = {k: v for k, v in os.environ.items() if k != cpu_kernels.ONEDNN_VARIABLE}
  if user_value is not None:
    env[cpu_kernels.ONEDNN_VARIABLE] = user_value
  process = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
  assert process.returncode == 0, process.stderr[-2000:]
  assert process.stdout.split()[-2:] == printed


@pytest.mark.parametrize("machine, value", [("x86_64", "1"), ("AMD64", "1"),
                                            ("aarch64", None), ("arm64", None)])
def test_only_x86_is_switched(monkeypatch, machine, value):
  monkeypatch.delenv(cpu_kernels.ONEDNN_VARIABLE, raising=False)
  cpu_kernels.prefer_onednn(machine)
  assert os.environ.get(cpu_kernels.ONEDNN_VARIABLE) == value

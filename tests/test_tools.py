"""The command-line edges of tools/gpu_check.sh and tools/train_mnist_classifier.py: help
and bad input end in usage or one `error:` line, earlier results and user-named folders
are left alone. (tools/sample.py: test_export.py; tools/benchmark.py: test_benchmark.py.)
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPU_CHECK = os.path.join(ROOT, "tools", "gpu_check.sh")


def _gpu_check(tmp_path, *args, **env):
  """gpu_check.sh with OUT and its scratch under tmp_path, on the CPU."""
  env = dict(os.environ, OUT=str(tmp_path / "out"), GPU_CHECK_WORKDIR=str(tmp_path / "scratch"),
             GPU_CHECK_PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3",
             **env)
  return subprocess.run(["bash", GPU_CHECK, *args], capture_output=True, text=True, env=env,
                        timeout=120, check=False)


def test_gpu_check_help_prints_the_usage_and_runs_nothing(tmp_path):
  for flag in ("--help", "-h"):
    result = _gpu_check(tmp_path, flag)
    assert result.returncode == 0 and not result.stderr, result.stderr
    assert "OUT=DIR bash tools/gpu_check.sh" in result.stdout
    assert "GPU_CHECK_WORKDIR" in result.stdout and "set -uo" not in result.stdout
  result = _gpu_check(tmp_path, "--smoke")
  assert result.returncode == 1 and result.stderr.startswith("error: unknown argument")
  assert result.stderr.count("\n") == 1
  assert not (tmp_path / "out").exists() and not (tmp_path / "scratch").exists()


def test_gpu_check_keeps_earlier_results(tmp_path):
  (tmp_path / "out").mkdir()
  (tmp_path / "out" / "gpu_check.jsonl").write_text('{"check": "summary", "ok": true}\n')
  result = _gpu_check(tmp_path)
  assert result.returncode == 1
  assert result.stderr.splitlines() == [
      f"error: {tmp_path}/out/gpu_check.jsonl exists (an earlier run's results); move it "
      "away, or set OUT to another folder"]
  assert (tmp_path / "out" / "gpu_check.jsonl").read_text() == (
      '{"check": "summary", "ok": true}\n')
  assert os.listdir(tmp_path / "out") == ["gpu_check.jsonl"]


def test_gpu_check_reads_a_relative_out_from_the_callers_directory(tmp_path):
  (tmp_path / "rel").mkdir()
  (tmp_path / "rel" / "gpu_check.jsonl").write_text("")
  env = dict(os.environ, OUT="rel", GPU_CHECK_PYTHON=sys.executable)
  result = subprocess.run(["bash", GPU_CHECK], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120, check=False)
  assert result.returncode == 1
  assert result.stderr.startswith(f"error: {tmp_path}/rel/gpu_check.jsonl exists")


def test_gpu_check_without_a_gpu_says_why_and_keeps_the_scratch_folders_files(tmp_path):
  scratch = tmp_path / "scratch"
  scratch.mkdir()
  (scratch / "mine.txt").write_text("the user's")
  result = _gpu_check(tmp_path, GPU_CHECK_ONLY="none")
  assert result.returncode == 2, result.stderr[-2000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: TensorFlow sees no GPU: not timing the CPU"), last
  lines = [json.loads(line) for line in (tmp_path / "out" / "gpu_check.jsonl").read_text()
           .splitlines()]
  assert [line["check"] for line in lines] == ["nvidia_smi", "setup", "summary"]
  assert lines[-1]["ok"] is False and "sees no GPU" in lines[-1]["reason"]
  assert (scratch / "mine.txt").read_text() == "the user's"
  [own] = [name for name in os.listdir(scratch) if name != "mine.txt"]
  assert own.startswith("gpu_check.")


def test_train_mnist_classifier_bad_output_is_one_error_line(tmp_path):
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "tools", "train_mnist_classifier.py"),
       f"--output={tmp_path / 'x.h5'}"], capture_output=True, text=True, timeout=120,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""), check=False)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: --output must end in .weights.h5; got '{tmp_path / 'x.h5'}'.")
  assert "python tools/train_mnist_classifier.py" not in result.stderr  # No usage text.
  assert not os.listdir(tmp_path)


def test_gpu_check_skips_bf16_where_it_is_emulated_and_ran_nothing_is_not_a_success(tmp_path):
  # Smoke mode on the CPU. As on a GPU before Ampere: oneDNN off makes this CPU's bf16
  # emulated (precision.py), so the one check GPU_CHECK_ONLY selects is skipped.
  result = _gpu_check(tmp_path, GPU_CHECK_ONLY="quickstart_mixed_bfloat16",
                      GPU_CHECK_SMOKE="1", TF_ENABLE_ONEDNN_OPTS="0")
  assert result.returncode == 4, result.stderr[-2000:]
  assert result.stderr.strip().splitlines()[-1] == (
      "error: 0 check(s) failed, 0 passed (GPU_CHECK_ONLY='quickstart_mixed_bfloat16')")
  lines = [json.loads(line) for line in (tmp_path / "out" / "gpu_check.jsonl").read_text()
           .splitlines()]
  assert lines[-1]["check"] == "summary" and lines[-1]["ok"] is False
  assert "tf32" in lines[1]  # The setup line: what "float32" measured on a GPU.
  # GPU_CHECK_PYTHON (a venv's python: a link) has the requirements: no venv of its own.
  assert lines[1]["made_venv"] is False and lines[1]["python_path"] == sys.executable
  [skipped] = [line for line in lines if line.get("name") == "quickstart_mixed_bfloat16"]
  assert skipped["skipped"] is True
  assert skipped["reason"].startswith("precision 'mixed_bfloat16' on CPU ")
  assert "bf16 is emulated there" in skipped["reason"] and "; use" not in skipped["reason"]

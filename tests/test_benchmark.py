"""tools/benchmark.py end to end on a tiny SNDCGAN: one JSON line with the hardware,
exact FLOP counts, the time budget, the input-pipeline mode (--data), the mode that runs
each architecture at its resolution (--architectures) and one-line errors."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH, Z_DIM, BASE = 8, 16, 8
RESOLUTION, CHANNELS = 32, 1  # CIFAR-10's resolution (the config's), --channels=1.
TINY_PARAMS = ['networks.architecture="sndcgan"',
               f'networks.generator_kwargs={{"base_channels": {BASE}}}',
               f'networks.discriminator_kwargs={{"base_channels": {BASE}}}',
               f"ssgan.global_batch_size={BATCH}", f"ssgan.rotated_batch_size={BATCH}",
               f"ssgan.z_dim={Z_DIM}", "ssgan.disc_iters=2"]
HARDWARE_TYPES = {"cpu_model": (str, type(None)), "cpu_isa": (list, type(None)),
                  "onednn": bool, "gpus": list, "bf16_device": str,
                  "native_bf16": (bool, type(None))}


def run_benchmark(*args, env=None, config=os.path.join("cifar10", "ssgan.gin")):
  """tools/benchmark.py on the tiny SNDCGAN (CPU only); returns the finished process."""
  command = [sys.executable, os.path.join(ROOT, "tools", "benchmark.py"),
             "--gin_file", os.path.join(ROOT, "gin_configs", config),
             *[f"--gin_param={p}" for p in TINY_PARAMS], *args]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", **(env or {}))
  return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True, env=env, timeout=300, check=False)


def one_json_line(result):
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.strip().splitlines()
  assert len(lines) == 1, result.stdout
  report = json.loads(lines[0])
  for key, expected in HARDWARE_TYPES.items():
    assert isinstance(report[key], expected), (key, report[key])
  return report


def generator_forward_flops():
  """2 x multiply-adds of the SNDCGAN generator on BATCH images, from its layer shapes.

  fc z -> 4x4x8b, then 4x4 stride-2 transposed convs 8b -> 4b -> 2b -> b (inputs 4x4,
  8x8, 16x16) and a 3x3 transposed conv b -> CHANNELS at 32x32; a transposed conv does
  (input pixels) x c_in x kh x kw x c_out multiply-adds.
  """
  first = RESOLUTION // 8
  fc = Z_DIM * first * first * 8 * BASE
  deconvs = sum(side * side * c_in * 4 * 4 * (c_in // 2)
                for side, c_in in ((first, 8 * BASE), (2 * first, 4 * BASE),
                                   (4 * first, 2 * BASE)))
  to_image = RESOLUTION * RESOLUTION * BASE * 3 * 3 * CHANNELS
  return 2 * BATCH * (fc + deconvs + to_image), 2 * BATCH * fc


def test_benchmark_prints_one_json_line_with_exact_generator_flops():
  # The images take the config's resolution (CIFAR-10's 32) unless --resolution is given.
  report = one_json_line(run_benchmark(f"--channels={CHANNELS}", "--warmup=1", "--steps=2"))
  expected_types = {
      "config": list, "arch": str, "global_batch_size": int, "disc_iters": int,
      "replicas": int, "precision": str, "xla": bool, "gen_steps_per_sec": float,
      "images_per_sec": float, "step_ms_median": float, "step_ms_all": list,
      "flops_per_gen_step": int, "achieved_gflops": float, "load_average_before": list,
      "tf": str, "keras": str}
  for key, expected in expected_types.items():
    assert isinstance(report[key], expected), (key, report[key])
  assert (report["mode"], report["arch"], report["global_batch_size"],
          report["disc_iters"]) == ("step", "sndcgan", BATCH, 2)
  assert len(report["step_ms_all"]) == report["steps_measured"] == 2
  assert report["image_shape"] == [RESOLUTION, RESOLUTION, CHANNELS]
  # Two tiny steps are far within the default budget.
  assert report["budget_exhausted"] is False and report["max_seconds"] == 300
  assert report["images_per_sec"] == report["gen_steps_per_sec"] * BATCH * 2

  # G runs forward once per update; the G update also backpropagates through it: the
  # weight gradients cost as much as the forward, the input gradients too except the
  # one of the first layer (d loss / d z), which nothing uses and the runtime prunes.
  forward, fc = generator_forward_flops()
  d_step, g_step = report["flops_breakdown"]["d_step"], report["flops_breakdown"]["g_step"]
  assert d_step["generator/forward"] == g_step["generator/forward"] == forward
  assert "generator/backward" not in d_step
  assert g_step["generator/backward"] == 2 * forward - fc
  assert report["flops_per_gen_step"] == 2 * d_step["total"] + g_step["total"]


def test_data_mode_times_each_source_against_the_step_within_a_spent_budget(tmp_path):
  # A budget far below one step: every step timing stops after 1 warm-up + 1 timed step.
  # An empty --data_dir: every TFDS dataset is listed as skipped, none is read.
  report = one_json_line(run_benchmark(
      "--data", "--make_folder=6", "--folder_resolutions=16", f"--data_dir={tmp_path}",
      "--data_seconds=0.2", "--warmup=2", "--steps=5", "--max_seconds=0.001"))
  assert report["mode"] == "data" and report["pipeline_batch_size"] == BATCH * 2
  rows = {row["source"]: row for row in report["sources"]}
  assert sorted(rows) == ["folder16", "mnist"]
  assert rows["mnist"]["image_shape"] == [32, 32, 1]
  assert rows["folder16"]["image_shape"] == [16, 16, 3]
  assert rows["folder16"]["images_in_split"] == 6
  for row in rows.values():
    assert row["batches_timed"] >= 1 and row["pipeline_images_per_sec"] > 0
    assert row["step_steps_measured"] == 1 and row["step_budget_exhausted"] is True
    assert row["ratio"] == row["pipeline_images_per_sec"] / row["step_images_per_sec"]
    assert row["meets_target"] == (row["ratio"] >= 3)
  assert {s["source"] for s in report["skipped"]} >= {"cifar10", "celeb_a"}
  assert all("not prepared" in s["reason"] for s in report["skipped"])


def test_architectures_mode_gives_a_line_and_a_table_row_per_architecture():
  # Two of them, tiny, within a spent budget (1 warm-up + 1 timed step each): sndcgan, and
  # resnet_stl at its own 48 px. The config's sndcgan widths (TINY_PARAMS) are replaced by
  # each architecture's tiny ones.
  result = run_benchmark("--architectures=sndcgan,resnet_stl", "--tiny_widths",
                         "--warmup=1", "--steps=1", "--max_seconds=0.001")
  assert result.returncode == 0, result.stderr[-3000:]
  reports = [json.loads(line) for line in result.stdout.strip().splitlines()]
  assert [(r["arch"], r["image_shape"]) for r in reports] == [
      ("sndcgan", [32, 32, 3]), ("resnet_stl", [48, 48, 3])]
  for report in reports:
    assert report["g_params"] > 0 and report["d_params"] > 0
    assert report["flops_per_gen_step"] > 0 and report["steps_measured"] == 1
    assert (report["global_batch_size"], report["disc_iters"]) == (BATCH, 2)
  # sndcgan G of width 4 at 32 px: fc z -> 4x4x32 (with bias), deconvs 32 -> 16 -> 8 -> 4
  # (4x4 kernels, with bias), a BN (scale and offset) after the fc and each deconv, and a
  # 3x3 transposed conv 4 -> 3 (with bias).
  fc = Z_DIM * 512 + 512
  deconvs = sum(16 * c_in * (c_in // 2) + c_in // 2 for c_in in (32, 16, 8))
  bns = 2 * (512 + 16 + 8 + 4)
  assert reports[0]["g_params"] == fc + deconvs + bns + 9 * 4 * 3 + 3
  table = result.stderr[result.stderr.index("| architecture |"):].splitlines()
  assert [row.split("|")[1].strip() for row in table[2:4]] == ["sndcgan", "resnet_stl"]
  assert f"{reports[1]['g_params']:,}" in table[3]


def test_emulated_bf16_and_bad_flags_end_in_one_line_errors():
  # Without oneDNN no CPU computes bf16 natively, whatever its flags.
  result = run_benchmark("--precision=mixed_bfloat16", env={"TF_ENABLE_ONEDNN_OPTS": "0"})
  assert result.returncode == 1 and not result.stdout
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: precision 'mixed_bfloat16' on CPU") and (
      "allow_emulated_bf16" in last), last
  # A config error is one line too (it was a traceback: gin was parsed outside the try).
  result = run_benchmark("--gin_param=train.no_such_setting = 1")
  assert result.returncode == 1 and not result.stdout
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and "train.no_such_setting" in last, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  result = run_benchmark("--make_folder=3")
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      "error: --image_dir, --make_folder and --data_dir are read with --data only; "
      "add --data."), result.stderr[-500:]

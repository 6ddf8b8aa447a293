"""tools/benchmark.py end to end on a tiny SNDCGAN: one JSON line, and exact FLOP counts."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH, Z_DIM, BASE, RESOLUTION = 8, 16, 8, 16


def generator_forward_flops():
  """2 x multiply-adds of the SNDCGAN generator on BATCH images, from its layer shapes.

  fc z -> 2x2x8b, then 4x4 stride-2 transposed convs 8b -> 4b -> 2b -> b (inputs 2x2,
  4x4, 8x8) and a 3x3 transposed conv b -> 3 at 16x16; a transposed conv does
  (input pixels) x c_in x kh x kw x c_out multiply-adds.
  """
  fc = Z_DIM * 2 * 2 * 8 * BASE
  deconvs = sum(side * side * c_in * 4 * 4 * (c_in // 2)
                for side, c_in in ((2, 8 * BASE), (4, 4 * BASE), (8, 2 * BASE)))
  to_image = RESOLUTION * RESOLUTION * BASE * 3 * 3 * 3
  return 2 * BATCH * (fc + deconvs + to_image), 2 * BATCH * fc


def test_benchmark_prints_one_json_line_with_exact_generator_flops():
  params = ['networks.architecture="sndcgan"',
            f'networks.generator_kwargs={{"base_channels": {BASE}}}',
            f'networks.discriminator_kwargs={{"base_channels": {BASE}}}',
            f"ssgan.global_batch_size={BATCH}", f"ssgan.rotated_batch_size={BATCH}",
            f"ssgan.z_dim={Z_DIM}", "ssgan.disc_iters=2"]
  command = [sys.executable, os.path.join(ROOT, "tools", "benchmark.py"),
             "--gin_file", os.path.join(ROOT, "gin_configs", "ssgan_cifar10_resnet.gin"),
             f"--resolution={RESOLUTION}", "--warmup=1", "--steps=2"]
  command += [f"--gin_param={p}" for p in params]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.strip().splitlines()
  assert len(lines) == 1, result.stdout
  report = json.loads(lines[0])

  expected_types = {
      "config": list, "arch": str, "global_batch_size": int, "disc_iters": int,
      "replicas": int, "precision": str, "xla": bool, "gen_steps_per_sec": float,
      "images_per_sec": float, "step_ms_median": float, "step_ms_all": list,
      "flops_per_gen_step": int, "achieved_gflops": float, "load_average_before": list,
      "tf": str, "keras": str}
  for key, expected in expected_types.items():
    assert isinstance(report[key], expected), (key, report[key])
  assert (report["arch"], report["global_batch_size"], report["disc_iters"]) == (
      "sndcgan", BATCH, 2)
  assert len(report["step_ms_all"]) == 2
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

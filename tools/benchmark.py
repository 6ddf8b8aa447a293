"""Times SS-GAN generator steps on synthetic data, counts their FLOPs, compares a peer.

One generator step = `ssgan.disc_iters` D updates + 1 G update (one `train_step`). The
model is built from the gin file(s) as for training, inside the strategy scope, and
stepped with Keras' own train function; the data are random images in [-1, 1]
(`global_batch_size * disc_iters` per step), so the input pipeline costs nothing.

  python tools/benchmark.py --gin_file=gin_configs/ssgan_cifar10_resnet.gin \
      --gin_param=ssgan.disc_iters=5 [--precision=mixed_bfloat16] [--xla] \
      [--peer_script=PATH/peer_mimicry_bench.py] [--profile_dir=DIR]

Prints ONE JSON line on stdout; progress and the profile table go to stderr.

FLOPs are 2 x the multiply-adds of convolutions and matrix products, forward and
backward (what torch's FlopCounterMode counts, so the peer's count compares directly;
elementwise ops are left out), read off the traced D and G updates after pruning the ops
the TF runtime prunes as well (e.g. D's weight gradients, which the G update never uses).
"""

import collections
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags
import gin
import keras
import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

# Run as a script, the repository root is not on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ssgan_tf import distribute  # noqa: E402
from ssgan_tf import ssgan  # noqa: E402
# Registers every configurable a config file binds (dataset.*, train.*, ...).
from ssgan_tf import train_lib  # noqa: E402,F401  pylint: disable=unused-import

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("gin_file", None, "Gin config file(s), in order.")
flags.DEFINE_multi_string("gin_param", [], "Gin bindings applied after the files.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored"], "Distribution strategy.")
flags.DEFINE_integer("num_cpu_devices", 0,
                     "mirrored on a host without GPUs: split the CPU into this many devices.")
flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16"],
                  "Keras global dtype policy, set before the networks are built.")
flags.DEFINE_bool("xla", False, "Compile the step with XLA (jit_compile=True); one device only.")
flags.DEFINE_integer("intra_op_threads", 0, "TF intra-op threads (0 = TF's default).")
flags.DEFINE_integer("inter_op_threads", 0, "TF inter-op threads (0 = TF's default).")
flags.DEFINE_integer("warmup", 2, "Untimed generator steps first (tracing, compilation).")
flags.DEFINE_integer("steps", 5, "Timed generator steps.")
flags.DEFINE_integer("resolution", 32, "Height = width of the synthetic images.")
flags.DEFINE_integer("channels", 3, "Channels of the synthetic images.")
flags.DEFINE_string("peer_script", None,
                    "peer_mimicry_bench.py: after our timing, time torch-mimicry's SSGAN at "
                    "the same batch size and disc_iters, and add the comparison.")
flags.DEFINE_integer("peer_steps", 3, "Timed generator steps of the peer.")
flags.DEFINE_string("profile_dir", None,
                    "Trace 2 more steps (after the timed ones) with the TF profiler into this "
                    "directory and print the kernel time per op type to stderr (summed over "
                    "threads: ops that run concurrently overlap).")
flags.mark_flag_as_required("gin_file")

CONV_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")
MATMUL_OPS = ("MatMul", "BatchMatMulV2", "BatchMatMulV3")
# The networks' name scopes; their gradient ops live under "gradient_tape/<scope>".
NETWORKS = ("generator", "discriminator")
# The torch-mimicry model that is the same network as each of our architectures.
PEER_MODELS = {"resnet_cifar": "ssgan32"}
# Environment settings that change the speed, recorded in the report when set.
ENV_KEYS = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_DEFAULT_FPMATH_MODE", "OMP_NUM_THREADS",
            "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "TF_XLA_FLAGS")
# A kernel event of the TF profiler is named "<op name>:<op type>".
KERNEL_EVENT = re.compile(r"^[^\s:]+:(\w+)$")


def log(message):
  print(message, file=sys.stderr, flush=True)


def parse_gin(files, params):
  """Parses the configs (their data and training-loop bindings go unused); returns the
  architecture name."""
  gin.parse_config_files_and_bindings(files, params)
  return gin.query_parameter("networks.architecture")


def build(strategy, image_shape, xla):
  """The compiled SSGAN model of the parsed config, built inside the strategy scope."""
  with strategy.scope():
    model = ssgan.build_ssgan(image_shape, strategy.num_replicas_in_sync)
    d_optimizer, g_optimizer = ssgan.build_optimizers()
    model.compile(d_optimizer, g_optimizer, jit_compile=xla)
  return model


def synthetic_iterator(strategy, model, image_shape):
  """Per replica, the same `[disc_iters * per_replica_batch, *image_shape]` images forever."""
  shape = [model.disc_iters * model.batch.per_replica_batch, *image_shape]
  images = tf.random.uniform(shape, -1.0, 1.0, seed=0)
  return iter(strategy.distribute_datasets_from_function(
      lambda _: tf.data.Dataset.from_tensors(images).repeat()))


def run_steps(model, iterator, num_steps):
  """Runs `num_steps` generator steps; returns the seconds of each."""
  seconds = []
  for _ in range(num_steps):
    start = time.perf_counter()
    logs = model.train_function(iterator)
    float(logs["loss/g"])  # Fetching a value waits for the step to finish.
    seconds.append(time.perf_counter() - start)
  return seconds


# FLOP counting.

def op_flops(op):
  """2 x multiply-adds of a conv or matmul graph op (static shapes), else 0."""
  if op.type in CONV_OPS:
    # Conv2D (input, filter) -> out; BackpropInput (sizes, filter, d_out) -> d_input;
    # BackpropFilter (input, sizes, d_out) -> d_filter. Each does prod(out) * kh * kw *
    # c_in multiply-adds, `out` being the forward output (a transposed conv is a
    # BackpropInput op, its input playing `out`).
    out = op.outputs[0] if op.type == "Conv2D" else op.inputs[2]
    kernel = op.outputs[0] if op.type == "Conv2DBackpropFilter" else op.inputs[1]
    kh, kw, c_in, _ = kernel.shape
    return 2 * out.shape.num_elements() * kh * kw * c_in
  if op.type in MATMUL_OPS:
    transpose_a = op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x")
    a = op.inputs[0].shape
    return 2 * op.outputs[0].shape.num_elements() * (a[-2] if transpose_a else a[-1])
  return 0


def live_ops(graph):
  """The ops the runtime runs: ancestors of the outputs and of the stateful updates."""
  stack = [t.op for t in graph.outputs] + list(graph.control_outputs)
  live = set()
  while stack:
    op = stack.pop()
    if op not in live:
      live.add(op)
      stack.extend(t.op for t in op.inputs)
      stack.extend(op.control_inputs)
  return live


def flops_by_part(graph):
  """FLOPs of a graph's live ops by "<network>/<forward|backward>"."""
  parts = collections.Counter()
  for op in live_ops(graph):
    flops = op_flops(op)
    if flops:
      scopes = op.name.split("/")
      network = next((n for n in NETWORKS if any(s.startswith(n) for s in scopes)), "other")
      direction = "backward" if "gradient_tape" in scopes else "forward"
      parts[f"{network}/{direction}"] += flops
  return dict(sorted(parts.items()))


def count_flops(strategy, model, image_shape):
  """FLOPs of one generator step (`train_step`: disc_iters D updates + 1 G update) over
  all replicas; and of one D update and one G update by part, with totals."""
  b = model.batch.per_replica_batch
  real = tf.TensorSpec([b, *image_shape], tf.float32)
  z = tf.TensorSpec([b, model.z_dim], tf.float32)
  # Traced only, never run: no variable changes. strategy.run traces one copy of the
  # update per replica, so the counts are global.
  d_step = tf.function(lambda r, z: strategy.run(model.discriminator_step, (r, z)))
  g_step = tf.function(lambda z: strategy.run(model.generator_step, (z,)))
  phases = {"d_step": flops_by_part(d_step.get_concrete_function(real, z).graph),
            "g_step": flops_by_part(g_step.get_concrete_function(z).graph)}
  for parts in phases.values():
    parts["total"] = sum(parts.values())
  total = model.disc_iters * phases["d_step"]["total"] + phases["g_step"]["total"]
  return total, phases


# Profile and peer.

def profile(model, iterator, logdir, num_steps=2):
  """Traces `num_steps` steps into `logdir`; returns [(op type, ms per step, share)]."""
  tf.profiler.experimental.start(logdir)
  run_steps(model, iterator, num_steps)
  tf.profiler.experimental.stop()
  path = max(glob.glob(os.path.join(logdir, "plugins/profile/*/*.xplane.pb")),
             key=os.path.getmtime)
  space = xplane_pb2.XSpace()
  with open(path, "rb") as f:
    space.ParseFromString(f.read())
  picoseconds = collections.Counter()
  for plane in space.planes:
    for line in plane.lines:
      for event in line.events:
        match = KERNEL_EVENT.match(plane.event_metadata[event.metadata_id].name)
        if match:
          picoseconds[match.group(1)] += event.duration_ps
  total = sum(picoseconds.values())
  return [(op_type, ps / 1e9 / num_steps, ps / total)
          for op_type, ps in picoseconds.most_common()]


def run_peer(script, arch, global_batch_size, disc_iters, num_steps):
  """torch-mimicry's timing JSON for the same network, batch size and disc_iters."""
  # The script re-executes itself in its own environment when this Python lacks torch.
  command = [sys.executable, script, "--model", PEER_MODELS[arch],
             "--batch_size", str(global_batch_size), "--n_dis", str(disc_iters),
             "--iters", str(num_steps), "--count_flops"]
  log("peer: " + " ".join(command))
  result = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
  return json.loads(result.stdout.strip().splitlines()[-1])


def check_flags(arch):
  """One-line ValueErrors for flag values that cannot work."""
  if FLAGS.xla and FLAGS.strategy != "default":
    raise ValueError("--xla works on one device only (Keras cannot compile a step under "
                     "MirroredStrategy); drop --xla or use --strategy=default.")
  if FLAGS.warmup < 1 or FLAGS.steps < 1:
    raise ValueError("--warmup and --steps must be >= 1 (the first step traces the graph).")
  if FLAGS.peer_script and arch not in PEER_MODELS:
    raise ValueError(f"the peer has no {arch!r} network; --peer_script needs architecture "
                     f"one of {sorted(PEER_MODELS)}.")
  if FLAGS.peer_script and not os.path.isfile(FLAGS.peer_script):
    raise ValueError(f"--peer_script {FLAGS.peer_script!r} not found; pass the path of "
                     "peer_mimicry_bench.py.")


def time_steps(model, iterator):
  """Warm-up, then timed steps; the timing fields of the report."""
  log(f"{FLAGS.warmup} warm-up step(s)")
  warmup_seconds = run_steps(model, iterator, FLAGS.warmup)
  load_average = os.getloadavg()
  log(f"{FLAGS.steps} timed step(s)")
  cpu_before = os.times()
  seconds = run_steps(model, iterator, FLAGS.steps)
  cpu_after = os.times()
  cpu_seconds = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
  steps_per_sec = len(seconds) / sum(seconds)
  return {
      "gen_steps_per_sec": steps_per_sec,
      "images_per_sec": steps_per_sec * model.batch.global_batch_size * model.disc_iters,
      "step_ms_median": 1e3 * statistics.median(seconds),
      "step_ms_all": [round(1e3 * s, 1) for s in seconds],
      "warmup_ms_all": [round(1e3 * s, 1) for s in warmup_seconds],
      # Contention: other jobs on the machine slow the steps down (load before the timed
      # steps; the share of all cores' time that this process got while timed).
      "load_average_before": [round(x, 2) for x in load_average],
      "load_average_after": [round(x, 2) for x in os.getloadavg()],
      "own_cpu_frac": cpu_seconds / sum(seconds) / os.cpu_count(),
      "cpu_count": os.cpu_count(),
  }


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  arch = parse_gin(FLAGS.gin_file, FLAGS.gin_param)
  try:
    check_flags(arch)
  except ValueError as e:
    sys.exit(f"error: {e}")
  tf.config.threading.set_intra_op_parallelism_threads(FLAGS.intra_op_threads)
  tf.config.threading.set_inter_op_parallelism_threads(FLAGS.inter_op_threads)
  keras.mixed_precision.set_global_policy(FLAGS.precision)
  strategy = distribute.make_strategy(FLAGS.strategy, FLAGS.num_cpu_devices)
  image_shape = (FLAGS.resolution, FLAGS.resolution, FLAGS.channels)
  model = build(strategy, image_shape, FLAGS.xla)
  log("counting FLOPs")
  flops, flops_breakdown = count_flops(strategy, model, image_shape)
  model.make_train_function()
  iterator = synthetic_iterator(strategy, model, image_shape)
  timing = time_steps(model, iterator)

  result = {
      "config": FLAGS.gin_file, "gin_params": FLAGS.gin_param, "arch": arch,
      "image_shape": list(image_shape),
      "global_batch_size": model.batch.global_batch_size, "disc_iters": model.disc_iters,
      "rotated_batch_size": model.batch.rotated_batch_size,
      "replicas": strategy.num_replicas_in_sync, "strategy": FLAGS.strategy,
      "precision": FLAGS.precision, "xla": FLAGS.xla,
      **timing,
      "flops_per_gen_step": flops, "flops_breakdown": flops_breakdown,
      "achieved_gflops": flops * timing["gen_steps_per_sec"] / 1e9,
      "intra_op_threads": FLAGS.intra_op_threads, "inter_op_threads": FLAGS.inter_op_threads,
      "env": {key: os.environ[key] for key in ENV_KEYS if key in os.environ},
      "tf": tf.__version__, "keras": keras.__version__,
  }
  if FLAGS.profile_dir:
    log(f"profiling 2 steps into {FLAGS.profile_dir}\n{'op type':>40} {'ms/step':>9} share")
    for op_type, ms, share in profile(model, iterator, FLAGS.profile_dir):
      if share >= 0.002:
        log(f"{op_type:>40} {ms:9.1f} {100 * share:4.1f}%")
  if FLAGS.peer_script:
    peer = run_peer(FLAGS.peer_script, arch, model.batch.global_batch_size,
                    model.disc_iters, FLAGS.peer_steps)
    result.update({"peer_gen_steps_per_sec": peer["gen_steps_per_sec"],
                   "speedup_vs_peer": timing["gen_steps_per_sec"] / peer["gen_steps_per_sec"],
                   "peer_flops_per_gen_step": peer.get("flops_per_gen_step"),
                   "peer": peer})
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)

r"""Times SS-GAN generator steps on synthetic data, counts their FLOPs, compares a peer;
with --data, times the input pipeline of each data source against the step it feeds.

One generator step = `ssgan.disc_iters` D updates + 1 G update (one `train_step`). The
model is the library's (`ssgan.build_model`, the gin file(s) as for training, inside
the strategy scope, under `precision.set_precision`), stepped with Keras' own train
function; the data are random images in [-1, 1] (`global_batch_size * disc_iters` per
step) of the shape of the config's dataset (MNIST's 32x32x1 for quickstart.gin;
--resolution and --channels override it), so the input pipeline costs nothing.

  python tools/benchmark.py --gin_file=gin_configs/cifar10/ssgan.gin \
      --gin_param=ssgan.disc_iters=5 [--precision=mixed_bfloat16] [--xla] \
      [--max_seconds=300] [--peer_script=PATH/peer_mimicry_bench.py] [--profile_dir=DIR] \
      [--steps_per_execution=K]
  python tools/benchmark.py --gin_file=gin_configs/cifar10/ssgan.gin --architectures=all \
      --gin_param=ssgan.global_batch_size=16 --gin_param=ssgan.rotated_batch_size=16 \
      [--max_seconds=60]
  python tools/benchmark.py --gin_file=gin_configs/quickstart.gin --data \
      [--make_folder=2000 | --image_dir=DIR] [--data_dir=TFDS_DIR]

Prints ONE JSON line on stdout (with the CPU model and ISA flags, the GPUs and whether
they compute bf16 natively: `precision.hardware_summary()`); progress and the profile
table go to stderr.

--architectures=all (or a comma-separated list of names from nets.ARCHITECTURES): the
step benchmark once per architecture, each at its own resolution (its module's
PAPER_RESOLUTION: 32 for the CIFAR nets and sndcgan, 48 resnet_stl, 128 resnet5 and
resnet_biggan) with its default widths (`--tiny_widths`: its TINY_KWARGS, for tests),
everything else as the gin files say (loss, batch, disc_iters, normalisation);
`--max_seconds` is per architecture.
One JSON line per architecture on stdout (the step report plus `g_params`, `d_params`),
then a Markdown table on stderr: architecture x {G params, D params, GFLOP per generator
step, generator steps/s}.

Time budget: warm-up and timed steps together stop at `--max_seconds` (wall clock,
counted from the first warm-up step; model building and FLOP counting come before it,
--profile_dir and --peer_script after it). A step is not started when the previous one
says it would end past the budget, but at least one warm-up and one timed step always
run, so the budget can be overrun by up to two steps. Fewer steps than asked give
`budget_exhausted: true`, and `steps_measured` says how many were timed.

--data: for each source, images/s of `data.train_pipeline(source, "train", global_batch
* disc_iters, seed=0)` after its first batch (which fills the shuffle buffer, reported
apart), over `--data_seconds`, against the images/s a training step of the same config
consumes at that source's image shape (a short step timing as above, without FLOPs). The
sources: the built-in MNIST; an image folder (`--image_dir`, or `--make_folder=N`
generated JPEGs) at each `--folder_resolutions`; every TFDS dataset prepared under
`--data_dir`. Aim for ratio = pipeline / step >= 3. Pipeline and step are timed
one after the other: on a CPU-only host they share the cores in training, so there the
ratio overstates the headroom.

FLOPs are 2 x the multiply-adds of convolutions and matrix products, forward and
backward (what torch's FlopCounterMode counts, so the peer's count compares directly;
elementwise ops are left out), read off the traced D and G updates after pruning the ops
the TF runtime prunes as well (e.g. D's weight gradients, which the G update never uses).
"""

import collections
import contextlib
import gc
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import gin

# Run as a script, the repository root is not on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ssgan_tf import cpu_kernels  # noqa: E402

cpu_kernels.prefer_onednn()  # Before TensorFlow loads: the kernels training gets.
import keras  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from ssgan_tf import data  # noqa: E402
from ssgan_tf import distribute  # noqa: E402
from ssgan_tf import errors  # noqa: E402
from ssgan_tf import gin_files  # noqa: E402
from ssgan_tf import precision  # noqa: E402
from ssgan_tf import nets  # noqa: E402
from ssgan_tf import ssgan  # noqa: E402
# Registers every configurable a config file binds (dataset.*, train.*, ...).
from ssgan_tf import train_lib  # noqa: E402,F401  pylint: disable=unused-import

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("gin_file", None, "Gin config file(s), in order.")
flags.DEFINE_multi_string("gin_param", [], "Gin bindings applied after the files.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored"], "Distribution strategy.")
flags.DEFINE_integer("num_cpu_devices", 0,
                     "mirrored on a host without GPUs: split the CPU into this many devices.")
flags.DEFINE_enum("precision", "float32", list(precision.PRECISIONS),
                  "Keras global dtype policy, set before the networks are built.")
flags.DEFINE_bool("allow_emulated_bf16", False,
                  "Run mixed_bfloat16 even where bf16 is emulated (several times slower).")
flags.DEFINE_bool("xla", False, "Compile the step with XLA (jit_compile=True); one device only.")
flags.DEFINE_integer("intra_op_threads", 0, "TF intra-op threads (0 = TF's default).")
flags.DEFINE_integer("inter_op_threads", 0, "TF inter-op threads (0 = TF's default).")
flags.DEFINE_integer("warmup", 2, "Untimed calls of the train function first (tracing, "
                     "compilation), each --steps_per_execution generator steps.")
flags.DEFINE_integer("steps", 5, "Timed calls of the train function (at most: see "
                     "--max_seconds), each --steps_per_execution generator steps.")
flags.DEFINE_integer("steps_per_execution", 1, "Generator steps per call of the compiled "
                     "step, as train.steps_per_execution (step times are per step).")
flags.DEFINE_float("max_seconds", 300.0,
                   "Wall-clock budget of warm-up + timed steps, in seconds (per step "
                   "timing); at least 1 warm-up and 1 timed step run whatever it is.")
flags.DEFINE_integer("resolution", None, "Height = width of the synthetic images (default: "
                     "the config's dataset's; not read with --architectures: each has its "
                     "own).")
flags.DEFINE_integer("channels", None, "Channels of the synthetic images (default: the "
                     "config's dataset's).")
flags.DEFINE_string("peer_script", None,
                    "peer_mimicry_bench.py: after our timing, time torch-mimicry's SSGAN at "
                    "the same batch size and disc_iters, and add the comparison.")
flags.DEFINE_integer("peer_steps", 3, "Timed generator steps of the peer.")
flags.DEFINE_string("profile_dir", None,
                    "Trace 2 more steps (after the timed ones) with the TF profiler into this "
                    "directory and print the kernel time per op type to stderr (summed over "
                    "threads: ops that run concurrently overlap).")
flags.DEFINE_bool("data", False, "Time the input pipeline of each data source against the "
                  "training step instead (see the module docstring).")
flags.DEFINE_float("data_seconds", 10.0,
                   "--data: seconds of reading per source, after its first batch.")
flags.DEFINE_string("image_dir", None, "--data: a folder of images to time as the "
                    "'folder' source.")
flags.DEFINE_integer("make_folder", 0, "--data: generate this many JPEGs (CelebA-sized, "
                     f"{'x'.join(map(str, (218, 178)))} px) into a temporary folder and "
                     "time it as the 'folder' source.")
flags.DEFINE_multi_integer("folder_resolutions", [64, 128],
                           "--data: resolutions (px) at which to time the folder source.")
flags.DEFINE_string("data_dir", None, "--data: TFDS data directory; every dataset prepared "
                    "there is timed.")
flags.DEFINE_list("architectures", None, "'all' or architecture names: the step benchmark "
                  "once per architecture at its own resolution and default widths (see the "
                  "module docstring).")
flags.DEFINE_bool("tiny_widths", False, "--architectures: small widths instead of the "
                  "defaults (for tests).")
flags.mark_flag_as_required("gin_file")

CONV_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")
MATMUL_OPS = ("MatMul", "BatchMatMulV2", "BatchMatMulV3")
# The networks' name scopes; their gradient ops live under "gradient_tape/<scope>".
NETWORKS = ("generator", "discriminator")
# The torch-mimicry model that is the same network as each of our architectures.
PEER_MODELS = {"resnet_cifar": "ssgan32"}
# Environment settings that change the speed, recorded in the report when set.
ENV_KEYS = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_DEFAULT_FPMATH_MODE",
            *precision.ISA_CAP_VARIABLES, "OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
            "TF_NUM_INTEROP_THREADS", "TF_XLA_FLAGS")
# The synthetic images' shape when the config's dataset does not say (no dataset.name, or a
# folder without dataset.resolution).
DEFAULT_IMAGE_SHAPE = (32, 32, 3)
# A kernel event of the TF profiler is named "<op name>:<op type>".
KERNEL_EVENT = re.compile(r"^[^\s:]+:(\w+)$")
# --make_folder's images: CelebA's aligned size (height, width), the common case of a
# folder trained at 64 or 128 px; JPEG quality as photos usually have.
FOLDER_IMAGE_SIZE = (218, 178)
FOLDER_JPEG_QUALITY = 90
# The input pipeline should outrun the step it feeds by this factor (the target).
TARGET_PIPELINE_RATIO = 3.0


def log(message):
  print(message, file=sys.stderr, flush=True)


def parse_gin(files, params):
  """Parses the configs as main.py does (their data and training-loop bindings go unused);
  returns the architecture name."""
  gin.clear_config()
  gin_files.parse(files, params)
  try:
    return gin.query_parameter("networks.architecture")
  except ValueError:  # Not bound.
    raise errors.ConfigError(
        "networks.architecture is not set; start from a config, e.g. "
        "--gin_file=gin_configs/quickstart.gin.") from None


def dataset_image_shape():
  """`(H, H, C)` of the parsed config's dataset, from its bindings alone (no data is read,
  so a TFDS dataset need not be prepared here); DEFAULT_IMAGE_SHAPE when they don't say."""
  bindings = gin.get_bindings("dataset")
  name = bindings.get("name")
  native = data.native_image_shape(name)
  if native:
    return native
  if name == "folder" and bindings.get("resolution"):
    return (bindings["resolution"],) * 2 + (bindings.get("channels") or 3,)
  return DEFAULT_IMAGE_SHAPE


def synthetic_iterator(strategy, model, image_shape):
  """Per replica, the same `[disc_iters * per_replica_batch, *image_shape]` images forever."""
  shape = [model.disc_iters * model.batch.per_replica_batch, *image_shape]
  images = tf.random.uniform(shape, -1.0, 1.0, seed=0)
  return iter(strategy.distribute_datasets_from_function(
      lambda _: tf.data.Dataset.from_tensors(images).repeat()))


def run_steps(model, iterator, num_steps, deadline=None, min_steps=0):
  """Runs up to `num_steps` calls of the train function (each `model.steps_per_execution`
  generator steps); returns the seconds per generator step of each call.

  Args:
    deadline: a `time.perf_counter()` value: once `min_steps` ran, a step is not started
      if the previous one's duration says it would end after this (None: no limit).
    min_steps: steps that run whatever the deadline.
  """
  seconds = []
  while len(seconds) < num_steps:
    if deadline is not None and len(seconds) >= min_steps:
      expected = seconds[-1] if seconds else 0.0
      if time.perf_counter() + expected > deadline:
        break
    start = time.perf_counter()
    logs = model.train_function(iterator)
    float(logs["loss/g"])  # Fetching a value waits for the step to finish.
    seconds.append((time.perf_counter() - start) / model.steps_per_execution)
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


def _steps_timed():
  """Generator steps a benchmark runs at most (a learning-rate decay's length)."""
  return (FLAGS.warmup + FLAGS.steps) * FLAGS.steps_per_execution


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
  """One-line ConfigErrors for flag values that cannot work."""
  if FLAGS.xla and FLAGS.strategy != "default":
    raise errors.ConfigError("--xla works on one device only (Keras cannot compile a step "
                             "under MirroredStrategy); drop --xla or use --strategy=default.")
  if FLAGS.warmup < 1 or FLAGS.steps < 1:
    raise errors.ConfigError("--warmup and --steps must be >= 1 (the first step traces the "
                             "graph).")
  errors.check_range("--max_seconds", FLAGS.max_seconds, minimum=0, exclusive_minimum=True)
  if FLAGS.peer_script and arch not in PEER_MODELS:
    raise errors.ConfigError(f"the peer has no {arch!r} network; --peer_script needs "
                             f"architecture one of {sorted(PEER_MODELS)}.")
  if FLAGS.peer_script and not os.path.isfile(FLAGS.peer_script):
    raise errors.ConfigError(f"--peer_script {FLAGS.peer_script!r} not found; pass the path "
                             "of peer_mimicry_bench.py.")
  if FLAGS.architectures:
    architecture_names()  # Unknown names fail here.
    if FLAGS.data or FLAGS.peer_script or FLAGS.profile_dir:
      raise errors.ConfigError("--architectures times each architecture's step; drop "
                               "--data, --peer_script and --profile_dir.")
  elif FLAGS.tiny_widths:
    raise errors.ConfigError("--tiny_widths is read with --architectures only.")
  if FLAGS.data:
    if FLAGS.peer_script or FLAGS.profile_dir:
      raise errors.ConfigError("--data times the input pipeline; drop --peer_script and "
                               "--profile_dir, which time the step.")
    if FLAGS.image_dir and FLAGS.make_folder:
      raise errors.ConfigError("--image_dir and --make_folder both name the folder source; "
                               "pass one.")
    errors.check_range("--data_seconds", FLAGS.data_seconds, minimum=0,
                       exclusive_minimum=True)
    errors.check_range("--make_folder", FLAGS.make_folder, minimum=0, integer=True)
    for resolution in FLAGS.folder_resolutions:
      errors.check_range("--folder_resolutions", resolution, minimum=1, integer=True)
  elif FLAGS.image_dir or FLAGS.make_folder or FLAGS.data_dir:
    raise errors.ConfigError("--image_dir, --make_folder and --data_dir are read with "
                             "--data only; add --data.")


def time_steps(model, iterator):
  """Warm-up, then timed steps, within --max_seconds; the timing fields of the report."""
  deadline = time.perf_counter() + FLAGS.max_seconds
  log(f"{FLAGS.warmup} warm-up step(s), budget {FLAGS.max_seconds:g} s")
  warmup_seconds = run_steps(model, iterator, FLAGS.warmup, deadline, min_steps=1)
  load_average = os.getloadavg()
  log(f"up to {FLAGS.steps} timed step(s)")
  cpu_before = os.times()
  seconds = run_steps(model, iterator, FLAGS.steps, deadline, min_steps=1)
  cpu_after = os.times()
  cpu_seconds = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
  steps_per_sec = len(seconds) / sum(seconds)
  exhausted = len(warmup_seconds) < FLAGS.warmup or len(seconds) < FLAGS.steps
  if exhausted:
    log(f"time budget spent: {len(warmup_seconds)} warm-up and {len(seconds)} timed "
        "step(s) ran")
  return {
      "gen_steps_per_sec": steps_per_sec,
      "images_per_sec": steps_per_sec * model.batch.global_batch_size * model.disc_iters,
      "step_ms_median": 1e3 * statistics.median(seconds),
      "step_ms_all": [round(1e3 * s, 1) for s in seconds],
      "warmup_ms_all": [round(1e3 * s, 1) for s in warmup_seconds],
      "steps_requested": FLAGS.steps, "steps_measured": len(seconds),
      "max_seconds": FLAGS.max_seconds, "budget_exhausted": exhausted,
      "budget_used_s": round(sum(warmup_seconds) + sum(seconds), 3),
      # Contention: other jobs on the machine slow the steps down (load before the timed
      # steps; the share of all cores' time that this process got while timed).
      "load_average_before": [round(x, 2) for x in load_average],
      "load_average_after": [round(x, 2) for x in os.getloadavg()],
      "own_cpu_frac": cpu_seconds / sum(seconds) / os.cpu_count(),
      "cpu_count": os.cpu_count(),
  }


def config_fields(arch, strategy, model):
  """The report fields that say what was run."""
  return {
      "config": FLAGS.gin_file, "gin_params": FLAGS.gin_param, "arch": arch,
      "global_batch_size": model.batch.global_batch_size, "disc_iters": model.disc_iters,
      "rotated_batch_size": model.batch.rotated_batch_size,
      "replicas": strategy.num_replicas_in_sync, "strategy": FLAGS.strategy,
      "precision": FLAGS.precision, "xla": FLAGS.xla,
  }


def environment_fields():
  """Threads, speed-relevant environment, hardware and versions."""
  return {
      "intra_op_threads": FLAGS.intra_op_threads, "inter_op_threads": FLAGS.inter_op_threads,
      "env": {key: os.environ[key] for key in ENV_KEYS if key in os.environ},
      **precision.hardware_summary(),
      "tf": tf.__version__, "keras": keras.__version__,
  }


def trainable_parameters(network):
  return int(sum(np.prod(w.shape) for w in network.trainable_weights))


def step_report(strategy, arch, resolution=None):
  """The step benchmark: timing, FLOPs, optional profile and peer; at `resolution`
  (default: --resolution, else the dataset's) and --channels (else the dataset's)."""
  dataset_shape = dataset_image_shape()
  resolution = resolution or FLAGS.resolution or dataset_shape[0]
  image_shape = (resolution, resolution, FLAGS.channels or dataset_shape[2])
  model = ssgan.build_model(strategy, image_shape, _steps_timed(), FLAGS.xla)
  log("counting FLOPs")
  flops, flops_breakdown = count_flops(strategy, model, image_shape)
  model.steps_per_execution = FLAGS.steps_per_execution
  model.make_train_function(force=True)
  iterator = synthetic_iterator(strategy, model, image_shape)
  timing = time_steps(model, iterator)
  result = {
      "mode": "step", **config_fields(arch, strategy, model),
      "steps_per_execution": model.steps_per_execution,
      "image_shape": list(image_shape),
      # Trainable weights (D's include the rotation head; the EMA of G is not counted).
      "g_params": trainable_parameters(model.generator),
      "d_params": trainable_parameters(model.discriminator), **timing,
      "flops_per_gen_step": flops, "flops_breakdown": flops_breakdown,
      "achieved_gflops": flops * timing["gen_steps_per_sec"] / 1e9,
      **environment_fields(),
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
  return result


# Input-pipeline mode (--data).

def make_folder(directory, count, size=FOLDER_IMAGE_SIZE, seed=0):
  """Writes `count` JPEGs of `size` (height, width) px into `directory`: smooth random
  colour fields plus pixel noise, so that they compress and decode like photos (pure
  noise would be several times larger and slower to decode)."""
  rng = np.random.default_rng(seed)
  height, width = size
  for i in range(count):
    coarse = PIL.Image.fromarray(rng.integers(0, 256, (height // 16, width // 16, 3),
                                              dtype=np.uint8))
    smooth = np.asarray(coarse.resize((width, height), PIL.Image.BICUBIC), np.float32)
    pixels = np.clip(smooth + rng.normal(0, 8, smooth.shape), 0, 255).astype(np.uint8)
    PIL.Image.fromarray(pixels).save(os.path.join(directory, f"{i:06d}.jpg"),
                                     quality=FOLDER_JPEG_QUALITY)


def data_sources(image_dir):
  """`[(label, make_source)]` to time: MNIST, the folder at each resolution, TFDS."""
  sources = [("mnist", lambda: data.get_source("mnist"))]
  if image_dir:
    for resolution in FLAGS.folder_resolutions:
      sources.append((f"folder{resolution}",
                      lambda r=resolution: data.get_source("folder", image_dir=image_dir,
                                                           resolution=r)))
  if FLAGS.data_dir:
    for name in data.DATASETS:
      if name not in ("mnist", "folder"):
        sources.append((name, lambda n=name: data.get_source(n, data_dir=FLAGS.data_dir)))
  return sources


def time_pipeline(source, batch_size):
  """Reads `data.train_pipeline(source, "train", batch_size, seed=0)` for --data_seconds
  after its first batch; the pipeline fields of the report."""
  iterator = iter(data.train_pipeline(source, "train", batch_size, seed=0))
  start = time.perf_counter()
  next(iterator)  # Fills the shuffle buffer (up to 10k images or the whole split).
  first_batch_s = time.perf_counter() - start
  seconds = []
  end = time.perf_counter() + FLAGS.data_seconds
  while time.perf_counter() < end:
    start = time.perf_counter()
    next(iterator)
    seconds.append(time.perf_counter() - start)
  # Its background threads (parallel map, prefetch) would keep reading, and slow the
  # timings that follow.
  del iterator
  gc.collect()
  return {
      "first_batch_s": round(first_batch_s, 3), "batches_timed": len(seconds),
      "pipeline_images_per_sec": len(seconds) * batch_size / sum(seconds),
      "batch_ms_median": round(1e3 * statistics.median(seconds), 2),
      # The slowest batch: an epoch boundary, where the next epoch's shuffle buffer fills.
      "batch_ms_max": round(1e3 * max(seconds), 2),
  }


def time_step_at(strategy, image_shape):
  """`(model, timing fields)` of the config's step at `image_shape`, or `(None, reason)`
  when its architecture cannot be built at that shape."""
  log(f"step timing at {image_shape}")
  try:
    model = ssgan.build_model(strategy, image_shape, _steps_timed(), FLAGS.xla)
  except ValueError as e:  # E.g. resnet_cifar at 64 px; also errors.ConfigError.
    return None, str(e).strip().splitlines()[0]
  model.make_train_function()
  timing = time_steps(model, synthetic_iterator(strategy, model, image_shape))
  return model, timing


def data_report(strategy, arch):
  """The input-pipeline benchmark (--data): see the module docstring."""
  with contextlib.ExitStack() as stack:
    image_dir, folder = FLAGS.image_dir, None
    if FLAGS.make_folder:
      image_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="ssgan_bench_"))
      log(f"writing {FLAGS.make_folder} JPEGs into {image_dir}")
      make_folder(image_dir, FLAGS.make_folder)
    if image_dir:
      folder = {"image_dir": None if FLAGS.make_folder else image_dir,
                "generated_images": FLAGS.make_folder or None,
                "generated_size": list(FOLDER_IMAGE_SIZE) if FLAGS.make_folder else None}
    sources, skipped = [], []
    for label, make in data_sources(image_dir):
      start = time.perf_counter()
      try:
        source = make()
      except ValueError as e:  # Not prepared / unreadable: data.DataError, a ValueError.
        # The first clause says what; the fix that follows is the same for all.
        skipped.append({"source": label, "reason": str(e).strip().split(";")[0]})
        continue
      sources.append((label, source, time.perf_counter() - start))

    if not sources:
      raise errors.DataError(f"no data source could be read: {skipped}")
    # Steps first, one timing per image shape, so no pipeline threads run beside them.
    steps, model = {}, None
    for shape in dict.fromkeys(source.image_shape for _, source, _ in sources):
      built, timing = time_step_at(strategy, shape)
      steps[shape] = timing
      model = model or built
    if model is None:
      raise errors.ConfigError(
          f"architecture {arch!r} builds at none of the sources' image shapes "
          f"{sorted(steps)}: {steps[next(iter(steps))]}")
    batch_size = model.batch.global_batch_size * model.disc_iters

    rows = []
    for label, source, setup_s in sources:
      log(f"pipeline {label}: {source.image_shape}, batch {batch_size}")
      row = {"source": label, "image_shape": list(source.image_shape),
             "images_in_split": source.num_examples("train"), "setup_s": round(setup_s, 3),
             **time_pipeline(source, batch_size)}
      step = steps[source.image_shape]
      if isinstance(step, str):
        row.update({"step_images_per_sec": None, "ratio": None, "meets_target": None,
                    "step_error": step})
      else:
        ratio = row["pipeline_images_per_sec"] / step["images_per_sec"]
        row.update({"step_images_per_sec": step["images_per_sec"],
                    "step_gen_steps_per_sec": step["gen_steps_per_sec"],
                    "step_steps_measured": step["steps_measured"],
                    "step_budget_exhausted": step["budget_exhausted"],
                    "ratio": ratio, "meets_target": ratio >= TARGET_PIPELINE_RATIO})
      rows.append(row)

  return {
      "mode": "data", **config_fields(arch, strategy, model),
      "pipeline_batch_size": batch_size, "target_ratio": TARGET_PIPELINE_RATIO,
      "data_seconds": FLAGS.data_seconds, "max_seconds": FLAGS.max_seconds,
      "folder": folder, "data_dir": FLAGS.data_dir, "sources": rows, "skipped": skipped,
      "load_average": [round(x, 2) for x in os.getloadavg()], "cpu_count": os.cpu_count(),
      **environment_fields(),
  }


# --architectures.

def architecture_names():
  if FLAGS.architectures == ["all"]:
    return list(nets.ARCHITECTURES)
  unknown = [a for a in FLAGS.architectures if a not in nets.ARCHITECTURES]
  if unknown:
    raise errors.ConfigError(f"--architectures: unknown {unknown}; choose 'all' or names "
                             f"from {sorted(nets.ARCHITECTURES)}.")
  return list(FLAGS.architectures)


def architectures_report(strategy):
  """The step report of each architecture at its resolution and default (or tiny)
  widths, as JSON lines on stdout; then a table on stderr. Returns the reports."""
  reports = []
  for arch in architecture_names():
    module = nets.ARCHITECTURES[arch]
    g_kwargs, d_kwargs = module.TINY_KWARGS if FLAGS.tiny_widths else ({}, {})
    parse_gin(FLAGS.gin_file, FLAGS.gin_param + [
        f'networks.architecture = "{arch}"', f"networks.generator_kwargs = {g_kwargs!r}",
        f"networks.discriminator_kwargs = {d_kwargs!r}"])
    log(f"--- {arch} at {module.PAPER_RESOLUTION} px")
    report = step_report(strategy, arch, module.PAPER_RESOLUTION)
    print(json.dumps(report), flush=True)
    reports.append(report)
    gc.collect()  # The last model's memory, before the next one is built.
  log(architectures_table(reports))
  return reports


def architectures_table(reports):
  """Markdown: architecture x {G params, D params, GFLOP per generator step, steps/s}."""
  first = reports[0]
  lines = [
      f"batch {first['global_batch_size']} (global), disc_iters {first['disc_iters']}, "
      f"{first['precision']}, {first['replicas']} replica(s); {first.get('cpu_model')}, "
      f"{first['cpu_count']} cores; GFLOP = 2 x multiply-adds of convs and matmuls, "
      "forward + backward, of one generator step (disc_iters D updates + 1 G update)",
      "",
      "| architecture | resolution | G params | D params | GFLOP / G step "
      "| G steps/s | s / G step | steps timed |",
      "|---|---|---|---|---|---|---|---|"]
  for r in reports:
    lines.append(
        f"| {r['arch']} | {r['image_shape'][0]} | {r['g_params']:,} | {r['d_params']:,} "
        f"| {r['flops_per_gen_step'] / 1e9:,.1f} | {r['gen_steps_per_sec']:.3g} "
        f"| {r['step_ms_median'] / 1e3:.3g} | {r['steps_measured']} |")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    arch = parse_gin(FLAGS.gin_file, FLAGS.gin_param)
    check_flags(arch)
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.inter_op_threads)
    strategy = distribute.make_strategy(FLAGS.strategy, FLAGS.num_cpu_devices)
    # After the strategy: the bf16 check may list TPU devices, which starts the runtime.
    precision.set_precision(FLAGS.precision, allow_emulated_bf16=FLAGS.allow_emulated_bf16,
                            names=("--precision", "--allow_emulated_bf16"))
    if FLAGS.architectures:
      architectures_report(strategy)
      return
    result = data_report(strategy, arch) if FLAGS.data else step_report(strategy, arch)
  except (errors.UserError, ValueError) as e:
    # Bad input: one line, as main.py does (-v 1 shows the traceback).
    logging.vlog(1, "traceback:", exc_info=True)
    sys.exit(f"error: {str(e).strip().splitlines()[0]}")
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)

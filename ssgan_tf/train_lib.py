"""Stage 6: training: data -> model -> checkpoint / exact resume -> callbacks -> fit.

`train(workdir, strategy)` is the whole job (`python -m ssgan_tf.main` calls it; a test or
a notebook can too). The workdir only grows:
  operative_config.gin    every gin parameter the run used, written after its first step
  model_info.json         image shape, architecture and z_dim (to rebuild G without data)
  checkpoints/ckpt-<step> G, D, both optimizers (slots, step counters), the noise RNG
  samples/fakes_<step>.png  G(fixed z) in eval mode
  train/                  TensorBoard: loss/*, accuracy/*, steps_per_sec, images/*
A step is a generator step: `disc_iters` D updates + 1 G update. Running `train` again on
the same workdir resumes exactly from the latest checkpoint.
"""

import dataclasses
import functools
import json
import os

import gin
import keras
import tensorflow as tf
from absl import logging

from ssgan_tf import callbacks as callbacks_lib
from ssgan_tf import data
from ssgan_tf import distribute
from ssgan_tf import ssgan
from ssgan_tf.evaluation import eval_lib

PRECISIONS = ("float32", "mixed_bfloat16")
NUM_SAMPLES = 64  # Images in a sample grid (8 x 8).


class WorkdirError(ValueError):
  """The workdir cannot be used as asked (unwritable, another model's checkpoints, ...)."""


def set_precision(precision):
  """Sets the Keras dtype policy; call before building models."""
  if precision not in PRECISIONS:
    raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}.")
  keras.config.set_dtype_policy(precision)


def build_model(strategy, image_shape, jit_compile=False):
  """The compiled SSGAN (gin-configured), its variables and optimizers in `strategy`."""
  with strategy.scope():
    model = ssgan.build_ssgan(image_shape, strategy.num_replicas_in_sync)
    d_optimizer, g_optimizer = ssgan.build_optimizers()
    model.compile(d_optimizer=d_optimizer, g_optimizer=g_optimizer, jit_compile=jit_compile)
  return model


def make_checkpoint(model):
  """Everything exact resumption needs; the step is `g_optimizer.iterations`.

  Keras 3 does not make layers held in Python lists (SNDCGAN's convs, the ResNet blocks)
  checkpoint dependencies of their model: their weights would reach the checkpoint only
  through the optimizers, and their BN moving statistics and spectral-norm `u` not at
  all. So every G and D variable is also tracked by its position in `variables`.
  """
  return tf.train.Checkpoint(generator=model.generator, discriminator=model.discriminator,
                             d_optimizer=model.d_optimizer, g_optimizer=model.g_optimizer,
                             noise=model.noise,
                             generator_variables=list(model.generator.variables),
                             discriminator_variables=list(model.discriminator.variables))


def restore(checkpoint, path):
  """Restores `path` into `checkpoint`; WorkdirError if it holds a different model."""
  try:
    checkpoint.restore(path).assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.OpError) as e:
    first_line = str(e).strip().splitlines()[0]
    raise WorkdirError(
        f"checkpoint {path} does not match the configured model ({first_line}); use a "
        "new --workdir, or the config it was trained with (its operative_config.gin)."
    ) from None


@gin.configurable("train", denylist=["workdir", "strategy"])
def train(workdir, strategy, total_steps=gin.REQUIRED, precision="float32",
          checkpoint_every=1000, keep_checkpoints=5, log_every=100, sample_every=1000,
          eval_every=0, seed=0, jit_compile=False):
  """Trains (or resumes training) until `total_steps` generator steps.

  Args:
    workdir: output directory (local path or any tf.io.gfile URL).
    strategy: a `tf.distribute.Strategy` (distribute.make_strategy).
    total_steps: generator steps to reach (a resumed run trains only the rest).
    precision: "float32" or "mixed_bfloat16" (bf16 compute, float32 weights).
    checkpoint_every: steps between checkpoints (one is also written at the end).
    keep_checkpoints: how many of the latest checkpoints to keep.
    log_every: steps between progress lines and TensorBoard scalars (interval means).
    sample_every: steps between sample grids.
    eval_every: steps between evaluations of the live generator (0: none), with the
      gin settings `evaluation.*` / `classifier.*`; records go to metrics.jsonl.
    seed: seed of the initial weights, the data order and the fixed z of the sample
      grids. (The training noise has its own seed, `ssgan.seed`.)
    jit_compile: XLA-compile the train step (one device only; slower on CPU).

  Returns:
    The trained SSGAN model.
  """
  chief = distribute.is_chief(strategy)
  source = data.get_source()
  set_precision(precision)
  keras.utils.set_random_seed(seed)  # The initial weights; a new run repeats exactly.
  model = build_model(strategy, source.image_shape, jit_compile)
  ckpt_dir = _checkpoint_dir(workdir, strategy, chief)
  check_model_info(workdir, model, source.image_shape, write=chief)
  checkpoint = make_checkpoint(model)
  manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=keep_checkpoints)
  resume(checkpoint, model, workdir)
  start_step = callbacks_lib.generator_step(model)
  if start_step >= total_steps:
    logging.info("nothing to do: step %d >= total_steps %d", start_step, total_steps)
  else:
    logging.info("training %s from step %d to %d: %d replica(s), global batch %d, "
                 "disc_iters %d, image shape %s", source.name, start_step, total_steps,
                 strategy.num_replicas_in_sync, model.batch.global_batch_size,
                 model.disc_iters, source.image_shape)
    stop = callbacks_lib.StopAtStep(total_steps)
    callbacks = [stop, callbacks_lib.Checkpointing(manager, checkpoint_every, stop, start_step),
                 *_reporting_callbacks(workdir, chief, model, source, seed, total_steps,
                                       sample_every, eval_every)]
    dataset = _training_data(source, model, seed, start_step)
    model.fit(dataset, steps_per_epoch=log_every, initial_epoch=start_step // log_every,
              epochs=-(-total_steps // log_every), callbacks=callbacks, shuffle=False,
              verbose=0)
  if not chief:
    tf.io.gfile.rmtree(ckpt_dir)
  if start_step < total_steps and stop.bad_step is not None:
    raise callbacks_lib.NonFiniteLossError(
        f"non-finite loss or weights at step {stop.bad_step}; training stopped and "
        + (f"the last good checkpoint ({manager.latest_checkpoint}) was kept"
           if manager.latest_checkpoint else "no checkpoint was written")
        + ". Lower the learning rates or change the loss, then run again to resume.")
  return model


def resume(checkpoint, model, workdir):
  """Restores the workdir's latest checkpoint, if any, keeping the configured learning
  rates (so that a run can resume with lower ones, e.g. after a divergence). Every worker
  resumes from the chief's checkpoints, so that all start equal."""
  latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  if latest:
    optimizers = (model.d_optimizer, model.g_optimizer)
    learning_rates = [float(o.learning_rate.numpy()) for o in optimizers]
    restore(checkpoint, latest)
    for optimizer, learning_rate in zip(optimizers, learning_rates):
      optimizer.learning_rate = learning_rate
    logging.info("resumed from %s", latest)


def _training_data(source, model, seed, start_step):
  """The training batches from generator step `start_step` on (exact resume)."""
  batch = model.batch.global_batch_size * model.disc_iters
  dataset = data.train_pipeline(source, "train", batch, seed=seed, start_batch=start_step)
  options = tf.data.Options()
  # Multi-worker: every worker reads the whole pipeline and keeps its share of each batch.
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return dataset.with_options(options)


def _reporting_callbacks(workdir, chief, model, source, seed, total_steps, sample_every,
                         eval_every):
  """Operative config, progress/summaries, samples and evaluation (chief only writes)."""
  writer = tf.summary.create_file_writer(os.path.join(workdir, "train")) if chief else None
  callbacks = [callbacks_lib.ProgressAndSummaries(writer, total_steps)]
  if chief:
    callbacks.append(callbacks_lib.OperativeConfig(workdir))
    fixed_z = model.sample_z(NUM_SAMPLES, tf.random.Generator.from_seed(seed + 1))
    real = next(iter(source.images("train").batch(NUM_SAMPLES)))
    callbacks.append(callbacks_lib.SampleGrids(workdir, writer, fixed_z, sample_every, real))
    if eval_every:
      callbacks.append(eval_lib.PeriodicEvaluation(eval_every, workdir, source))
  return callbacks


def _checkpoint_dir(workdir, strategy, chief):
  """workdir/checkpoints on the chief; a scratch dir for other workers, which must save
  too (saving may run collectives) but whose copies are discarded."""
  path = os.path.join(workdir, "checkpoints")
  if not chief:
    path = os.path.join(workdir, f"tmp_worker_{strategy.cluster_resolver.task_id}")
  try:
    tf.io.gfile.makedirs(path)
    probe = os.path.join(path, ".write_test")
    with tf.io.gfile.GFile(probe, "w") as f:
      f.write("ok")
    tf.io.gfile.remove(probe)
  except (tf.errors.OpError, OSError) as e:
    raise WorkdirError(f"cannot write to workdir {workdir!r} ({type(e).__name__}); "
                       "choose a writable --workdir.") from None
  return path


def check_model_info(workdir, model, image_shape, write):
  """Writes model_info.json on a new workdir; on an old one, checks it describes the same
  model, so another model's checkpoints are never touched."""
  info = {"image_shape": list(image_shape),
          "architecture": gin.query_parameter("networks.architecture"), "z_dim": model.z_dim}
  path = os.path.join(workdir, "model_info.json")
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path) as f:
      saved = json.load(f)
    if saved != info:
      raise WorkdirError(
          f"workdir {workdir!r} holds a different model ({saved}, configured: {info}); use a "
          "new --workdir, or the config it was trained with (its operative_config.gin).")
  elif write:
    # Written whole, then renamed: other workers may be reading it at the same time.
    with tf.io.gfile.GFile(path + ".tmp", "w") as f:
      json.dump(info, f)
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


@dataclasses.dataclass
class Restored:
  """A trained model rebuilt from a workdir for inference (evaluation, export)."""
  model: ssgan.SSGAN
  step: int
  checkpoint_path: str
  image_shape: tuple

  @functools.cached_property
  def source(self):
    """The training data source (built on first use: it may need the dataset)."""
    return data.get_source()


def restore_for_inference(workdir, checkpoint=None):
  """Rebuilds the workdir's model from its operative config and restores a checkpoint.

  Args:
    workdir: a training workdir.
    checkpoint: None (the latest), a step number, or a checkpoint path.

  Returns:
    `Restored`; the model is float32 on the default strategy, G and D in eval use.
  """
  config_path = os.path.join(workdir, "operative_config.gin")
  ckpt_dir = os.path.join(workdir, "checkpoints")
  latest = tf.train.latest_checkpoint(ckpt_dir)
  if not latest or not tf.io.gfile.exists(config_path):
    raise WorkdirError(f"no checkpoint in {workdir!r}; train first: python -m ssgan_tf.main "
                       f"--gin_file=... --workdir={workdir}")
  path = latest if checkpoint is None else (
      os.path.join(ckpt_dir, f"ckpt-{checkpoint}") if str(checkpoint).isdigit() else checkpoint)
  if not tf.io.gfile.exists(path + ".index"):
    raise WorkdirError(f"no checkpoint {path!r}; the latest is {latest!r}.")
  gin.clear_config()
  gin.parse_config_file(config_path, skip_unknown=True)
  with tf.io.gfile.GFile(os.path.join(workdir, "model_info.json")) as f:
    image_shape = tuple(json.load(f)["image_shape"])
  set_precision("float32")
  model = build_model(tf.distribute.get_strategy(), image_shape)
  restore(make_checkpoint(model), path)
  return Restored(model, callbacks_lib.generator_step(model), path, image_shape)

"""Stage 6b: what training leaves in the workdir, as Keras callbacks.

Every callback reads the step from the model (`model.step`): one step = one generator
update, i.e. `disc_iters` D updates + 1 G update. `fit` may run several steps per call
(train.steps_per_execution, which divides every interval): callbacks run after each
call, so they act on multiples of their interval and never see the steps in between.
Only the chief writes the workdir (multi-worker training): train_lib gives the other
workers only the callbacks every worker must run (stopping; saving, which may run
collectives, to a scratch folder that is discarded) and a progress callback that only
logs.
"""

import math
import os
import time

import gin
import keras
import tensorflow as tf
from absl import logging

from ssgan_tf import checkpoints
from ssgan_tf import distribute
from ssgan_tf import files
from ssgan_tf import gin_files
from ssgan_tf import labels as labels_lib
from ssgan_tf import nonfinite
from ssgan_tf import progress
from ssgan_tf import workdir as workdir_lib


class StopAtStep(keras.callbacks.Callback):
  """Ends `fit` after `total_steps` generator steps, and at a bad step: a non-finite loss
  (here) or non-finite weights (found by `Checkpointing`).

  A non-finite loss stops training before any later checkpoint is written (callbacks run
  in order and this one comes before `Checkpointing` and `SaveOnPreemption`), so the last
  checkpoint on disk is the last good one: with several steps per call, the one before
  the call, which came before the bad step.
  `bad_step` is the first bad step (the step records it, nonfinite.py).
  """

  def __init__(self, total_steps):
    super().__init__()
    self.total_steps = total_steps
    self.bad_step = None

  def on_train_batch_end(self, batch, logs=None):
    logs = dict(logs or {})
    first_bad = int(logs.pop(nonfinite.LOG_NAME, 0))
    bad = {k: float(v) for k, v in logs.items() if not math.isfinite(float(v))}
    if first_bad or bad:
      self.stop_bad(f"non-finite loss (interval means {bad})", first_bad or None)
    elif self.model.step >= self.total_steps:
      self.model.stop_training = True

  def stop_bad(self, what, step=None):
    """Stops training; `step` (default: the current one) and all after it are bad and
    must not be checkpointed."""
    self.bad_step = step or self.model.step
    self.model.stop_training = True
    logging.error("step %d: %s; stopping at step %d.", self.bad_step, what, self.model.step)


class UnlessDiverged(keras.callbacks.Callback):
  """Runs `callback` (sample grids, evaluation) only until `stop_at_step` has found a bad
  step: a diverged model's samples are noise, and evaluation refuses its NaN images with
  a traceback that would hide the divergence's one-line error."""

  def __init__(self, stop_at_step, callback):
    super().__init__()
    self.stop_at_step, self.callback = stop_at_step, callback

  def set_model(self, model):
    super().set_model(model)
    self.callback.set_model(model)

  def on_train_begin(self, logs=None):
    self.callback.on_train_begin(logs)

  def on_train_batch_end(self, batch, logs=None):
    if self.stop_at_step.bad_step is None:
      self.callback.on_train_batch_end(batch, logs)

  def on_train_end(self, logs=None):
    if self.stop_at_step.bad_step is None:
      self.callback.on_train_end(logs)


class StopIfLockLost(keras.callbacks.Callback):
  """Stops training, without saving, once the workdir lock was found taken over or
  removed (`workdir_lock.WorkdirLock.check_held` raises its one-line WorkdirError); put
  it before the callbacks that save, which run after it at the same step."""

  def __init__(self, lock):
    super().__init__()
    self.lock = lock

  def on_train_batch_end(self, batch, logs=None):
    self.lock.check_held()


class Checkpointing(keras.callbacks.Callback):
  """Saves the whole training state every `every` steps, every `every_secs` seconds, and
  when training ends, unless `stop_at_step` saw a non-finite loss. A state with a
  non-finite weight or optimizer slot is not saved either (the logged losses are computed
  before the update, and are not the weighted totals that are differentiated): it stops
  training instead.

  Args:
    manager: the `tf.train.CheckpointManager` (numbers checkpoints by step).
    every: steps between checkpoints.
    stop_at_step: the run's `StopAtStep`.
    start_step: the step training starts from (already saved).
    every_secs: seconds between checkpoints besides (0 or None: by step only). Under several
      workers they decide together (`distribute.any_worker_fn`), since every worker
      takes part in a save.
    strategy: the training strategy.
  """

  def __init__(self, manager, every, stop_at_step, start_step, every_secs=None,
               strategy=None):
    super().__init__()
    self.manager, self.every, self.stop_at_step = manager, every, stop_at_step
    self.every_secs, self.strategy = every_secs, strategy
    self.saved_step, self._saved_at = start_step, time.monotonic()
    self._any_worker = None

  def save_now(self):
    """Saves the current step unless it is saved already or must not be saved; returns
    the path of its checkpoint, or None."""
    step = self.model.step
    if self.stop_at_step.bad_step is not None:
      return None
    if step == self.saved_step:
      return self.manager.latest_checkpoint
    if not _all_finite(self.model):
      self.stop_at_step.stop_bad("non-finite weights or optimizer state")
      return None
    path = checkpoints.save_or_explain(self.manager, step)
    self.saved_step, self._saved_at = step, time.monotonic()
    logging.info("step %d: saved %s", step, path)
    return path

  def on_train_batch_end(self, batch, logs=None):
    if self.model.step % self.every == 0 or self._time_is_up():
      self.save_now()

  def on_train_end(self, logs=None):
    self.save_now()

  def _time_is_up(self):
    if not self.every_secs:
      return False
    if self._any_worker is None:
      self._any_worker = distribute.any_worker_fn(self.strategy)
    return self._any_worker(time.monotonic() - self._saved_at >= self.every_secs)


def _all_finite(model):
  """Whether every floating-point variable of G, D, their optimizers and the EMA of G is
  finite, read back once (a read per variable, hundreds, would wait on an accelerator
  for each; a compiled function would cost each run a trace)."""
  variables = (model.generator.variables + model.discriminator.variables
               + model.d_optimizer.variables + model.g_optimizer.variables
               + (model.ema_generator.variables if model.ema_generator else []))
  return bool(tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in variables
                             if keras.backend.is_float_dtype(v.dtype)]))


_NOT_EXACT = ("the data stream goes on at this step's position for the new size, so "
              "until the epoch ends some images repeat or are skipped: not an exact resume")
# What a changed binding means for a resumed run, logged beside the change (the
# checkpoint holds the weights and the state of the training noise; the data position is
# the step).
RESUME_NOTES = {
    "train.seed": "train.seed: the data order (and the sample grids' z) follow the new seed "
                  "from this step on",
    "ssgan.seed": "ssgan.seed has no effect on resume: the noise generator's state comes "
                  "from the checkpoint",
    "ssgan.global_batch_size": f"ssgan.global_batch_size: {_NOT_EXACT}",
    "ssgan.disc_iters": f"ssgan.disc_iters: {_NOT_EXACT}",
}


class OperativeConfig(keras.callbacks.Callback):
  """Writes `operative_config.gin` after the first step, which calls every configurable.

  The workdir only grows: a resumed run whose configuration differs from the previous
  run's (say, lower learning rates) writes `operative_config-<step>.gin` beside the first
  one instead, and logs a warning listing the bindings that changed.
  """

  def __init__(self, workdir):
    super().__init__()
    self.workdir, self.pending = workdir, True

  def on_train_begin(self, logs=None):
    self.start_step = self.model.step

  def on_train_batch_end(self, batch, logs=None):
    if not self.pending:
      return
    self.pending = False
    with files.no_room_is_an_error(f"the operative config in {self.workdir}"):
      self._write()

  def _write(self):
    config = gin.operative_config_str()
    # The config of the run before this one: written at a step <= start_step.
    previous_config = workdir_lib.read_operative_config(self.workdir, self.start_step + 1)
    if previous_config is None:
      files.write_atomically(
          os.path.join(self.workdir, workdir_lib.OPERATIVE_CONFIG), config)
      return
    if previous_config == config:
      return
    path = workdir_lib.resumed_config_path(self.workdir, self.start_step)
    files.write_atomically(path, config)
    changes = describe_changes(previous_config, config)
    if changes:  # Else only the layout differs (another gin version, say).
      logging.warning("resumed with changed settings: %s (recorded in %s).", changes, path)


def describe_changes(before, after):
  """`"dataset.image_dir '/a' -> '/b'; train.seed 0 -> 7"`: the bindings that differ
  between two operative configs (gin text), sorted, with what a change means on resume
  (RESUME_NOTES); "" if none does."""
  try:
    changes = gin_files.changed_bindings(before, after)
  except gin_files.UNPARSABLE as e:
    return f"the operative configs cannot be compared ({e})"
  return "; ".join([gin_files.format_change(change) for change in changes]
                   + [RESUME_NOTES[key] for key, _, _ in changes if key in RESUME_NOTES])


class ProgressAndSummaries(keras.callbacks.Callback):
  """Every `train.log_every` steps (one Keras "epoch", counted from the step `fit` starts
  at, so not at multiples after a resume from elsewhere): a log line with steps/s and ETA,
  and the interval's mean metrics as TensorBoard scalars under their names (`loss/d`,
  ...)."""

  def __init__(self, writer, total_steps):
    super().__init__()
    self.writer, self.total_steps = writer, total_steps

  def on_epoch_begin(self, epoch, logs=None):
    self.start_time, self.start_step = time.perf_counter(), self.model.step

  def on_epoch_end(self, epoch, logs=None):
    step = self.model.step
    rate = (step - self.start_step) / max(time.perf_counter() - self.start_time, 1e-9)
    eta = (self.total_steps - step) / rate if rate else float("inf")
    metrics = {k: float(v) for k, v in (logs or {}).items() if k != nonfinite.LOG_NAME}
    logging.info("step %d/%d  %.2f steps/s  ETA %s  %s", step, self.total_steps, rate,
                 progress.format_duration(eta),
                 "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())))
    if self.writer:
      with self.writer.as_default(step=step):
        for name, value in metrics.items():
          tf.summary.scalar(name, value)
        tf.summary.scalar("steps_per_sec", rate)


class SampleGrids(keras.callbacks.Callback):
  """Every `every` steps and at the end: a grid of G(fixed z) in eval mode, as
  `samples/fakes_<step>.png` and a TensorBoard image `images/fake`; at the start also
  `images/real`, and the grid of the step resumed from if it was due (a multiple of
  `every`, or `total_steps`) and is missing (a preemption stops before it is written).

  A conditional model's grid has fixed labels too, one class per row
  (`labels.grid_labels`: row r shows class r mod K, or with more classes than rows,
  classes spread evenly over 0..K-1).
  """

  def __init__(self, workdir, writer, fixed_z, every, real_images=None, total_steps=None):
    super().__init__()
    self.dir = os.path.join(workdir, workdir_lib.SAMPLES)
    self.writer, self.fixed_z, self.every = writer, fixed_z, every
    self.real_images, self.fixed_labels, self.total_steps = real_images, None, total_steps

  def on_train_begin(self, logs=None):
    num_classes = getattr(self.model, "num_classes", None)
    if num_classes is not None:
      n = int(self.fixed_z.shape[0])
      self.fixed_labels = labels_lib.grid_labels(n, num_classes, math.isqrt(n))
    tf.io.gfile.makedirs(self.dir)
    if self.real_images is not None:
      with self.writer.as_default(step=self.model.step):
        tf.summary.image("images/real", grid(self.real_images)[None])
    # A preemption stops before the reporting callbacks of its step: the grid due at the
    # step resumed from (a multiple of `every`, or the last step) is written now.
    step = self.model.step
    if (step and (step % self.every == 0 or step == self.total_steps)
        and not tf.io.gfile.exists(self._path(step))):
      self._write()

  def on_train_batch_end(self, batch, logs=None):
    if self.model.step % self.every == 0:
      self._write()

  def on_train_end(self, logs=None):
    if self.model.step % self.every:
      self._write()

  def _write(self):
    step = self.model.step
    image = grid(self.model.generate(self.fixed_z, **(
        {} if self.fixed_labels is None else {"labels": self.fixed_labels})))
    path = self._path(step)
    with files.no_room_is_an_error(path):
      files.write_atomically(path, tf.io.encode_png(image).numpy())
    with self.writer.as_default(step=step):
      tf.summary.image("images/fake", image[None])

  def _path(self, step):
    return os.path.join(self.dir, workdir_lib.sample_grid_name(step))


def grid(images):
  """`[N, H, W, C]` in [-1, 1] -> one uint8 `[rH, rW, C]` image of the first r * r, r =
  floor(sqrt(N)) (N = 8: a 2 x 2 grid)."""
  n, h, w, c = images.shape
  rows = math.isqrt(n)  # The largest square that fits.
  pixels = tf.round((tf.clip_by_value(images, -1.0, 1.0) + 1.0) * 127.5)
  pixels = tf.reshape(pixels[:rows * rows], [rows, rows, h, w, c])
  # Transposed before the cast: oneDNN's uint8 transpose logs an error line on some CPUs.
  pixels = tf.reshape(tf.transpose(pixels, [0, 2, 1, 3, 4]), [rows * h, rows * w, c])
  return tf.cast(pixels, tf.uint8)

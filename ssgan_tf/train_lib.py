"""The training job: data -> model -> checkpoint / exact resume -> callbacks -> fit, with
periodic evaluation (stage 7, so this module sits above it; main.py runs it, and the tools
import it for its gin bindings).

`train(workdir, strategy)` is the whole job (`python -m ssgan_tf.main` calls it; a test or
a notebook can too); what it leaves in the workdir is listed in workdir.py (TensorBoard
`train/`: loss/*, accuracy/*, steps_per_sec, images/*). A step is a generator step:
`disc_iters` D updates + 1 G update. Running `train` again on the same workdir resumes
exactly from the latest checkpoint.
"""

import contextlib
import math
import os

import gin
import keras
import tensorflow as tf
from absl import logging

from ssgan_tf import callbacks as callbacks_lib
from ssgan_tf import checkpoints
from ssgan_tf import data
from ssgan_tf import distribute
from ssgan_tf import errors
from ssgan_tf import files
from ssgan_tf import gin_files
from ssgan_tf import lr_schedule
from ssgan_tf import preemption
from ssgan_tf import progress
from ssgan_tf import precision as precision_lib
from ssgan_tf import ssgan
from ssgan_tf import workdir as workdir_lib
from ssgan_tf import workdir_lock
from ssgan_tf.evaluation import eval_lib
from ssgan_tf.evaluation import records as records_lib

NUM_SAMPLES = 64  # Images in a sample grid (8 x 8).
# The most generator steps per `fit` call that train.steps_per_execution = None picks:
# callbacks (progress, the SIGTERM check, time-based checkpoints) wait for the end of a
# call, which should take seconds, not minutes.
AUTO_MAX_STEPS_PER_CALL = {"CPU": 10, "GPU": 100, "TPU": 100}


@gin.configurable("train", denylist=["workdir", "strategy"])
def train(workdir, strategy, total_steps=gin.REQUIRED, precision="float32",
          checkpoint_every=1000, checkpoint_every_secs=600, keep_checkpoints=5,
          log_every=100, sample_every=1000, eval_every=0, seed=0, jit_compile=False,
          allow_emulated_bf16=False, steps_per_execution=None):
  """Trains (or resumes training) until `total_steps` generator steps.

  One trainer per workdir (workdir_lock.py); SIGTERM or Ctrl-C saves the current step
  and ends with preemption.Preempted; an unreadable latest checkpoint is set aside and
  the newest readable one resumed (checkpoints.py).

  Args:
    workdir: output directory (local path or any tf.io.gfile URL).
    strategy: a `tf.distribute.Strategy` (distribute.make_strategy).
    total_steps: generator steps to reach (a resumed run trains only the rest).
    precision: "float32" or "mixed_bfloat16" (bf16 compute, float32 weights).
    checkpoint_every: steps between checkpoints (one is also written at the end).
    checkpoint_every_secs: seconds between checkpoints besides (0: by step only), so a
      slow run or a huge model does not go long without one.
    keep_checkpoints: how many of the latest checkpoints to keep.
    log_every: steps between progress lines and TensorBoard scalars (interval means).
    sample_every: steps between sample grids.
    eval_every: steps between evaluations of the live generator (0: none), with the
      gin settings `evaluation.*` / `classifier.*`; records go to metrics.jsonl.
    seed: seed of the initial weights, the data order and the fixed z of the sample
      grids. (The training noise has its own seed, `ssgan.seed`.)
    jit_compile: XLA-compile the train step (one device only; slower on CPU).
    allow_emulated_bf16: run "mixed_bfloat16" even where bf16 is emulated (many times
      slower than float32; precision.py), which is refused otherwise.
    steps_per_execution: generator steps per call of the compiled step (Keras'
      steps_per_execution); callbacks run after each call. It must divide every
      interval above and total_steps. None: the largest such number up to
      AUTO_MAX_STEPS_PER_CALL for the device (10 on a CPU, 100 on a GPU or TPU).

  Returns:
    The trained SSGAN model.
  """
  _check_schedule(total_steps, checkpoint_every, checkpoint_every_secs, keep_checkpoints,
                  log_every, sample_every, eval_every, steps_per_execution)
  intervals = {"train.total_steps": total_steps, "train.log_every": log_every,
               "train.checkpoint_every": checkpoint_every, "train.sample_every": sample_every,
               "train.eval_every": eval_every}
  check_steps_per_call(steps_per_execution, intervals)  # Before the workdir is written.
  if jit_compile and strategy.num_replicas_in_sync > 1:
    # Keras would fail in the first step, on a variable of another replica's device.
    raise errors.ConfigError(
        f"train.jit_compile=True works on one device only; this strategy has "
        f"{strategy.num_replicas_in_sync} replicas: drop it or train on one device.")
  chief = distribute.is_chief(strategy)
  lock = workdir_lock.WorkdirLock(workdir) if chief else contextlib.nullcontext()
  if chief:
    # At once, not after the seconds (or, for a large image folder, minutes) of loading
    # data and building the model; `lock` is taken below, as it creates the workdir, which
    # a data or model error must not.
    _check_no_file_in_the_way(workdir)
    lock.check_free()
  source = data.get_source()
  if source.contains(workdir):
    raise errors.ConfigError(
        f"--workdir {workdir} is inside the training images ({source.name}): its sample "
        "grids would join them at the next start; use a workdir outside that folder.")
  with precision_lib.policy(precision, allow_emulated_bf16=allow_emulated_bf16):
    precision_lib.warn_if_onednn_off()
    keras.utils.set_random_seed(seed)  # The initial weights; a new run repeats exactly.
    model = ssgan.build_model(strategy, source.image_shape, total_steps, jit_compile,
                              num_classes=source.num_classes,
                              label_counts=lambda: source.label_counts("train"))
    ckpt_dir = _checkpoint_dir(workdir, strategy, chief)
    try:
      with lock, preemption.PreemptionWatcher() as watcher:
        workdir_lib.check_model_info(
            workdir, workdir_lib.model_info(model, source.image_shape, source.class_names),
            write=chief)
        checkpoint = workdir_lib.make_checkpoint(model)
        resume(checkpoint, model, workdir, set_aside_unreadable=chief)
        # After `resume`: the manager reads the state file that setting aside rewrites.
        manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=keep_checkpoints,
                                             checkpoint_name=checkpoints.NAME)
        start_step = model.step
        if start_step >= total_steps:
          (logging.info if start_step == total_steps else logging.warning)(
              "nothing to do: step %d >= total_steps %d", start_step, total_steps)
          if chief and start_step == total_steps:
            _write_missing_outputs(workdir, model, source, seed, total_steps, sample_every,
                                   eval_every, watcher, manager)
          return model
        model.steps_per_execution = steps_per_call(steps_per_execution, intervals, start_step,
                                                   _device_kind(strategy))
        logging.info("training %s from step %d to %d: %d replica(s), global batch %d, "
                     "disc_iters %d, image shape %s, %d step(s) per call", source.name,
                     start_step, total_steps, strategy.num_replicas_in_sync,
                     model.batch.global_batch_size, model.disc_iters, source.image_shape,
                     model.steps_per_execution)
        stop = callbacks_lib.StopAtStep(total_steps)
        saving = callbacks_lib.Checkpointing(manager, checkpoint_every, stop, start_step,
                                             checkpoint_every_secs, strategy)
        # Every worker runs the same callbacks up to SaveOnPreemption (they take part in
        # collectives; the chief's own two run none); then come those that only report.
        # The operative config comes before any save: eval and export need it to rebuild
        # the model of a checkpoint, even one saved on a signal in the first call.
        callbacks = [*([callbacks_lib.StopIfLockLost(lock),
                        callbacks_lib.OperativeConfig(workdir)] if chief else []), stop, saving,
                     preemption.SaveOnPreemption(watcher, saving.save_now, strategy),
                     *_reporting_callbacks(workdir, chief, model, source, seed, total_steps,
                                           sample_every, eval_every, watcher, stop)]
        model.fit(_training_data(source, model, seed, start_step), steps_per_epoch=log_every,
                  initial_epoch=start_step // log_every, epochs=-(-total_steps // log_every),
                  callbacks=callbacks, shuffle=False, verbose=0)
    finally:
      if not chief:
        tf.io.gfile.rmtree(ckpt_dir)
  if stop.bad_step is not None:
    raise errors.TrainingDiverged(
        f"non-finite loss or weights at step {stop.bad_step}; training stopped and "
        + (f"the last good checkpoint ({manager.latest_checkpoint}) was kept"
           if manager.latest_checkpoint else "no checkpoint was written")
        + ". Lower the learning rates or change the loss, then run again to resume.")
  return model


def _check_schedule(total_steps, checkpoint_every, checkpoint_every_secs, keep_checkpoints,
                    log_every, sample_every, eval_every, steps_per_execution):
  """One-line ConfigErrors, named after the gin bindings, before anything is built."""
  for name, value in (("total_steps", total_steps), ("checkpoint_every", checkpoint_every),
                      ("keep_checkpoints", keep_checkpoints), ("log_every", log_every),
                      ("sample_every", sample_every)):
    errors.check_range(f"train.{name}", value, minimum=1, integer=True)
  errors.check_range("train.eval_every", eval_every, minimum=0, integer=True)
  errors.check_range("train.checkpoint_every_secs", checkpoint_every_secs, minimum=0)
  if steps_per_execution is not None:
    errors.check_range("train.steps_per_execution", steps_per_execution, minimum=1,
                       integer=True)


def steps_per_call(requested, intervals, start_step, device_kind):
  """Generator steps per call of the compiled step, so that every interval ends a call.

  Args:
    requested: train.steps_per_execution: a number that divides every interval, or None
      for the largest one up to AUTO_MAX_STEPS_PER_CALL[device_kind].
    intervals: {gin binding: steps} of the schedule (total steps included; 0 = unused).
    start_step: the step training starts from. Runs with one steps_per_execution only
      ever save at multiples of it; a run resumed from another step (its setting
      changed) takes the largest divisor that fits, for this run.
    device_kind: "CPU", "GPU" or "TPU".
  """
  check_steps_per_call(requested, intervals)
  used = {name: steps for name, steps in intervals.items() if steps}
  whole = math.gcd(*used.values())
  limit = requested or AUTO_MAX_STEPS_PER_CALL[device_kind]
  fits = math.gcd(whole, start_step) if start_step else whole
  chosen = max(k for k in range(1, min(limit, fits) + 1) if fits % k == 0)
  if requested and chosen != requested:
    logging.warning("resuming from step %d, which train.steps_per_execution = %d does not "
                    "divide: this run does %d step(s) per call.", start_step, requested,
                    chosen)
  return chosen


def check_steps_per_call(requested, intervals):
  """A one-line ConfigError unless `requested` (train.steps_per_execution; None: chosen)
  divides every interval used (`intervals` as `steps_per_call` takes them)."""
  misfits = [f"{name} = {steps}" for name, steps in intervals.items()
             if requested is not None and steps and steps % requested]
  if misfits:
    raise errors.ConfigError(
        f"train.steps_per_execution = {requested} does not divide {', '.join(misfits)}; "
        "choose a divisor of every interval, or None to let it be chosen.")


def _device_kind(strategy):
  """"TPU", "GPU" or "CPU": where the replicas of `strategy` run."""
  if isinstance(strategy, tf.distribute.TPUStrategy):
    return "TPU"
  return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"


def resume(checkpoint, model, workdir, set_aside_unreadable):
  """Restores the workdir's newest readable checkpoint, if any, keeping the configured
  learning rates (so that a run can resume with lower ones, e.g. after a divergence; a
  decaying rate is no checkpoint variable: it follows the configured schedule anyway).
  Every worker resumes from the chief's checkpoints, so that all start equal.

  Args:
    checkpoint: `workdir.make_checkpoint(model)`.
    model: the SSGAN.
    workdir: the workdir.
    set_aside_unreadable: ready the checkpoint directory for the CheckpointManager
      (checkpoints.quarantine: unreadable newer checkpoints and an unusable state file
      renamed out of its way, saves cut short removed); the chief only: it owns the files.
      With nothing to resume, the chief first refuses a workdir that holds an earlier
      run's outputs (`workdir.check_no_earlier_outputs`).
  """
  optimizers = [o for o in (model.d_optimizer, model.g_optimizer)
                if not lr_schedule.is_scheduled(o)]
  learning_rates = [float(o.learning_rate.numpy()) for o in optimizers]
  ckpt_dir = workdir_lib.checkpoint_dir(workdir)
  try:
    path, unreadable = checkpoints.restore_newest_readable(checkpoint, ckpt_dir)
  except checkpoints.CheckpointMismatchError as e:
    lr_schedule.check_same_kind(e.path, {"d_optimizer": model.d_optimizer,
                                         "g_optimizer": model.g_optimizer})
    workdir_lib.check_average(e.path, model)
    changed = _network_settings_changed(workdir, e.path)
    if changed:
      raise checkpoints.CheckpointMismatchError(
          e.path, f"its networks were built with other settings: {changed}") from e
    raise
  if path:
    workdir_lib.check_average(path, model)  # G, D and the rest restore without it.
  if set_aside_unreadable:
    if path is None:
      workdir_lib.check_no_earlier_outputs(workdir)
    checkpoints.quarantine(unreadable, ckpt_dir, restored=path)
  if path:
    for optimizer, learning_rate in zip(optimizers, learning_rates):
      optimizer.learning_rate = learning_rate
    logging.info("resumed from %s", path)


def _network_settings_changed(workdir, path):
  """`"networks.x a -> b; ..."`: the `networks.*` bindings of this run that differ from
  those that trained checkpoint `path` (its operative config), or "" if none is known
  to (a width, say: model_info.json does not record it)."""
  before = workdir_lib.read_operative_config(workdir, checkpoints.step_of(path) or 0)
  if before is None:
    return ""
  try:
    changes = gin_files.changed_bindings(before, gin.operative_config_str())
  except gin_files.UNPARSABLE:
    return ""
  return "; ".join(gin_files.format_change(change) for change in changes
                   if change[0].startswith("networks."))


def _training_data(source, model, seed, start_step):
  """The training batches from generator step `start_step` on (exact resume)."""
  batch = model.batch.global_batch_size * model.disc_iters
  dataset = data.train_pipeline(source, "train", batch, seed=seed, start_batch=start_step,
                                with_labels=model.num_classes is not None)
  options = tf.data.Options()
  # Multi-worker: every worker reads the whole pipeline and keeps its share of each batch.
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return dataset.with_options(options)


def _reporting_callbacks(workdir, chief, model, source, seed, total_steps, sample_every,
                         eval_every, watcher, stop):
  """Progress (log lines; on a terminal also a live line), summaries, samples and
  evaluation (only the chief writes; evaluation is skipped once `watcher` saw a signal,
  samples and evaluation once `stop` found a bad step)."""
  writer = (tf.summary.create_file_writer(os.path.join(workdir, workdir_lib.TRAIN_LOGS))
            if chief else None)
  callbacks = [callbacks_lib.ProgressAndSummaries(writer, total_steps)]
  if chief:
    callbacks.append(progress.LiveProgress(total_steps))
    callbacks += [callbacks_lib.UnlessDiverged(stop, output) for output in _outputs(
        workdir, writer, model, source, seed, total_steps, sample_every, eval_every, watcher)]
  return callbacks


def _outputs(workdir, writer, model, source, seed, total_steps, sample_every, eval_every,
             watcher):
  """The callbacks that write the run's sample grids and (with eval_every) evaluations."""
  fixed_z = model.sample_z(NUM_SAMPLES, tf.random.Generator.from_seed(seed + 1))
  real = next(iter(source.images("train").batch(NUM_SAMPLES)))
  outputs = [callbacks_lib.SampleGrids(workdir, writer, fixed_z, sample_every, real,
                                       total_steps)]
  if eval_every:
    outputs.append(eval_lib.PeriodicEvaluation(eval_every, workdir, source, watcher=watcher,
                                               total_steps=total_steps))
  return outputs


def _write_missing_outputs(workdir, model, source, seed, total_steps, sample_every,
                           eval_every, watcher, manager):
  """A finished run's last sample grid and evaluation, if missing: a preemption during
  the last call saves the last step and stops before they are written, and the run
  started again has nothing to train. Their callbacks write them at `on_train_begin`;
  checked here first, so that a run with nothing missing writes nothing (not even an
  event file)."""
  grid = os.path.join(workdir, workdir_lib.SAMPLES, workdir_lib.sample_grid_name(total_steps))
  if tf.io.gfile.exists(grid) and not (
      eval_every and not records_lib.evaluated_in_training_at(workdir, total_steps)):
    return
  writer = tf.summary.create_file_writer(os.path.join(workdir, workdir_lib.TRAIN_LOGS))
  for output in _outputs(workdir, writer, model, source, seed, total_steps, sample_every,
                         eval_every, watcher):
    output.set_model(model)
    output.on_train_begin()
  writer.close()
  if watcher.requested:  # The evaluation gave up: the next start runs it.
    raise preemption.Preempted(total_steps, manager.latest_checkpoint, watcher.signal_name)


def _checkpoint_dir(workdir, strategy, chief):
  """workdir/checkpoints on the chief; a scratch dir for other workers, which must save
  too (saving may run collectives) but whose copies are discarded."""
  path = workdir_lib.checkpoint_dir(workdir)
  if not chief:
    path = os.path.join(workdir, f"tmp_worker_{strategy.cluster_resolver.task_id}")
  probe = os.path.join(path, ".write_test")
  try:
    tf.io.gfile.makedirs(path)
    with tf.io.gfile.GFile(probe, "w") as f:
      f.write("ok")
    tf.io.gfile.remove(probe)
  except (tf.errors.OpError, OSError) as e:
    _check_no_file_in_the_way(workdir)
    full = files.no_room(e)
    if full:
      with contextlib.suppress(tf.errors.OpError):
        tf.io.gfile.remove(probe)  # Created, then cut short: nothing of it may stay.
      raise errors.WorkdirError(f"cannot write to workdir {workdir!r}: {full}; free space "
                                "or choose a --workdir on another disk.") from e
    raise errors.WorkdirError(f"cannot write to workdir {workdir!r} ({type(e).__name__}); "
                              "choose a writable --workdir.") from e
  return path


def _check_no_file_in_the_way(workdir):
  """Raises a one-line WorkdirError if the local `workdir` or one of its parents is a
  file (creates nothing)."""
  if "://" in workdir:
    return
  path = os.path.abspath(workdir)
  while not os.path.exists(path) and os.path.dirname(path) != path:
    path = os.path.dirname(path)
  if os.path.exists(path) and not os.path.isdir(path):
    raise errors.WorkdirError(f"workdir {workdir!r} cannot be a folder: {path!r} is a "
                              "file; choose another --workdir.")

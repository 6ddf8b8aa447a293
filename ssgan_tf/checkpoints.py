"""Checkpoint I/O: restore (the newest readable one), set damaged ones aside, save.

A checkpoint can be unreadable: a machine died while the file system had not yet
written it back, a copy was cut short, a disk or object store returned bad bytes. Then
training resumes from the newest *readable* one, and the unreadable ones are reported by
name and kept, never deleted. A checkpoint that reads fine but does not fit the model
(another architecture, another config) is a different matter: the workdir belongs to
another model, and that is an error, not a reason to go back in time.

* `restore_newest_readable(checkpoint, directory)` tries the checkpoints newest first.
  "Readable" is decided without the model: every tensor of the checkpoint is read
  (`tf.train.load_checkpoint`), which checks that the index parses, that every data shard
  is there and long enough, and every tensor's CRC32C checksum. Only then is it restored
  into the model; if *that* fails, it raises `CheckpointMismatchError`. Reading twice
  costs one extra read of the newest checkpoint.
* Before training goes on, `quarantine(skipped, directory)` renames the unreadable ones
  out of CheckpointManager's way: `ckpt-30.index` becomes
  `ckpt-30.unreadable-<UTC time>.index` (likewise its data shards), and the `checkpoint`
  state file then lists the one restored (the newest readable one) and the older ones
  still on disk (not read: a damaged one among them is found if it is ever needed), with
  their save times (without them the manager would stop rotating the older ones out).
  Without that, the manager would (a) overwrite `ckpt-30` when training reaches step 30
  again (checkpoints are numbered by step) and (b) delete it once `max_to_keep` newer
  ones exist, as it does for every checkpoint the state file lists. Renamed, it is
  neither listed nor matched by the manager's deletion patterns, and keeps its prefix
  for inspection (`tf.train.load_checkpoint(".../ckpt-30.unreadable-...")`). A state
  file the manager cannot read (empty, garbled) is renamed likewise and rebuilt from the
  checkpoints on disk, and what saves cut short by a crash left is removed (below).
  Evaluation and export only read: they never rename nor remove anything.
* `restore(checkpoint, path)` tells a checkpoint that cannot be read (damaged, or
  deleted meanwhile, e.g. by a running trainer's rotation: `UnreadableCheckpointError`)
  from one of another model (`CheckpointMismatchError`).
* `save_or_explain(manager, step)` saves, and turns a full disk into a one-line
  WorkdirError. What a save that runs out of space leaves (measured on a full tmpfs,
  TF 2.21): the earlier checkpoints and the `checkpoint` state file are untouched (the
  state is written only after a save completes, atomically through a temporary file
  and a rename), so the run can resume from the latest listed checkpoint. Left behind,
  depending on where the space ran out: an empty `ckpt-<step>_temp/` directory (data
  shard failed), or also its `part-*` files, or -- when merging the shards' indexes
  failed -- a complete `ckpt-<step>.data-*` with an empty `ckpt-<step>.index`. None of
  these is listed in the state file, so resuming ignores them. A save cut short by a crash
  (kill -9, power loss) leaves a `ckpt-<step>_temp/` directory too, whose files have
  random names that no later save overwrites: `quarantine` removes such directories
  (it runs in the trainer that holds the workdir lock, before its first save, so none
  of them can be a save in progress). The next save of that step overwrites the others.

The candidates are the checkpoints the state file lists; only when it is missing or
unparseable are the `ckpt-<n>.index` files in the directory used instead (then a
leftover of a failed save, as above, is skipped as unreadable like any damaged one).
Paths are local or tf.io.gfile URLs.
"""

import datetime
import json
import os
import re

import tensorflow as tf
from absl import logging

from ssgan_tf import errors
from ssgan_tf import files

# The checkpoints' name: `ckpt-<step>` (tf.train.CheckpointManager's default
# checkpoint_name, which train_lib's manager is given).
NAME = "ckpt"
# The reason `restore_newest_readable` gives a checkpoint the state file lists without
# any of its files.
GONE = "no files"
# Characters of an error's first line kept in a CheckpointMismatchError's detail.
_DETAIL_LIMIT = 240


class CheckpointMismatchError(errors.WorkdirError):
  """A readable checkpoint that does not match the model it is restored into."""

  def __init__(self, path, detail, fix=None):
    self.path, self.detail = path, detail
    fix = fix or ("use a new --workdir, or the config it was trained with (its "
                  "operative_config.gin)")
    super().__init__(f"checkpoint {path} does not match the configured model ({detail}); "
                     f"{fix}.")


class UnreadableCheckpointError(errors.WorkdirError):
  """A checkpoint that cannot be read (damaged, or no longer there)."""

  def __init__(self, path, reason):
    self.path, self.reason = path, reason
    super().__init__(f"checkpoint {path} cannot be read ({reason}).")


class NoReadableCheckpointError(errors.WorkdirError):
  """Checkpoints exist, but none of them can be read."""

  def __init__(self, directory, skipped):
    self.directory, self.skipped = directory, skipped
    listed = "; ".join(f"{os.path.basename(path)} ({reason})" for path, reason in skipped)
    super().__init__(
        f"no readable checkpoint in {directory}: {listed}. They were left on disk; restore "
        "a good copy of one there, or move the whole folder away (its `checkpoint` state "
        "file lists them) to train from step 0.")


def step_of(path):
  """The step n of checkpoint prefix `path` (`.../ckpt-<n>`), or None for another name."""
  match = re.fullmatch(re.escape(NAME) + r"-(\d+)", os.path.basename(path))
  return int(match.group(1)) if match else None


def _state(directory):
  """The state file's proto, or None if it is missing or cannot be parsed."""
  try:
    return tf.train.get_checkpoint_state(directory)
  except ValueError:  # A state file without model_checkpoint_path (e.g. empty).
    return None


def _listdir(directory):
  try:
    return tf.io.gfile.listdir(directory)
  except tf.errors.NotFoundError:
    return []


def steps_on_disk(directory):
  """The numbers n of the `ckpt-<n>.index` files in `directory`, ascending."""
  pattern = re.compile(re.escape(NAME) + r"-(\d+)\.index")
  return sorted(int(match.group(1)) for name in _listdir(os.fspath(directory))
                if (match := pattern.fullmatch(name)))


def list_checkpoints(directory):
  """The checkpoint prefixes in `directory`, newest first.

  From the `checkpoint` state file; if it is missing or unparseable, from the
  `ckpt-<n>.index` files. Newest = highest number (a CheckpointManager
  numbering by step or by save count), then the later in the state file.
  """
  directory = os.fspath(directory)
  state = _state(directory)
  if state is not None:
    paths = list(state.all_model_checkpoint_paths)
    if state.model_checkpoint_path not in paths:
      paths.append(state.model_checkpoint_path)
  else:
    paths = [os.path.join(directory, f"{NAME}-{n}") for n in steps_on_disk(directory)]
  order = {path: i for i, path in enumerate(paths)}
  return sorted(order, reverse=True,
                key=lambda p: (step_of(p) is not None, step_of(p) or 0, order[p]))


def unreadable_reason(path):
  """None if every tensor of checkpoint `path` can be read, else why not (one line).

  Model-independent: reads the index and every tensor (which checks its checksum).
  Raises WorkdirError if the checkpoint may not be read at all (permission denied): that
  is the user's to fix, and no evidence of damage.
  """
  try:
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except (tf.errors.OpError, IndexError, ValueError) as e:
    # The checkpoint reader reports most I/O errors as a bare OpError (code UNKNOWN), a
    # short data file as IndexError ("Read less bytes than requested").
    if isinstance(e, tf.errors.PermissionDeniedError) or "Permission denied" in str(e):
      raise errors.WorkdirError(f"cannot read checkpoint {path} (permission denied); make "
                                "the workdir readable to this user.") from e
    return errors.first_line(e, limit=_DETAIL_LIMIT)
  return None


def restore(checkpoint, path):
  """Restores `path` into `checkpoint` (a `tf.train.Checkpoint`), every object of which
  must be in the file.

  Raises:
    UnreadableCheckpointError: `path` cannot be read (`unreadable_reason`), e.g. damaged
      or deleted while being read. `checkpoint` may then hold some of its values.
    CheckpointMismatchError: `path` reads fine but holds a different model.
  """
  # Made before the restore (else lazily, at the first save): when the restore fails on
  # another model, TensorFlow's warning that the file's save counter was never restored
  # came after our error message, as the program exited.
  _ = checkpoint.save_counter
  try:
    # Values of the file that the model lacks (the average of G, for a model built without
    # one: training refuses that, workdir.check_average) are no error here, nor worth
    # TensorFlow's dozens of warning lines.
    checkpoint.restore(path).expect_partial().assert_existing_objects_matched()
  except (AssertionError, ValueError, IndexError, tf.errors.OpError) as e:
    # Which it is, is decided on failure only: reading every tensor costs a second read.
    reason = unreadable_reason(path)
    if reason:
      raise UnreadableCheckpointError(path, reason) from e
    raise CheckpointMismatchError(path, errors.first_line(e, limit=_DETAIL_LIMIT)) from e


def restore_newest_readable(checkpoint, directory):
  """Restores the newest readable checkpoint of `directory` into `checkpoint` (`restore`).

  Args:
    checkpoint: a `tf.train.Checkpoint` (optimizers built, so that their slots restore).
    directory: the checkpoint directory (a CheckpointManager's).

  Returns:
    `(path, skipped)`: the checkpoint restored (None if `directory` holds none; nothing is
    restored then), and `[(path, reason)]` for each newer one that could not be read,
    newest first, or that the state file lists without its files (moved or deleted by
    hand). Those are logged as warnings and left on disk as they are.

  Raises:
    CheckpointMismatchError: the newest readable checkpoint does not fit `checkpoint`
      (it is not skipped: older ones are not tried).
    NoReadableCheckpointError: there are checkpoint files, and none is readable.
  """
  skipped = []
  for path in list_checkpoints(directory):
    if not _checkpoint_files(path):
      logging.warning("checkpoint %s is listed but has no files (moved or deleted); "
                      "trying the next older one.", path)
      skipped.append((path, GONE))
      continue
    reason = unreadable_reason(path)
    if reason:
      logging.warning("checkpoint %s cannot be read (%s); trying the next older one.",
                      path, reason)
      skipped.append((path, reason))
      continue
    restore(checkpoint, path)
    if skipped:
      logging.warning("resumed from %s, older than the unreadable %s.", path,
                      ", ".join(p for p, _ in skipped))
    return path, skipped
  if any(reason != GONE for _, reason in skipped):
    raise NoReadableCheckpointError(os.fspath(directory), skipped)
  return None, skipped


def _checkpoint_files(prefix):
  return (tf.io.gfile.glob(prefix + ".index")
          + tf.io.gfile.glob(prefix + ".data-?????-of-?????"))


def quarantine(skipped, directory, restored=None, now=None):
  """Readies `directory` for the CheckpointManager that continues training: renames the
  unreadable checkpoints and an unusable state file out of its way (never deletes them),
  rebuilds the state file if needed, and removes the leftovers of saves cut short.

  Call it before creating that manager (it reads the state file once, when created), on
  the chief only, while it holds the workdir lock (no other process saves there then),
  whether or not any checkpoint was skipped.

  Args:
    skipped: `[(path, reason)]` as returned by `restore_newest_readable`.
    directory: the checkpoint directory.
    restored: the path restored (the state file's newest from now on), or None.
    now: the time put into the new names (default: the current UTC time).

  Returns:
    `[(old prefix, new prefix)]` of the renamed checkpoints (one listed in the state file
    whose files are gone is only dropped from it).
  """
  directory = os.fspath(directory)
  stamp = (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
  renamed = []
  for prefix, _ in skipped:
    new_prefix = f"{prefix}.unreadable-{stamp}"
    names = _checkpoint_files(prefix)
    if not names:  # GONE.
      logging.warning("checkpoint %s has no files; dropped from the state file.", prefix)
      continue
    for name in names:
      tf.io.gfile.rename(name, new_prefix + name[len(prefix):], overwrite=False)
    renamed.append((prefix, new_prefix))
    logging.warning("renamed the unreadable checkpoint %s to %s, so that later saves "
                    "neither overwrite nor delete it.", prefix, new_prefix)
  state = _state(directory)
  if state is None:
    _set_aside_state(directory, stamp)  # Unparseable (if there is one).
  if skipped or state is None:
    if not _rebuild_state(directory, state, {prefix for prefix, _ in skipped}, restored):
      _set_aside_state(directory, stamp)  # It lists no readable checkpoint.
  _remove_interrupted_saves(directory)
  return renamed


def _set_aside_state(directory, stamp):
  """Renames the state file, if any, to a name nothing reads (kept like the checkpoints)."""
  state_file = os.path.join(directory, "checkpoint")
  if tf.io.gfile.exists(state_file):
    tf.io.gfile.rename(state_file, f"{state_file}.unreadable-{stamp}", overwrite=False)
    logging.warning("renamed the unusable checkpoint state file %s to %s.unreadable-%s.",
                    state_file, state_file, stamp)


def _rebuild_state(directory, state, gone, restored):
  """Rewrites the state file without `gone`, or from the index files if `state` is None,
  keeping each checkpoint's save time (or its index file's time where none is known), so
  that the manager goes on rotating them out. Returns False if none is left to list."""
  if state is not None:
    listed = list(state.all_model_checkpoint_paths)
    times = dict(zip(listed, state.all_model_checkpoint_timestamps))
  else:
    listed = [os.path.join(directory, f"{NAME}-{n}") for n in steps_on_disk(directory)]
    times = {}
  kept = [p for p in listed if p not in gone and tf.io.gfile.exists(p + ".index")]
  if restored and restored not in kept:
    kept.append(restored)
  if kept:
    _write_state(directory, restored or kept[-1], kept,
                 [times.get(p) or tf.io.gfile.stat(p + ".index").mtime_nsec / 1e9
                  for p in kept],
                 state.last_preserved_timestamp if state is not None else 0.0)
  return bool(kept)


def _remove_interrupted_saves(directory):
  """Removes the `ckpt-<n>_temp` directories of saves cut short."""
  pattern = re.compile(re.escape(NAME) + r"-\d+_temp")
  for name in _listdir(directory):
    path = os.path.join(directory, name)
    if pattern.fullmatch(name) and tf.io.gfile.isdir(path):
      tf.io.gfile.rmtree(path)
      logging.warning("removed %s, left by a save that was cut short.", path)


def _write_state(directory, latest, paths, timestamps, last_preserved):
  """Writes the `checkpoint` state file as CheckpointManager does: relative names, save
  times (seconds since the epoch; the manager rotates out only those after
  `last_preserved`), whole.

  (The public writer, `tf.compat.v1.train.update_checkpoint_state`, writes absolute paths,
  which break when the workdir is moved.)
  """
  def name(path):
    relative = os.path.relpath(path, directory) if "://" not in path else None
    return json.dumps(relative if relative and not relative.startswith("..") else path)
  text = (f"model_checkpoint_path: {name(latest)}\n"
          + "".join(f"all_model_checkpoint_paths: {name(p)}\n" for p in paths)
          + "".join(f"all_model_checkpoint_timestamps: {t!r}\n" for t in timestamps)
          + f"last_preserved_timestamp: {last_preserved!r}\n")
  state_file = os.path.join(directory, "checkpoint")
  with tf.io.gfile.GFile(state_file + ".tmp", "w") as f:
    f.write(text)
  tf.io.gfile.rename(state_file + ".tmp", state_file, overwrite=True)


def save_or_explain(manager, step):
  """`manager.save(checkpoint_number=step)`; a full disk or a file-size limit
  (`files.no_room`) becomes a one-line WorkdirError.

  Args:
    manager: the `tf.train.CheckpointManager`.
    step: the generator step (the checkpoint's number).

  Returns:
    The path of the checkpoint written.
  """
  try:
    return manager.save(checkpoint_number=step, check_interval=False)
  except (tf.errors.ResourceExhaustedError, tf.errors.OutOfRangeError) as e:
    reason = files.no_room(e)
    if reason is None:
      raise  # E.g. out of (device) memory: not the disk.
    prefix = os.path.join(manager.directory, f"{NAME}-{step}")
    leftovers = sorted(os.path.basename(p) for p in
                       tf.io.gfile.glob(prefix + ".*") + tf.io.gfile.glob(prefix + "_temp"))
    left = (f"; its partial files ({', '.join(leftovers)}) are not used and may be removed"
            if leftovers else "")
    raise errors.WorkdirError(
        f"{reason}: could not save step {step} in {manager.directory}; the "
        f"checkpoints before it are intact (latest: {manager.latest_checkpoint}){left}. "
        "Free space (or move the workdir to a bigger disk) and run again to resume."
    ) from e

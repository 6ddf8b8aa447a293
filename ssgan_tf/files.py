"""Atomic file writes, local or through tf.io.gfile (gs://...): a reader never sees a
partial file or directory, and a failed write leaves nothing behind. And what a write that
found no room (a full disk, a quota, a file-size limit) says to the user.

Below every stage (data records its folder checks with it, the workdir its files), so
that any module may use it.
"""

import contextlib
import os
import uuid

import tensorflow as tf

from ssgan_tf.errors import WorkdirError


class OutputExistsError(WorkdirError):
  """`atomic_output(path, overwrite=False)` found `path` there, before or after writing."""


@contextlib.contextmanager
def atomic_output(path, overwrite=True):
  """Yields a temporary sibling path to write a file or a directory to; on success it is
  renamed to `path`, so readers never see a partial result and a failure leaves nothing.

  The temporary name starts with ".tmp-" (TF Serving and our listings ignore it) and ends
  like `path` (Keras picks the format of `save_weights` by suffix).

  Args:
    path: the final file or directory (local or tf.io.gfile URL).
    overwrite: replace an existing `path`; if False, OutputExistsError when it exists
      before anything is written, or when another process wrote it meanwhile (what was
      written here is then removed, theirs kept; on local disks: an object store's rename
      is a copy, which a racing writer can interleave with).
  """
  parent, name = os.path.split(path)
  exists = f"{path!r} exists already; delete it or ask to overwrite it."
  if not overwrite and tf.io.gfile.exists(path):
    raise OutputExistsError(exists)
  tmp = os.path.join(parent, f".tmp-{uuid.uuid4().hex[:12]}-{name}")
  replaced = tmp + "-replaced"
  tf.io.gfile.makedirs(parent)
  try:
    yield tmp
    if not overwrite:
      try:
        tf.io.gfile.rename(tmp, path, overwrite=False)
      except tf.errors.OpError as e:  # AlreadyExists; a directory there: not empty.
        if tf.io.gfile.exists(path):
          raise OutputExistsError(exists) from e
        raise
    elif tf.io.gfile.isdir(tmp):
      # Directories cannot be renamed over one another: move the old one aside first.
      if tf.io.gfile.exists(path):
        tf.io.gfile.rename(path, replaced)
      tf.io.gfile.rename(tmp, path)
    else:
      tf.io.gfile.rename(tmp, path, overwrite=True)
  except BaseException:
    if tf.io.gfile.exists(replaced) and not tf.io.gfile.exists(path):
      tf.io.gfile.rename(replaced, path)
    _remove(tmp)
    raise
  _remove(replaced)


def write_atomically(path, contents):
  """Writes `contents` (str or bytes) to `path` through `atomic_output`."""
  with atomic_output(path) as tmp:
    with tf.io.gfile.GFile(tmp, "wb" if isinstance(contents, bytes) else "w") as f:
      f.write(contents)


# How a full disk or quota (ENOSPC, EDQUOT: ResourceExhaustedError; object stores' quotas)
# and a file-size limit (EFBIG: OutOfRangeError) read in TensorFlow's errors.
_NO_ROOM = {"no space left on device": "the disk is full",
            "quota exceeded": "the disk quota is exceeded",
            "file too large": "a file size limit (e.g. `ulimit -f`) was reached"}


def no_room(error):
  """What ran out when `error` (a tf.errors.OpError) is a write that found no room: "the
  disk is full", ...; None for any other error (e.g. out of device memory)."""
  if isinstance(error, (tf.errors.ResourceExhaustedError, tf.errors.OutOfRangeError)):
    message = str(error).lower()
    return next((what for text, what in _NO_ROOM.items() if text in message), None)
  return None


@contextlib.contextmanager
def no_room_is_an_error(what):
  """Turns a write inside the block that found no room (`no_room`) into a one-line
  WorkdirError: "<what ran out>: could not write <what>; the checkpoints saved so far are
  kept. Free space ...". Needed in Keras callbacks above all: Keras takes an
  OutOfRangeError raised there (a file-size limit's) for the end of the input data and
  ends training without a word."""
  try:
    yield
  except (tf.errors.ResourceExhaustedError, tf.errors.OutOfRangeError) as e:
    reason = no_room(e)
    if reason is None:
      raise
    raise WorkdirError(f"{reason}: could not write {what}; the checkpoints saved so far are "
                       "kept. Free space (or move the workdir to a bigger disk) and run again "
                       "to resume.") from e


def _remove(path):
  if tf.io.gfile.isdir(path):
    tf.io.gfile.rmtree(path)
  elif tf.io.gfile.exists(path):
    tf.io.gfile.remove(path)

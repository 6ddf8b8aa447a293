"""Metric records: `<workdir>/metrics.jsonl` and TensorBoard scalars under `<workdir>/eval`.

One JSON object per metric and evaluation, appended, never rewritten (the workdir only
grows). Every record has RECORD_KEYS:
  step: generator steps of the evaluated weights.
  checkpoint: the checkpoint path evaluated, or None for the live model in training.
  metric: a name that states the protocol, e.g. "fid10k_test" (metrics.py).
  value: the float.
  num_real / num_fake: images each side used (0 where a side is unused).
  classifier: what produced the features, e.g. "inception-<12 hex digits of its graph's
    sha1>-tf1bilinear299" or "mnist_cnn_v2".
Records of generated samples (eval_lib.compute_metrics) also carry
  std, runs, values: the spread (standard deviation, ddof 0) over `runs` fake sets, and
    each set's value;
  generator: "ema" (the exponential moving average of G's weights, ema.py) or "raw" (G);
  real_value: for a classifier score, its value on real images of the same split.
The probe's records add "block", "per_block" and "num_train".
The EMA's metrics are named with EMA_SUFFIX ("fid10k_test_ema", "is10k_ema"), so that
both kinds can be tracked side by side in one metrics.jsonl and TensorBoard; the raw G
keeps the plain names, as in runs without an EMA.
"""

import json
import os

import tensorflow as tf
from absl import logging

from ssgan_tf import errors
from ssgan_tf import files
from ssgan_tf import workdir as workdir_lib

RECORD_KEYS = ("step", "checkpoint", "metric", "value", "num_real", "num_fake", "classifier")
# What a line of metrics.jsonl needs to be read as a record (by study_runs too).
MINIMAL_RECORD_KEYS = ("step", "metric", "value")
EMA_SUFFIX = "_ema"


def check_appendable(workdir, what):
  """Opens metrics.jsonl as `append_records` does, appending nothing, before the minutes
  of an evaluation or a probe: `unwritable`'s one-line WorkdirError if it cannot be.

  Args:
    workdir: the run's directory.
    what: what the error adds was not done, e.g. "no evaluation was run".
  """
  try:
    _append_to_metrics(workdir, "")  # GFile opens the file on the first write, even of "".
  except (tf.errors.OpError, OSError) as e:
    raise unwritable(workdir, e, what) from e


def unwritable(workdir, error, what):
  """The one-line WorkdirError for `error`, met appending to `workdir`'s metrics.jsonl;
  `what` says what became of the records ("the results are in the log lines above")."""
  ran_out = files.no_room(error)
  fix = (f"{ran_out[0].upper()}{ran_out[1:]}: free space" if ran_out else
         "Make the workdir writable")
  return errors.WorkdirError(
      f"cannot append to {os.path.join(workdir, workdir_lib.METRICS)} "
      f"({type(error).__name__}); {what}. {fix}, or run on a writable copy of it.")


def _append_to_metrics(workdir, text):
  tf.io.gfile.makedirs(workdir)
  with tf.io.gfile.GFile(os.path.join(workdir, workdir_lib.METRICS), "a") as f:
    f.write(text)


def _ends_a_line(path):
  """Whether the file at `path` is empty, missing, or ends with a newline."""
  if not tf.io.gfile.exists(path):
    return True
  size = tf.io.gfile.stat(path).length
  if size == 0:
    return True
  with tf.io.gfile.GFile(path, "rb") as f:
    f.seek(size - 1)
    return f.read(1) == b"\n"


def append_records(workdir, records):
  """Appends `records` (dicts with RECORD_KEYS) to metrics.jsonl and TensorBoard."""
  for record in records:
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
      raise ValueError(f"metric record {record} lacks keys {missing}.")
  # After a torn last record (a process killed while appending), start a new line, so
  # that only the torn one is lost.
  torn = "" if _ends_a_line(os.path.join(workdir, workdir_lib.METRICS)) else "\n"
  _append_to_metrics(workdir, torn + "".join(json.dumps(record) + "\n" for record in records))
  writer = tf.summary.create_file_writer(os.path.join(workdir, workdir_lib.EVAL_LOGS))
  with writer.as_default():
    for record in records:
      tf.summary.scalar(record["metric"], record["value"], step=record["step"])
  writer.close()


def read_records(workdir):
  """All records of `<workdir>/metrics.jsonl`, oldest first ([] if there is none). A line
  that is not a record (a process killed while appending tears its record; a crash of
  the host can leave other bytes) is left out with a warning, as study_runs' reader,
  which imports no TensorFlow, leaves it out."""
  path = os.path.join(workdir, workdir_lib.METRICS)
  if not tf.io.gfile.exists(path):
    return []
  found = []
  with tf.io.gfile.GFile(path, "rb") as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line.decode("utf-8", errors="replace"))
      except json.JSONDecodeError:
        record = None
      if isinstance(record, dict) and all(key in record for key in MINIMAL_RECORD_KEYS):
        found.append(record)
      else:
        logging.warning("%s, line %d: not a record (torn by a killed write?); left out.",
                        path, number)
  return found


def evaluated_in_training_at(workdir, step):
  """Whether `<workdir>/metrics.jsonl` holds a record of the evaluation during training
  (`train.eval_every`: the live generator, `checkpoint` None) at generator step `step`.
  Records of `--mode=eval` or `--mode=probe` (of a checkpoint, with their own settings)
  do not count: they do not stand for the evaluation a preemption or a crash left out."""
  return any(record["step"] == step and record.get("checkpoint") is None
             for record in read_records(workdir))

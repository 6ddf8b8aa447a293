"""Learning-rate schedules of the optimizers, as functions of their own update count.

A schedule reads `optimizer.iterations` (checkpointed), so a resumed run continues it
exactly. D's optimizer updates `disc_iters` times per generator step, so its schedule is
built over `disc_iters * total_steps` updates.
"""

import keras
import tensorflow as tf

from ssgan_tf import errors

DECAYS = ("constant", "linear")
DECAY_START = 0.0  # The default: a "linear" decay over the whole run.


class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
  """`initial` until `start` updates, then linearly to 0 at `total` updates (and after).

  Args:
    initial: the learning rate before the decay (> 0).
    start: updates at the full rate (0 <= start < total).
    total: updates at which the rate reaches 0.
  """

  def __init__(self, initial, start, total):
    self.initial, self.start, self.total = float(initial), int(start), int(total)

  def __call__(self, step):
    done = (tf.cast(step, tf.float32) - self.start) / float(self.total - self.start)
    return self.initial * (1.0 - tf.clip_by_value(done, 0.0, 1.0))

  def get_config(self):
    return {"initial": self.initial, "start": self.start, "total": self.total}


def is_scheduled(optimizer):
  """Whether a Keras optimizer's rate is a schedule (else a variable it checkpoints)."""
  # pylint: disable=protected-access
  return isinstance(optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule)


def check_same_kind(checkpoint_path, optimizers):
  """ConfigError if the checkpoint's optimizers had a constant rate and these a decay, or
  the other way round (a float rate is a checkpoint variable, a decay is not, so neither
  restores into the other).

  Args:
    checkpoint_path: a checkpoint prefix.
    optimizers: {name in the checkpoint: the Keras optimizer to restore into}.
  """
  saved = {name for name, _ in tf.train.list_variables(checkpoint_path)}
  for name, optimizer in optimizers.items():
    was_constant = f"{name}/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE" in saved
    if was_constant == is_scheduled(optimizer):
      trained, now = ("a constant", "a decaying") if was_constant else ("a decaying",
                                                                        "a constant")
      raise errors.ConfigError(
          f"checkpoint {checkpoint_path} was trained with {trained} learning rate and the "
          f"config asks for {now} one (optimizers.lr_decay); a run keeps its kind of rate: "
          "set it back, or start a new --workdir.")


def learning_rate(initial, decay, decay_start, total_updates):
  """The optimizer's learning rate: `initial` (a float) or a schedule.

  Args:
    initial: the base learning rate.
    decay: one of DECAYS.
    decay_start: fraction of training at the full rate before a "linear" decay, in [0, 1).
    total_updates: the optimizer's updates in the whole run; None when the model is
      built only to restore a checkpoint (evaluation, export): a schedule has no
      variables, so one of any length restores the same, but a float rate is a variable
      of the checkpoint and shifts the others, so the kind must be the run's.
  """
  if decay not in DECAYS:
    raise errors.ConfigError(f"unknown optimizers.lr_decay {decay!r}; "
                             f"choose one of {list(DECAYS)}.")
  errors.check_range("optimizers.decay_start", decay_start, minimum=0, maximum=1,
                     exclusive_maximum=True)
  if decay == "constant":
    return initial
  total = 1 if total_updates is None else total_updates
  # At most total - 1: a start rounded up to `total` would divide by zero at `total`.
  return LinearDecay(initial, min(round(decay_start * total), total - 1), total)

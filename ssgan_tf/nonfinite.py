"""Stage 5d: where training first went non-finite, recorded inside the compiled step.

When `fit` runs many generator steps per call (train.steps_per_execution), callbacks see
only the last step of each call, so the step itself records the first step whose
losses were not all finite; the non-finite guard (callbacks.StopAtStep) reads it from
the logs at the end of the call.
"""

import keras
import tensorflow as tf

# The log entry: the first bad generator step of the current log interval, 0 if none.
LOG_NAME = "nonfinite/first_step"


class FirstNonFiniteStep(keras.metrics.Metric):
  """The first generator step (1-based, as `SSGAN.step` counts) since the last reset
  whose losses were not all finite on some replica; 0 while there is none.

  Every replica holds the same value (the flag is summed over replicas), so reading it
  from any replica, or averaging the replicas, gives the step.
  """

  def __init__(self, name=LOG_NAME):
    super().__init__(name=name)
    self.first = self.add_variable(shape=(), initializer="zeros", dtype="int64",
                                   name="first", aggregation="only_first_replica")

  def update_state(self, step, values):
    """`step`: int64 scalar, the step just done; `values`: the step's float metrics."""
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in values])
    bad = tf.cast(tf.logical_not(finite), tf.float32)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
      bad = context.all_reduce(tf.distribute.ReduceOp.SUM, bad)
    first = tf.convert_to_tensor(self.first)
    self.first.assign(tf.where((first == 0) & (bad > 0), tf.cast(step, tf.int64), first))

  def result(self):
    return tf.convert_to_tensor(self.first)

"""Stage 5c: many training steps per call of the compiled function, under any strategy.

Keras 3's own loop for `steps_per_execution > 1` wraps each step in a `tf.cond` (for
finite datasets), and a `tf.cond` around a replica step whose optimizer calls
`merge_call` fails under MirroredStrategy ("You must feed a value for placeholder
tensor", keras-team/keras#19246). Training data here never ends, so the loop needs no
condition: a `tf.range` loop of `strategy.run` calls, as tf.keras 2 did. One step per
call is this function too, without the loop: Keras' own function logs replica 0's
values under TPUStrategy (its `reduce_per_replica` "auto"), not the mean over replicas.
"""

import keras
import tensorflow as tf


class MultiStepTraining(keras.Model):
  """A Keras Model whose `fit` runs `steps_per_execution` steps per call without a
  `tf.cond`, and logs the mean over replicas. The dataset must not end, and
  `train_step` must return its metrics' results (`get_metrics_result()`, as Keras'
  own `train_step` does): the loop returns those after its last step."""

  def make_train_function(self, force=False):
    if self.train_function is not None and not force:
      return self.train_function
    strategy = self.distribute_strategy
    steps = self.steps_per_execution
    # The step's code (ours and Keras') writes its tensor conditions as tf.cond/ops.cond,
    # so autograph has nothing to convert in it; converting it anyway (every function it
    # calls, Keras' optimizers included) cost a process's first run ~2.5 s and every trace
    # ~0.5 s more (a tiny quickstart run, README: Speed).
    step_fn = tf.autograph.experimental.do_not_convert(self.train_step)
    if self.jit_compile:
      step_fn = tf.function(step_fn, jit_compile=True, reduce_retracing=True)

    @tf.function(reduce_retracing=True)
    def multi_step(iterator):
      if steps == 1:  # No loop: a one-trip while loop costs a second of graph work.
        strategy.run(step_fn, args=(next(iterator),))
      else:
        # Every step inside the loop, so the step is traced (and its graph optimized)
        # once; running the last step after the loop for its logs traced it twice.
        for _ in tf.range(steps):
          strategy.run(step_fn, args=(next(iterator),))
      # The logs of the last step: each metric's result (what `train_step` returns).
      logs = strategy.run(self.get_metrics_result)
      # Each replica's Mean trackers hold their own interval means; the mean over
      # replicas is the global one (replicas have equal batches), as Keras reduces them.
      return {name: tf.reshape(strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None),
                               [])
              for name, value in logs.items()}

    self.train_function = multi_step
    return self.train_function

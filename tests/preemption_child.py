"""A tiny trainer for test_preemption: `python preemption_child.py WORKDIR ANNOUNCE_STEP`.

Trains a few Dense weights with a custom train_step through `fit` (one device, or
MultiWorkerMirroredStrategy when TF_CONFIG is set), saving through a CheckpointManager
in WORKDIR/checkpoints (other workers: WORKDIR/worker_<i>). A worker told to announce
(ANNOUNCE_STEP > 0; only worker 1 in a cluster) writes its weights at that step to
WORKDIR/weights_<step>.npz, prints "reached <step>", then waits for a signal (through
the signal wakeup fd: no race with a signal that comes first). Exits as `main` does:
errors.EXIT_CODE_PREEMPTED on `Preempted`.
"""

import json
import os
import select
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ssgan_tf import errors  # noqa: E402
from ssgan_tf import preemption  # noqa: E402

TOTAL_STEPS = 50


class Tiny(keras.Model):
  """y = Dense(2)(x), trained to map x to 0; logs 1-D values (Keras 3 under MWMS needs it)."""

  def __init__(self):
    super().__init__()
    self.dense = keras.layers.Dense(2, kernel_initializer="ones")

  def call(self, x):
    return self.dense(x)

  @property
  def step(self):
    """The step, as SSGAN.step: what the preemption callback saves and reports."""
    return int(self.optimizer.iterations.numpy())

  def train_step(self, x):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.square(self(x)))
    grads = tape.gradient(loss, self.trainable_variables)
    self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
    return {"loss": tf.reshape(loss, [1])}


def build(strategy):
  with strategy.scope():
    model = Tiny()
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    model(tf.ones([1, 3]))
    model.optimizer.build(model.trainable_variables)
  return model, tf.train.Checkpoint(model=model, optimizer=model.optimizer)


def dataset():
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  steps = tf.data.Dataset.range(1, 10**6)
  return steps.map(lambda i: tf.fill([4, 3], tf.cast(i, tf.float32) / 100.0)).with_options(options)


class AnnounceAndWait(keras.callbacks.Callback):

  def __init__(self, workdir, step, wakeup):
    super().__init__()
    self.workdir, self.step, self.wakeup = workdir, step, wakeup

  def on_train_batch_end(self, batch, logs=None):
    step = int(self.model.optimizer.iterations.numpy())
    if step != self.step:
      return
    np.savez(os.path.join(self.workdir, f"weights_{step}.npz"),
             *[v.numpy() for v in self.model.weights])
    print(f"reached {step}", flush=True)
    if not select.select([self.wakeup], [], [], 120)[0]:
      sys.exit(3)  # No signal came.


def main(workdir, announce_step):
  task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
  strategy = (tf.distribute.MultiWorkerMirroredStrategy() if task
              else tf.distribute.get_strategy())
  index = task.get("index", 0)
  model, checkpoint = build(strategy)
  directory = os.path.join(workdir, "checkpoints" if index == 0 else f"worker_{index}")
  manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=3)

  def save():
    return manager.save(checkpoint_number=model.step, check_interval=False)

  read, write = os.pipe()
  os.set_blocking(write, False)
  signal.set_wakeup_fd(write)
  callbacks = []
  if announce_step and (not task or index == 1):
    callbacks.append(AnnounceAndWait(workdir, announce_step, read))
  with preemption.PreemptionWatcher() as watcher:
    callbacks.append(preemption.SaveOnPreemption(watcher, save, strategy))
    try:
      model.fit(dataset(), steps_per_epoch=TOTAL_STEPS, epochs=1, callbacks=callbacks,
                shuffle=False, verbose=0)
    except preemption.Preempted as e:
      print(e, file=sys.stderr)
      sys.exit(errors.EXIT_CODE_PREEMPTED)


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]))

"""Stage 5b: an exponential moving average (EMA) of G's weights, kept in a second G.

compare_gan's `g_use_ema` (`gans/modular_gan.py:67-69, 498-508`): after every G update,
  ema <- decay * ema + (1 - decay) * w,  computed as  ema - (1 - decay) * (ema - w)
for each trainable weight w of G, with decay 0.9999 from `start_step` on and 0 before,
so that until then the average IS G. Here the update that brings G's step counter to k
averages iff k > start_step (compare_gan reads the step before `minimize` increments
it): EMA_k = G_k for k <= start_step, then EMA_k = decay * EMA_{k-1} + (1 - decay) * G_k.

The average lives in its own network of G's architecture (`GeneratorEMA.network`), which
`SSGAN.generate` samples from by default; no optimizer or gradient tape ever sees it.

Batch-norm statistics (and any other non-trainable state, e.g. a spectral-norm `u`) of
the average. compare_gan averages only trainable weights; sampled in eval mode, its EMA
G then reads the raw G's moving statistics (modular_gan.py:266-284 falls back to the raw
variable), unless batch norm runs in "accumulator" mode, as its EMA config does
(biggan_imagenet128.gin: `standardize_batch.use_moving_averages = False`): before
evaluation it runs the EMA G over 204800 samples and uses the mean of their batch
moments (arch_ops.py:122-191, eval_gan_lib.py:65-92, 156). The statistics that belong
to the averaged weights are the averaged network's own. So here the average keeps its
own moving statistics, updated the way G's are: after each weight update, the average
runs once in training mode on the G step's noise, which updates its BN moving mean and
variance (momentum 0.9) from its own activations. Since the weights move by
(1 - decay) per step, the last ~10 batches that momentum 0.9 remembers come from nearly
the same network, so the estimate is what accumulation over those batches would give.
This keeps every consumer of `generate` (sample grids, evaluation, export) free of a
separate statistics pass, the export self-contained, and resume exact (the statistics
are checkpointed with the weights). Before `start_step` every variable, statistics
included, is copied from G. Cost: one extra forward pass of G per statistics pass, by
default every step (no backward); ~13 % of the quickstart's step on a 2-core AMD EPYC.
`statistics_every = k` runs the pass only after updates whose step is a multiple of k
(a function of the step, so resume stays exact): the statistics then come from the
average's last ~10 passes, i.e. its weights over the last ~10k steps. One replica only
(with several it is 1, and a warning says so): under a tf.cond, synchronized batch norm's
cross-replica reduction cannot run.
The average's layers stay Keras-trainable because Keras batch norm ignores
`training=True` in a non-trainable layer.

Under MirroredStrategy the update runs in each replica's context on identical values
(G's weights, the average, the step), assigning each replica's own copy (the variables
aggregate with NONE, as G's batch-norm statistics and D's spectral-norm `u` do), so the
copies stay identical without cross-replica communication.
"""

from absl import logging
import tensorflow as tf

from ssgan_tf import errors

DECAY = 0.9999  # compare_gan modular_gan.py:68.
START_STEP = 40000  # compare_gan modular_gan.py:69.
STATISTICS_EVERY = 1  # Generator steps between the average's batch-norm statistics passes.


class GeneratorEMA:
  """The EMA of a generator's weights; create it inside the strategy scope.

  Args:
    generator: the trained G (a built Keras model).
    make_generator: a no-argument callable returning a new, built network of G's
      architecture (same variables in the same order).
    decay: in [0, 1); the weight of the old average.
    start_step: generator steps (>= 0) before averaging starts.
    statistics_every: generator steps (>= 1) between the average's batch-norm
      statistics passes; with several replicas 1 whatever is asked (a warning says so).
    num_replicas: replicas in sync.
  """

  def __init__(self, generator, make_generator, decay=DECAY, start_step=START_STEP,
               statistics_every=STATISTICS_EVERY, num_replicas=1):
    self.decay = errors.check_range("ssgan.ema_decay", decay, minimum=0, maximum=1,
                                    exclusive_maximum=True)
    self.start_step = errors.check_range("ssgan.ema_start_step", start_step, minimum=0,
                                         integer=True)
    self.statistics_every = errors.check_range(
        "ssgan.ema_statistics_every", statistics_every, minimum=1, integer=True)
    if self.statistics_every > 1 and num_replicas > 1:
      # Synchronized batch norm's cross-replica reduction cannot run inside the tf.cond
      # that skips the pass (tf.distribute's merge_call). A speed setting: configs that
      # use it still run on several replicas.
      logging.warning("ssgan.ema_statistics_every = %d applies to one replica only; with "
                      "%d replicas the EMA's statistics pass runs every step.",
                      self.statistics_every, num_replicas)
      self.statistics_every = 1
    self.network = make_generator()
    ours, theirs = self.network.variables, generator.variables
    if [(v.shape, v.trainable) for v in ours] != [(v.shape, v.trainable) for v in theirs]:
      raise ValueError("make_generator() built a network whose variables differ from G's.")
    for average, weight in zip(ours, theirs):
      average.assign(weight)  # The average starts at G's initial weights.

  def update(self, generator, step, z, labels=None):
    """Folds G's current weights into the average; call after each G update.

    Args:
      generator: G, after its update.
      step: G's step counter after that update (int tensor or variable).
      z: the G step's noise `[B, z_dim]`: the average runs on it in training mode to
        update its own batch-norm statistics.
      labels: a conditional G's labels of that step, `[B]` int (None otherwise).
    """
    with tf.name_scope("generator_ema"):
      started = tf.convert_to_tensor(step) > self.start_step
      # In float32, as TF's ExponentialMovingAverage computes it.
      step_size = 1.0 - tf.constant(self.decay, tf.float32)
      pairs = list(zip(self.network.variables, generator.variables))
      for average, weight in pairs:
        if average.trainable:
          # As TF's ExponentialMovingAverage (compare_gan's): a step of (1 - decay) toward
          # w. `decay * average + (1 - decay) * w` rounds decay * average every step, an
          # error that the average keeps for ~1 / (1 - decay) steps (~1e4 ulp at 0.9999).
          average.assign(tf.where(started, average - step_size * (average - weight),
                                  weight))
      # Its own BN statistics, from the new weights.
      if self.statistics_every == 1:  # No tf.cond: synchronized BN runs only outside one.
        self._statistics_pass(z, labels)
      else:
        tf.cond(tf.convert_to_tensor(step) % self.statistics_every == 0,
                lambda: self._statistics_pass(z, labels), lambda: tf.constant(False))
      for average, weight in pairs:
        if not average.trainable:
          average.assign(tf.where(started, average, weight))

  def _statistics_pass(self, z, labels):
    """Runs the average once in training mode, which updates its BN moving statistics."""
    if labels is None:
      self.network(z, training=True)
    else:
      self.network(z, labels=labels, training=True)
    return tf.constant(True)

"""Stage 5: the SS-GAN model, a Keras Model whose `train_step` is one generator step.

One generator step = `disc_iters` D updates, each on fresh real images and fresh noise,
then one G update (compare_gan's unrolled TPU step). With rotation weights
alpha (G) and beta (D):
  L_D = GAN_D(upright real, upright fake) + beta  * CE(rotation | real, rotated)
  L_G = GAN_G(upright fake)                + alpha * CE(rotation | fake, rotated)
Per replica, the last n = rotated_per_replica / 4 images of a batch are rotated by
k = 1, 2, 3 and appended (rotation.py); a weight of 0 skips the rotations altogether, so
alpha = beta = 0 is exactly the plain GAN.

D's loss may add penalties (`losses.Penalty`, penalties.py: WGAN-GP, DRAGAN, L2): terms
of D and the step's real and fake batches, each with its weight and tracked metric.

self_supervision = "rotation_only" (compare_gan `ssgan.py:47, 212-214`) weights both GAN
losses 0: L_D = beta * CE(real), L_G = alpha * CE(fake). The GAN losses are still
computed and tracked (loss/d, loss/g), not optimized.

With `ema_decay`, an exponential moving average of G's weights (ema.py) is updated after
every G step, and `generate` samples from it by default.

Conditional (G and D built with `networks.conditional`, the Cond-GAN baseline; labels.py):
D scores each real image with its dataset label and each fake with the label G made it
from, drawn i.i.d. from the model's label distribution; rotated copies keep their image's
label. alpha = beta = 0 is the paper's Cond-GAN, alpha, beta > 0 compare_gan's conditional
SS-GAN (with its rotated-fake labels corrected, see `generator_step`).

Losses are per-example vectors reduced once with the GLOBAL count
(`tf.nn.compute_average_loss`); Keras' optimizers sum gradients over replicas.

The model is the one way to get images out of G: `generate(z)` (eval mode, through
`sampling_generator`: the EMA of G when there is one; `generate(z, ema=False)`: G), with
noise from `sample_z` (the training stream, another `tf.random.Generator`, or a stateless
seed), and for a conditional G labels from `sample_labels` (the training stream) or from
z itself.
"""

import gin
import keras
import tensorflow as tf

from ssgan_tf import ema as ema_lib
from ssgan_tf import errors
from ssgan_tf import labels as labels_lib
from ssgan_tf import losses
from ssgan_tf import lr_schedule
from ssgan_tf import multi_step
from ssgan_tf import nonfinite
from ssgan_tf import penalties as penalties_lib
from ssgan_tf import rotation
from ssgan_tf.nets import build_networks
from ssgan_tf.rotation import BatchSizes

METRIC_NAMES = ("loss/d", "loss/g", "loss/d_rotation", "loss/g_rotation",
                "accuracy/d_rotation_real", "accuracy/d_rotation_fake")
Z_DISTRIBUTIONS = ("normal", "uniform")
SELF_SUPERVISION = ("rotation_gan", "rotation_only")
LABEL_DISTRIBUTIONS = ("train", "uniform")


def draw_z(shape, distribution, rng=None, seed=None):
  """Noise of `shape` float32: "normal" N(0, 1) or "uniform" U[-1, 1].

  Exactly one of:
    rng: a `tf.random.Generator` (stateful: each call advances it).
    seed: `[2]` int tensor (stateless: the same seed gives the same noise on every call
      and machine).
  """
  uniform = distribution == "uniform"
  if seed is None:
    return rng.uniform(shape, -1.0, 1.0) if uniform else rng.normal(shape)
  return (tf.random.stateless_uniform(shape, seed, -1.0, 1.0) if uniform
          else tf.random.stateless_normal(shape, seed))


class SSGAN(multi_step.MultiStepTraining):
  """Owns G and D; `fit` trains it, `generate(z)` samples images in [-1, 1].

  Each dataset element (per replica, after distribution) is either
    images: `[disc_iters * per_replica_batch, H, H, C]` float32 in [-1, 1], or
    {"images": as above, "z": `[(disc_iters + 1) * per_replica_batch, z_dim]`}, noise
      supplied by the input pipeline (compare_gan's features["z"]); rows
      `[i*B, (i+1)*B)` feed D step i, the last B rows the G step.
  A conditional model's elements are dicts with also
    "labels": `[disc_iters * per_replica_batch]` int, the real images' labels, and
      optionally "fake_labels": `[(disc_iters + 1) * per_replica_batch]` int, the fakes'
      labels, split like z.
  Without "z" (and "fake_labels"), they come from `self.noise`, a `tf.random.Generator`
  created in the strategy scope, which gives every replica its own stream.

  Spectral norm's `u` advances once per D call with `training=True`, so one generator
  step runs `power_iterations_per_step` power iterations in each SN layer of D.

  Args (besides the networks, batch sizes, noise and losses):
    self_supervision: "rotation_gan" (SS-GAN) or "rotation_only" (GAN losses weighted 0).
    penalties: `losses.Penalty`s added to D's loss.
    ema_decay: None (no average), or the decay of the EMA of G's weights (ema.py;
      compare_gan: 0.9999); `make_generator` must then build a new G of G's architecture.
    ema_start_step: generator steps before the averaging starts (the average is G
      until then).
    ema_statistics_every: generator steps between the average's batch-norm statistics
      passes (ema.py).
    sampling_generator: what `generate` runs when there is no EMA (default G).
    label_counts: a conditional G's label distribution: per-class counts (e.g. the
      training split's), or None for uniform.
  """

  def __init__(self, generator, discriminator, *, batch: BatchSizes, z_dim,
               gan_loss: losses.AdversarialLoss, rotation_weight_g=0.2,
               rotation_weight_d=1.0, disc_iters=1, z_distribution="normal", seed=0,
               penalties=(), self_supervision="rotation_gan", ema_decay=None,
               ema_start_step=ema_lib.START_STEP, ema_statistics_every=1,
               make_generator=None, sampling_generator=None, label_counts=None, **kwargs):
    super().__init__(**kwargs)
    _check_settings(batch, z_dim, rotation_weight_g, rotation_weight_d, disc_iters,
                    z_distribution, self_supervision, penalties)
    self.generator, self.discriminator = generator, discriminator
    # int K for a conditional model (G and D take labels), None otherwise.
    self.num_classes = getattr(generator, "num_classes", None)
    if getattr(discriminator, "num_classes", None) != self.num_classes:
      raise ValueError("G and D must be both conditional on the same classes, or neither.")
    self.label_counts = (None if self.num_classes is None or label_counts is None
                         else tuple(int(c) for c in label_counts))
    self.label_probabilities = (labels_lib.probabilities(self.num_classes, self.label_counts)
                                if self.num_classes else None)
    self.self_supervision = self_supervision
    self.ema = None
    if ema_decay is not None:
      if make_generator is None or sampling_generator is not None:
        raise ValueError("an EMA of G needs make_generator, and is what generate samples.")
      self.ema = ema_lib.GeneratorEMA(generator, make_generator, ema_decay, ema_start_step,
                                      ema_statistics_every, batch.num_replicas)
      sampling_generator = self.ema.network
    # What `generate` runs by default: the EMA of G, else G itself unless another network
    # with G's interface is given.
    self.sampling_generator = sampling_generator or generator
    self.batch, self.z_dim, self.gan_loss = batch, z_dim, gan_loss
    self.rotation_weight_g, self.rotation_weight_d = rotation_weight_g, rotation_weight_d
    self.disc_iters, self.z_distribution = disc_iters, z_distribution
    self.penalties = tuple(penalties)
    self.noise = tf.random.Generator.from_seed(seed)
    # Only what this configuration computes: no rotation metrics when its weight is 0.
    active = {"loss/d_rotation": rotation_weight_d, "accuracy/d_rotation_real": rotation_weight_d,
              "loss/g_rotation": rotation_weight_g, "accuracy/d_rotation_fake": rotation_weight_g}
    names = [n for n in METRIC_NAMES if active.get(n, True)] + [p.name for p in self.penalties]
    self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
    self.first_nonfinite = nonfinite.FirstNonFiniteStep()
    self(tf.zeros([1, z_dim]))  # Marks the model built, which fit() needs under a strategy.

  def call(self, z, labels=None, training=False):
    return self._run_generator(self.generator, z, labels, training)

  @tf.function
  def generate(self, z, labels=None, ema=True):
    """Images `[N, H, H, C]` float32 in [-1, 1] from `z` `[N, z_dim]`, in eval mode.

    What sample grids, evaluation and export all show: `sampling_generator` (the EMA of
    G when the model keeps one); with `ema=False`, G itself. Compiled once per model
    and input shape (a tf.function made per evaluation would be traced again each time).

    Args:
      z: `[N, z_dim]` float32.
      labels: a conditional G's `[N]` int labels; None: each row's label is drawn from
        the label distribution by a hash of that row of z (`labels.labels_from_z`), so
        images stay a function of z and no random state moves. Unconditional: None.
      ema: False samples G itself.
    """
    return self._run_generator(self.sampling_generator if ema else self.generator, z,
                               labels, training=False)

  def _run_generator(self, network, z, labels, training):
    """`network(z)`, or for a conditional model `network(z, labels=...)`."""
    if self.num_classes is None:
      if labels is not None:
        raise ValueError("this model is unconditional; it takes no labels.")
      return network(z, training=training)
    if labels is None:
      labels = labels_lib.labels_from_z(z, self.num_classes, self.label_probabilities)
    return network(z, labels=labels, training=training)

  def sample_labels(self, num):
    """`[num]` int32 labels of a conditional model, i.i.d. from its label distribution
    (`labels.draw_labels`), from this replica's training noise stream."""
    if self.num_classes is None:
      raise ValueError("sample_labels of an unconditional model.")
    return labels_lib.draw_labels(num, self.num_classes, self.label_probabilities, self.noise)

  @property
  def ema_generator(self):
    """The network holding the EMA of G's weights, or None."""
    return self.ema.network if self.ema else None

  @property
  def generator_kind(self):
    """What `generate` samples by default: "ema" (the EMA of G) or "raw"."""
    return "ema" if self.ema else "raw"

  def sample_z(self, num, rng=None, seed=None):
    """`[num, z_dim]` float32 noise of the model's distribution (`draw_z`).

    Args:
      num: rows.
      rng: a `tf.random.Generator`; default: this replica's training stream.
      seed: instead of `rng`, a `[2]` int seed for stateless noise.
    """
    if seed is None:
      rng = rng or self.noise
    return draw_z([num, self.z_dim], self.z_distribution, rng, seed)

  @property
  def step(self):
    """Generator steps done so far (Python int): the step every consumer reports."""
    return int(self.g_optimizer.iterations.numpy())

  @property
  def power_iterations_per_step(self):
    """Spectral-norm power iterations per generator step in each SN layer of D: one per
    D call with training=True (each D step's own and its penalties', and G's)."""
    calls_per_d_step = 1 + sum(p.discriminator_calls for p in self.penalties)
    return self.disc_iters * calls_per_d_step + 1

  @property
  def info(self):
    """What describes this model apart from its weights (workdirs and exports record it)."""
    info = {"architecture": self.generator.architecture, "z_dim": self.z_dim,
            "z_distribution": self.z_distribution}
    if self.num_classes is not None:
      # Only then: unconditional models keep describing themselves as before.
      info["num_classes"] = self.num_classes
      if self.label_counts is not None:
        info["label_counts"] = list(self.label_counts)
    return info

  def compile(self, d_optimizer, g_optimizer, **kwargs):
    # No `optimizer`: Keras would otherwise create an unused default one.
    super().compile(**kwargs)
    self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
    # Built here, inside the strategy scope: built lazily in a replica context they fail,
    # and a checkpoint restore needs their slots to exist.
    d_optimizer.build(self.discriminator.trainable_variables)
    g_optimizer.build(self.generator.trainable_variables)

  @property
  def metrics(self):
    # All reset by fit at the start of each log interval ("epoch").
    return [*self.trackers.values(), self.first_nonfinite]

  def train_step(self, data):
    real_batches, real_labels, noise_batches, fake_labels = self._split_step_inputs(data)
    step_values = []
    for real, y_real, z, y_fake in zip(real_batches, real_labels, noise_batches[:-1],
                                       fake_labels[:-1]):
      step_values += self._track(self.discriminator_step(real, z, y_real, y_fake))
    step_values += self._track(self.generator_step(noise_batches[-1], fake_labels[-1]))
    self.first_nonfinite.update_state(self.g_optimizer.iterations, step_values)
    if self.ema:
      self.ema.update(self.generator, self.g_optimizer.iterations, noise_batches[-1],
                      fake_labels[-1])
    logs = self.get_metrics_result()
    if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
      # Keras 3's fit() reduces logs there with reduce(MEAN, axis=0), which needs an axis
      # (tensorflow/tensorflow#72388): give it one.
      logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
    return logs

  def discriminator_step(self, real, z, real_labels=None, fake_labels=None):
    """One D update on `real` `[B, H, H, C]` and G(z); returns per-replica metrics.

    Conditional: `real_labels` `[B]`, the reals' labels, and `fake_labels` `[B]`, those
    G(z) is made from; every row D scores carries its own image's label.
    """
    # Outside the tape: no gradient reaches G.
    fake = self._run_generator(self.generator, z, fake_labels, training=True)
    n = self.batch.rotated_per_angle if self.rotation_weight_d else 0
    real_and_rotated = rotation.with_rotations(real, n)
    row_labels = None
    if self.num_classes is not None:
      row_labels = tf.concat([labels_lib.with_rotations(real_labels, n), fake_labels], 0)
    with tf.GradientTape() as tape:
      # One D call on real, rotated real and fake images (D has no batch norm).
      out = self._discriminate(tf.concat([real_and_rotated, fake], 0), row_labels)
      num_real = tf.shape(real_and_rotated)[0]
      real_logits = out["logits"][:self.batch.per_replica_batch]
      fake_logits = out["logits"][num_real:]
      gan_loss = self.gan_loss.discriminator(real_logits, fake_logits)
      total = self._gan_term(gan_loss)
      metrics = {"loss/d": gan_loss}
      if n:
        rotation_logits = self._rotation_rows(out["rotation_logits"][:num_real], n)
        ce, accuracy = self._rotation_terms(rotation_logits, n)
        total += self.rotation_weight_d * self._global_mean(ce, self.batch.rotated_batch_size)
        metrics.update({"loss/d_rotation": ce, "accuracy/d_rotation_real": accuracy})
      scored = (self.discriminator if self.num_classes is None
                else _ScoredWithLabels(self.discriminator, real_labels))
      for penalty in self.penalties:
        with tf.name_scope("penalty"):
          values = penalty.fn(scored, real, fake, self.noise)
        total += penalty.weight * self._global_mean(values)
        metrics[penalty.name] = values
    self._apply(self.d_optimizer, tape, total, self.discriminator)
    return metrics

  def generator_step(self, z, fake_labels=None):
    """One G update from noise `z` `[B, z_dim]` (conditional: and labels `fake_labels`
    `[B]`); returns per-replica metrics."""
    n = self.batch.rotated_per_angle if self.rotation_weight_g else 0
    row_labels = None
    if self.num_classes is not None:
      # Each fake, rotated or not, is scored with the label that generated it. compare_gan's
      # conditional SS-GAN (gans/ssgan.py:154-157) gives the rotated fakes the REAL labels
      # (`sampled_y_rotated = tile(y[-n:])`), a bug; in its nets and ours it changes no
      # loss (the rotation head reads label-free features, the GAN loss upright rows only),
      # but any use of those rows' logits would see the wrong class.
      row_labels = labels_lib.with_rotations(fake_labels, n)
    with tf.GradientTape() as tape:
      fake = self._run_generator(self.generator, z, fake_labels, training=True)
      out = self._discriminate(rotation.with_rotations(fake, n), row_labels)
      gan_loss = self.gan_loss.generator(out["logits"][:self.batch.per_replica_batch])
      total = self._gan_term(gan_loss)
      metrics = {"loss/g": gan_loss}
      if n:
        ce, accuracy = self._rotation_terms(self._rotation_rows(out["rotation_logits"], n), n)
        total += self.rotation_weight_g * self._global_mean(ce, self.batch.rotated_batch_size)
        metrics.update({"loss/g_rotation": ce, "accuracy/d_rotation_fake": accuracy})
    self._apply(self.g_optimizer, tape, total, self.generator)
    return metrics

  # Helpers of train_step, in the order it uses them.

  def _split_step_inputs(self, data):
    """Per-replica element -> (disc_iters real batches, their label batches,
    disc_iters + 1 noise batches, their fake-label batches); the label batches are None
    for an unconditional model."""
    images, z = (data["images"], data.get("z")) if isinstance(data, dict) else (data, None)
    rotation.check_square(images)
    b = self.batch.per_replica_batch
    chunks = lambda x, count: [x[i * b:(i + 1) * b] for i in range(count)]
    if z is None:
      z = self.sample_z((self.disc_iters + 1) * b)
    if self.num_classes is None:
      return (chunks(images, self.disc_iters), [None] * self.disc_iters,
              chunks(z, self.disc_iters + 1), [None] * (self.disc_iters + 1))
    if not isinstance(data, dict) or "labels" not in data:
      raise errors.DataError("a conditional model trains on {'images', 'labels'} elements "
                             "(data.train_pipeline(..., with_labels=True)).")
    real_labels = tf.cast(data["labels"], tf.int32)
    fake_labels = data.get("fake_labels")
    if fake_labels is None:
      fake_labels = self.sample_labels((self.disc_iters + 1) * b)
    return (chunks(images, self.disc_iters), chunks(real_labels, self.disc_iters),
            chunks(z, self.disc_iters + 1),
            chunks(tf.cast(fake_labels, tf.int32), self.disc_iters + 1))

  def _discriminate(self, images, labels):
    """D in training mode on `images`; a conditional D scores each row with its label."""
    if labels is None:
      return self.discriminator(images, training=True)
    return self.discriminator(images, labels=labels, training=True)

  def _gan_term(self, per_example):
    """The GAN loss's part of a total: its global mean, or 0 in rotation_only mode."""
    if self.self_supervision == "rotation_only":
      return tf.zeros([])
    return self._global_mean(per_example)

  def _rotation_rows(self, logits, n):
    """The 4n rotation-loss rows of `[B + 3n, 4]` logits: the last n upright, then 3n."""
    return logits[self.batch.per_replica_batch - n:]

  def _rotation_terms(self, rotation_logits, n):
    labels = rotation.rotation_labels(n)
    return (losses.rotation_cross_entropy(labels, rotation_logits),
            losses.rotation_accuracy(labels, rotation_logits))

  def _global_mean(self, per_example, global_count=None):
    """Sum over this replica / the count over ALL replicas (global batch by default)."""
    return tf.nn.compute_average_loss(
        per_example, global_batch_size=global_count or self.batch.global_batch_size)

  @staticmethod
  def _apply(optimizer, tape, loss, network):
    variables = network.trainable_variables
    # ZERO, not None, for weights a loss does not reach (the rotation head when its
    # weight is 0): Adam then leaves them exactly unchanged. ZERO needs tf dtypes, which
    # the tf.Variables behind the Keras variables (`.value`) have.
    grads = tape.gradient(loss, [v.value for v in variables],
                          unconnected_gradients=tf.UnconnectedGradients.ZERO)
    optimizer.apply_gradients(zip(grads, variables))

  def _track(self, metrics):
    """Adds each metric's per-replica mean to its tracker; returns those means."""
    # Each replica records its own mean; the Mean trackers then average the replicas,
    # which is the global mean because every replica has the same batch size.
    means = []
    for name, per_example in metrics.items():
      means.append(tf.reduce_mean(per_example))
      self.trackers[name].update_state(means[-1])
    return means


class _ScoredWithLabels:
  """A conditional D as a penalty sees it: called on images alone (real, perturbed real or
  interpolated rows of the D step), it scores each with that step's real label, as
  compare_gan's penalties pass y (penalty_lib.py:33-88); anything else is D's."""

  def __init__(self, discriminator, labels):
    self._discriminator, self._labels = discriminator, labels

  def __call__(self, images, training=False):
    return self._discriminator(images, labels=self._labels, training=training)

  def __getattr__(self, name):
    return getattr(self._discriminator, name)


def _check_settings(batch, z_dim, rotation_weight_g, rotation_weight_d, disc_iters,
                    z_distribution, self_supervision, penalties):
  """One-line ConfigErrors, named after the gin bindings, for settings that cannot work."""
  errors.check_range("ssgan.z_dim", z_dim, minimum=1, integer=True)
  errors.check_range("ssgan.disc_iters", disc_iters, minimum=1, integer=True)
  errors.check_range("ssgan.rotation_weight_g", rotation_weight_g, minimum=0)
  errors.check_range("ssgan.rotation_weight_d", rotation_weight_d, minimum=0)
  if z_distribution not in Z_DISTRIBUTIONS:
    raise errors.ConfigError(f"unknown ssgan.z_distribution {z_distribution!r}; choose one "
                             f"of {list(Z_DISTRIBUTIONS)}.")
  if batch.rotated_batch_size == 0 and (rotation_weight_g or rotation_weight_d):
    raise errors.ConfigError(
        "ssgan.rotated_batch_size = 0 leaves no images for the rotation loss, but its "
        f"weights are alpha = {rotation_weight_g}, beta = {rotation_weight_d}; set both "
        "weights to 0 for the plain GAN, or rotated_batch_size > 0.")
  if self_supervision not in SELF_SUPERVISION:
    raise errors.ConfigError(f"unknown ssgan.self_supervision {self_supervision!r}; choose "
                             f"one of {list(SELF_SUPERVISION)}.")
  if self_supervision == "rotation_only" and not rotation_weight_d:
    raise errors.ConfigError("ssgan.self_supervision = 'rotation_only' trains D by the "
                             "rotation loss alone; set ssgan.rotation_weight_d > 0.")
  if self_supervision == "rotation_only" and penalties:
    # compare_gan computes the penalty and then multiplies it by 0 with the GAN loss.
    raise errors.ConfigError("a D penalty has no effect with ssgan.self_supervision = "
                             "'rotation_only' (its GAN losses are weighted 0); set "
                             "ssgan.penalty = None.")


def _check_divisible(global_batch_size, rotated_batch_size, num_replicas):
  """What the replicas and the rotations need of the batch sizes, every unmet need in one
  message naming the gin bindings and sizes that work (BatchSizes checks them unnamed)."""
  quantum = rotation.NUM_ROTATIONS * num_replicas

  def near(n, q):
    lower = n // q * q
    return " or ".join(str(m) for m in (lower, lower + q) if m > 0)

  if rotated_batch_size is None:
    if global_batch_size % quantum:
      alternative = (", or set ssgan.rotated_batch_size"
                     if global_batch_size % num_replicas == 0 else "")
      raise errors.ConfigError(
          f"ssgan.global_batch_size = {global_batch_size} must be a multiple of "
          f"{rotation.NUM_ROTATIONS} x {num_replicas} replica(s) = {quantum}: each replica "
          "rotates the last quarter of its batch (ssgan.rotated_batch_size = None); use "
          f"{near(global_batch_size, quantum)}{alternative}.")
    return
  problems = []
  if global_batch_size % num_replicas:
    problems.append(f"ssgan.global_batch_size = {global_batch_size} is not divisible by "
                    f"the {num_replicas} replicas (use {near(global_batch_size, num_replicas)})")
  if rotated_batch_size % quantum:
    problems.append(f"ssgan.rotated_batch_size = {rotated_batch_size} must be a multiple of "
                    f"{rotation.NUM_ROTATIONS} x {num_replicas} replica(s) = {quantum}, each "
                    "replica rotating n images by 0, 90, 180 and 270 degrees (use "
                    f"{near(rotated_batch_size, quantum)})")
  if problems:
    raise errors.ConfigError("; ".join(problems) + ".")


@gin.configurable("ssgan",
                  denylist=["image_shape", "num_replicas", "num_classes", "label_counts"])
def build_ssgan(image_shape, num_replicas, global_batch_size=64, gan_loss="non_saturating",
                rotation_weight_g=0.2, rotation_weight_d=1.0, disc_iters=1,
                rotated_batch_size=None, z_dim=128, z_distribution="normal", seed=0,
                self_supervision="rotation_gan", penalty=None,
                penalty_weight=penalties_lib.WEIGHT, ema_decay=None,
                ema_start_step=ema_lib.START_STEP,
                ema_statistics_every=ema_lib.STATISTICS_EVERY,
                num_classes=None, label_counts=None, label_distribution="train"):
  """Builds G, D and the SSGAN model; call inside `strategy.scope()`.

  Args:
    image_shape: `(H, H, C)` of the data.
    num_replicas: `strategy.num_replicas_in_sync`.
    num_classes: the data's classes (`ImageSource.num_classes`, None if unlabelled);
      used only by a conditional model (`networks.conditional = True`).
    label_counts: the training split's per-class counts, or a no-argument callable
      returning them (called only for a conditional model with label_distribution
      "train"), for the fakes' label distribution.
    global_batch_size: real images per D step over all replicas (one dataset element
      holds `disc_iters` of these batches).
    gan_loss: "non_saturating" (paper), "hinge", "wasserstein" or "least_squares".
    rotation_weight_g: alpha, weight of the rotation loss on fakes in G's loss (0.2).
    rotation_weight_d: beta, weight of the rotation loss on reals in D's loss (1.0).
    disc_iters: D updates per G update.
    rotated_batch_size: GLOBAL images per rotation loss; None = global_batch_size, so
      each replica rotates the last quarter of its batch.
    z_dim: noise length (also passed to `networks`).
    z_distribution: "normal" (N(0, 1)) or "uniform" (U[-1, 1], compare_gan's default).
    seed: seed of the noise generator.
    self_supervision: "rotation_gan" (SS-GAN) or "rotation_only" (D trained by beta *
      rotation CE alone, G by alpha * rotation CE of its fakes: compare_gan's
      representation baseline, ssgan.py:212-214).
    penalty: None, "wgan_gp", "dragan" or "l2" (penalties.py), added to D's loss as
      `penalty_weight` (lambda, >= 0; compare_gan's default 1) times its global mean,
      tracked as loss/penalty.
    ema_decay: None (no average), or the decay of an EMA of G's weights that sampling,
      evaluation and export then use (ema.py; compare_gan: 0.9999).
    ema_start_step: generator steps before the averaging starts (compare_gan: 40000).
    ema_statistics_every: generator steps between the average's batch-norm statistics
      passes (1: every step; ema.py).
    label_distribution: a conditional model's fake labels in training, sample grids and
      exports: "train" (i.i.d. from the training split's class frequencies,
      `label_counts`) or "uniform" (compare_gan's default; the same for balanced data
      such as CIFAR-10 and our MNIST, and no counting pass over the labels, which for
      ImageNet reads all 1.28M records). Evaluation draws its own (eval_lib: the mix
      of the real images compared with).
  """
  # Checked before the (slow) network construction, which would fail on them unreadably.
  errors.check_range("ssgan.global_batch_size", global_batch_size, minimum=1, integer=True)
  if rotated_batch_size is not None:
    errors.check_range("ssgan.rotated_batch_size", rotated_batch_size, minimum=0, integer=True)
  _check_divisible(global_batch_size, rotated_batch_size, num_replicas)
  if rotated_batch_size is None:
    rotated_batch_size = global_batch_size
  batch = BatchSizes(global_batch_size, num_replicas, rotated_batch_size)
  adversarial_loss = losses.adversarial_loss(gan_loss)
  chosen_penalty = penalties_lib.get_penalty(penalty, penalty_weight)
  penalties = [chosen_penalty] if chosen_penalty else []
  _check_settings(batch, z_dim, rotation_weight_g, rotation_weight_d, disc_iters,
                  z_distribution, self_supervision, penalties)
  errors.check_range("ssgan.seed", seed, integer=True)
  if ema_decay is not None:
    # 1 would keep the average at G's initial weights: every grid and export untrained.
    errors.check_range("ssgan.ema_decay", ema_decay, minimum=0, maximum=1,
                       exclusive_maximum=True)
    errors.check_range("ssgan.ema_start_step", ema_start_step, minimum=0, integer=True)
    errors.check_range("ssgan.ema_statistics_every", ema_statistics_every, minimum=1,
                       integer=True)
  else:
    errors.warn_if_no_effect("ssgan.ema_start_step", ema_start_step, ema_lib.START_STEP,
                            "ssgan.ema_decay")
    errors.warn_if_no_effect("ssgan.ema_statistics_every", ema_statistics_every,
                            ema_lib.STATISTICS_EVERY, "ssgan.ema_decay")
  if label_distribution not in LABEL_DISTRIBUTIONS:
    raise errors.ConfigError(f"unknown ssgan.label_distribution {label_distribution!r}; "
                             f"choose one of {list(LABEL_DISTRIBUTIONS)}.")

  def make_generator():
    return build_networks(image_shape, synchronized_bn=num_replicas > 1, z_dim=z_dim,
                          generator_only=True, num_classes=num_classes)[0]

  generator, discriminator = build_networks(
      image_shape, synchronized_bn=num_replicas > 1, z_dim=z_dim, num_classes=num_classes)
  counts = None
  if generator.num_classes is not None and label_distribution == "train":
    counts = label_counts() if callable(label_counts) else label_counts
    if counts is None:
      raise errors.ConfigError("ssgan.label_distribution = 'train' needs the training "
                               "split's label counts; none were given (or set 'uniform').")
  return SSGAN(generator, discriminator, batch=batch, z_dim=z_dim, gan_loss=adversarial_loss,
               rotation_weight_g=rotation_weight_g, rotation_weight_d=rotation_weight_d,
               disc_iters=disc_iters, z_distribution=z_distribution, seed=seed,
               self_supervision=self_supervision, penalties=penalties,
               ema_decay=ema_decay, ema_start_step=ema_start_step,
               ema_statistics_every=ema_statistics_every,
               make_generator=make_generator if ema_decay is not None else None,
               label_counts=counts)


@gin.configurable("optimizers", denylist=["total_steps", "disc_iters"])
def build_optimizers(total_steps=None, disc_iters=1, g_lr=2e-4, d_lr=None, beta_1=0.5,
                     beta_2=0.999, epsilon=1e-8, lr_decay="constant",
                     decay_start=lr_schedule.DECAY_START):
  """Adam for D and G; `d_lr=None` means `g_lr`.

  Defaults are compare_gan's resnet_cifar10 config; epsilon 1e-8 is tf.train.Adam's
  (Keras' default is 1e-7).

  Args:
    total_steps: generator steps of the whole run (a decay's length), or None when the
      optimizers will only be restored from a checkpoint.
    disc_iters: D updates per generator step.
    lr_decay: "constant", or "linear": both rates fall linearly to 0 over the last
      `1 - decay_start` of the run (lr_schedule.py; with decay_start 0, SN-GAN's and
      torch-mimicry's `lr_decay='linear'`; compare_gan keeps the rates constant).
    decay_start: fraction of the run at the full rates, in [0, 1).

  Returns:
    `(d_optimizer, g_optimizer)`; create them inside the strategy scope.
  """
  errors.check_range("optimizers.g_lr", g_lr, minimum=0, exclusive_minimum=True)
  if d_lr is not None:
    errors.check_range("optimizers.d_lr", d_lr, minimum=0, exclusive_minimum=True)
  for name, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
    # 1 stops Adam: beta_1 = 1 divides by 1 - beta_1^t = 0 (NaN weights), beta_2 = 1
    # never moves the weights.
    errors.check_range(f"optimizers.{name}", beta, minimum=0, maximum=1,
                       exclusive_maximum=True)
  errors.check_range("optimizers.epsilon", epsilon, minimum=0, exclusive_minimum=True)

  def rate(initial, updates_per_step):
    total = None if total_steps is None else total_steps * updates_per_step
    return lr_schedule.learning_rate(initial, lr_decay, decay_start, total)

  d_opt = keras.optimizers.Adam(rate(g_lr if d_lr is None else d_lr, disc_iters), beta_1,
                                beta_2, epsilon, name="d_adam")
  g_opt = keras.optimizers.Adam(rate(g_lr, 1), beta_1, beta_2, epsilon, name="g_adam")
  if lr_decay == "constant":  # After `rate` refused a decay_start out of range.
    errors.warn_if_no_effect("optimizers.decay_start", decay_start, lr_schedule.DECAY_START,
                            "optimizers.lr_decay = 'linear'")
  return d_opt, g_opt


def build_model(strategy, image_shape, total_steps=None, jit_compile=False, num_classes=None,
                label_counts=None):
  """The compiled SSGAN (gin: `ssgan.*`, `networks.*`, `optimizers.*`), its variables and
  optimizers created in `strategy`'s scope. `total_steps`: generator steps of the run to
  train (a learning-rate decay's length); None for a model that only restores a
  checkpoint. `num_classes`, `label_counts`: the data's labels, for a conditional model
  (`build_ssgan`)."""
  with strategy.scope():
    model = build_ssgan(image_shape, strategy.num_replicas_in_sync, num_classes=num_classes,
                        label_counts=label_counts)
    d_optimizer, g_optimizer = build_optimizers(total_steps, model.disc_iters)
    model.compile(d_optimizer=d_optimizer, g_optimizer=g_optimizer, jit_compile=jit_compile)
  return model

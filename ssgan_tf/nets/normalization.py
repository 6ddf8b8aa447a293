"""Normalisation layers of G, chosen by name: plain, self-modulated and conditional BN.

Every normaliser has one call signature, `norm(x, z=None, y=None, training=...)`, and
reads only what it needs (compare_gan's `call_with_accepted_args` over `batch_norm_fn`):

  "batch_norm"      BN with learned per-channel gamma, beta; ignores z and y.
  "self_modulated"  BN without learned gamma, beta; per-example gamma(z), beta(z) from a
                    small MLP (Chen et al., ICLR 2019; compare_gan
                    `arch_ops.self_modulated_batch_norm`, arch_ops.py:370-420).
  "conditional"     BN with per-example gamma(y), beta(y), linear in y (compare_gan
                    `arch_ops.conditional_batch_norm`, arch_ops.py:423-445). G gets it
                    in place of "batch_norm" with `networks.conditional = True` (the
                    Cond-GAN baseline); y is what the architecture conditions on (the
                    one-hot label, or a z chunk concatenated with an embedded label).
  "none"            the identity (compare_gan `no_batch_norm`).

x is `[B, C]` or `[B, H, W, C]`; z `[B, z_dim]`; y `[B, num_classes]` one-hot (float) or
`[B]` int labels. The statistics are the batch's, over all axes but the last, and with
`synchronized=True` over the batches of all replicas (compare_gan's cross-replica
moments on TPU); eval mode uses the moving averages (momentum 0.9, eps 1e-5, compare_gan's
example configs; its library defaults are decay 0.999, eps 1e-3). A new normaliser is one
class and one entry in `NORMALIZERS`.
"""

import keras
import tensorflow as tf

from ssgan_tf import errors
from ssgan_tf.nets import spectral_norm as sn


class BatchNormalization(keras.layers.BatchNormalization):
  """Plain BN, `keras.layers.BatchNormalization` (same variables, names and numbers) with
  the normalisers' call signature."""

  def call(self, inputs, z=None, y=None, training=None):
    del z, y
    return super().call(inputs, training=training)


class NoNormalization(keras.layers.Layer):
  """The identity, with the normalisers' call signature."""

  def call(self, inputs, z=None, y=None, training=None):
    del z, y, training
    return inputs


def _per_channel(values, inputs):
  """`[B, C]` -> broadcastable against `inputs` `[B, ..., C]`."""
  shape = [-1] + [1] * (len(inputs.shape) - 2) + [values.shape[-1]]
  return tf.reshape(tf.cast(values, inputs.dtype), shape)


class SelfModulatedBatchNorm(keras.layers.Layer):
  """BN whose scale and offset are functions of z: `BN(x) * gamma(z) + beta(z)`.

  The MLP as in compare_gan (arch_ops.py:401-420): `h = relu(dense_hidden(z))` (omitted
  when `hidden_units=0`, then h = z), `gamma = dense(h)` with bias initialised to 1 (so
  the scale starts at 1 + O(0.02); compare_gan writes gamma itself, not 1 + f(z)),
  `beta = dense(h)` with bias 0; kernels N(0, 0.02). Variables: hidden
  `(z_dim + 1) * hidden_units`, gamma and beta `(hidden_units + 1) * C` each;
  the standardisation has only the (non-trainable) moving statistics.

  `spectral_norm`: spectrally normalise the three dense layers (compare_gan passes G's
  `spectral_norm` as `use_sn`).
  """

  def __init__(self, momentum=0.9, epsilon=1e-5, synchronized=False, hidden_units=32,
               spectral_norm=False, **kwargs):
    super().__init__(**kwargs)
    self.standardize = keras.layers.BatchNormalization(
        momentum=momentum, epsilon=epsilon, center=False, scale=False,
        synchronized=synchronized)
    self.hidden_units, self.spectral_norm = hidden_units, spectral_norm
    self.hidden = (sn.dense(hidden_units, spectral_norm, name="hidden")
                   if hidden_units > 0 else None)

  def build(self, input_shape):
    channels = input_shape[-1]
    self.gamma = sn.dense(channels, self.spectral_norm, name="gamma",
                          bias_initializer=keras.initializers.Constant(1.0))
    self.beta = sn.dense(channels, self.spectral_norm, name="beta")

  def call(self, inputs, z=None, y=None, training=None):
    del y
    if z is None:
      raise ValueError("self-modulated batch norm needs z.")
    h = z
    if self.hidden is not None:
      h = tf.nn.relu(self.hidden(h, training=training))
    outputs = self.standardize(inputs, training=training)
    gamma = self.gamma(h, training=training)
    beta = self.beta(h, training=training)
    return outputs * _per_channel(gamma, outputs) + _per_channel(beta, outputs)


class ConditionalBatchNorm(keras.layers.Layer):
  """BN whose scale and offset are linear in y: `BN(x) * (y W_g) + y W_b`.

  As compare_gan (arch_ops.py:423-445): no biases by default (`use_bias=False`), kernels
  N(0, 0.02), so the scale starts near 0, not 1 (BigGAN's own code uses 1 + f(y); compare_gan
  does not). `[K, C]` each for gamma and beta. y: one-hot `[B, K]` (any float
  conditioning, e.g. compare_gan's concatenation of a z chunk and an embedded label) or
  int labels `[B]` (one-hot encoded with `num_classes`).
  """

  def __init__(self, momentum=0.9, epsilon=1e-5, synchronized=False, num_classes=None,
               use_bias=False, spectral_norm=False, **kwargs):
    super().__init__(**kwargs)
    self.standardize = keras.layers.BatchNormalization(
        momentum=momentum, epsilon=epsilon, center=False, scale=False,
        synchronized=synchronized)
    self.num_classes, self.use_bias, self.spectral_norm = num_classes, use_bias, spectral_norm

  def build(self, input_shape):
    channels = input_shape[-1]
    self.gamma = sn.dense(channels, self.spectral_norm, name="gamma", use_bias=self.use_bias)
    self.beta = sn.dense(channels, self.spectral_norm, name="beta", use_bias=self.use_bias)

  def call(self, inputs, z=None, y=None, training=None):
    del z
    if y is None:
      raise ValueError("conditional batch norm needs y.")
    if y.dtype.is_integer:
      if self.num_classes is None:
        raise ValueError("int labels need num_classes.")
      y = tf.one_hot(y, self.num_classes, dtype=self.compute_dtype)
    outputs = self.standardize(inputs, training=training)
    gamma = self.gamma(y, training=training)
    beta = self.beta(y, training=training)
    return outputs * _per_channel(gamma, outputs) + _per_channel(beta, outputs)


class Options:
  """What the normalisers of one network share; each entry of NORMALIZERS reads it."""

  def __init__(self, synchronized=False, momentum=0.9, epsilon=1e-5, sbn_hidden_units=32,
               spectral_norm=False, num_classes=None):
    self.synchronized, self.momentum, self.epsilon = synchronized, momentum, epsilon
    self.sbn_hidden_units, self.spectral_norm = sbn_hidden_units, spectral_norm
    self.num_classes = num_classes

  def bn(self, **kwargs):
    return dict(momentum=self.momentum, epsilon=self.epsilon,
                synchronized=self.synchronized, **kwargs)


# name -> (Options -> new layer, what the layer reads besides x).
NORMALIZERS = {
    "batch_norm": (lambda o: BatchNormalization(**o.bn()), ()),
    "self_modulated": (lambda o: SelfModulatedBatchNorm(
        **o.bn(hidden_units=o.sbn_hidden_units, spectral_norm=o.spectral_norm)), ("z",)),
    "conditional": (lambda o: ConditionalBatchNorm(
        **o.bn(num_classes=o.num_classes, spectral_norm=o.spectral_norm)), ("y",)),
    "none": (lambda o: NoNormalization(), ()),
}

# Normalisers `networks.generator_normalization` selects; "conditional" comes with
# `networks.conditional = True` instead, which also gives D its projection.
GENERATOR_NORMALIZERS = tuple(name for name, (_, reads) in NORMALIZERS.items()
                              if "y" not in reads)


def generator_factory(name, synchronized=False, momentum=0.9, epsilon=1e-5,
                      sbn_hidden_units=32, spectral_norm=False, num_classes=None):
  """A zero-argument callable making a new normaliser of G, a fresh layer each call.

  Args:
    name: one of GENERATOR_NORMALIZERS (`networks.generator_normalization`), or
      "conditional" (G of a conditional model; needs `num_classes`).
    synchronized: statistics over all replicas' batches.
    momentum, epsilon: of the moving statistics and the standardisation.
    sbn_hidden_units: hidden width of the self-modulation MLP (0: linear in z).
    spectral_norm: spectral norm on the self-modulation MLP and the conditional BN's
      linear maps (G's spectral norm, compare_gan's `use_sn`).
    num_classes: classes of a conditional G (what its int labels one-hot encode to).
  """
  if name == "conditional" and num_classes is None:
    raise errors.ConfigError(
        "networks.generator_normalization 'conditional' needs class labels: set "
        "networks.conditional = True (with a labelled dataset) instead.")
  if name not in NORMALIZERS:
    raise errors.ConfigError(f"unknown networks.generator_normalization {name!r}; "
                             f"choose one of {list(GENERATOR_NORMALIZERS)}.")
  errors.check_range("sbn_hidden_units", sbn_hidden_units, minimum=0, integer=True)
  options = Options(synchronized, momentum, epsilon, sbn_hidden_units, spectral_norm,
                    num_classes)
  make = NORMALIZERS[name][0]
  return lambda: make(options)


def reads_z(name):
  """Whether normaliser `name` is conditioned on z."""
  return "z" in NORMALIZERS[name][1]


def reads_labels(name):
  """Whether normaliser `name` is conditioned on class labels (y)."""
  return "y" in NORMALIZERS[name][1]


def one_hot_labels(labels, num_classes, dtype=tf.float32):
  """A G's class conditioning: int labels `[B]` in 0..num_classes-1 -> one-hot `[B, K]`
  of `dtype` (compare_gan's `_get_one_hot_labels`). An unconditional G
  (`num_classes` None) takes no labels and conditions on nothing (None).

  Raises:
    ValueError: labels missing for a conditional G, or given to an unconditional one.
  """
  if num_classes is None:
    if labels is not None:
      raise ValueError("this generator is unconditional; it takes no labels.")
    return None
  if labels is None:
    raise ValueError(f"this generator is conditional ({num_classes} classes); pass "
                     "labels [B] int.")
  return tf.one_hot(labels, num_classes, dtype=dtype)

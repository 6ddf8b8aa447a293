"""Spectrally normalized Dense and Conv2D layers, as in Miyato et al. and compare_gan.

The forward pass uses W / sigma(W), where sigma is estimated by power iteration with a
persistent, non-trainable vector `u` (compare_gan's "left" singular vector: one entry per
row of the kernel reshaped to `[fan_in, units]`). Each `training=True` call runs one
power iteration and stores the new `u`; `u` and `v` are held under `stop_gradient`, so
the gradient flows through W both in the numerator and in sigma = u^T W v.

`keras.layers.SpectralNormalization` is a different algorithm: it overwrites the kernel
variable with W / sigma, so no gradient flows through sigma and Adam updates the
re-projected weights. That is why these layers exist.

Under mixed precision the kernel and `u` stay float32 (`autocast=False`) and the power
iteration runs in float32; only the normalized kernel is cast to the compute dtype.
"""

import keras
import tensorflow as tf

def default_initializer():
  """compare_gan's weight initializer (arch_ops.weight_initializer): N(0, 0.02^2)."""
  return keras.initializers.RandomNormal(stddev=0.02)


def normalize_by_spectral_norm(kernel, u, epsilon=1e-12):
  """Returns `(kernel / sigma, new_u)` after one power iteration.

  Args:
    kernel: float32 weight, `[..., units]`; flattened to `w` of shape `[fan_in, units]`.
    u: float32 `[fan_in, 1]`, the current estimate of the first left singular vector.
    epsilon: for the L2 normalisations (compare_gan: 1e-12).

  Returns:
    The normalized kernel (same shape as `kernel`) and the updated `u`, `[fan_in, 1]`.
    sigma = u^T w v is differentiable in `w`; `u` and `v` are constants for autodiff.
  """
  w = tf.reshape(kernel, [-1, kernel.shape[-1]])
  v = tf.math.l2_normalize(tf.matmul(w, u, transpose_a=True), axis=None, epsilon=epsilon)
  u = tf.math.l2_normalize(tf.matmul(w, v), axis=None, epsilon=epsilon)
  u, v = tf.stop_gradient(u), tf.stop_gradient(v)
  sigma = tf.matmul(tf.matmul(u, w, transpose_a=True), v)  # [1, 1]
  return tf.reshape(w / sigma, kernel.shape), u


class _SpectralNorm(keras.layers.Layer):
  """Shared weights and normalization of SNDense and SNConv2D."""

  def _add_kernel_and_u(self, kernel_shape, kernel_initializer, bias_units,
                        bias_initializer="zeros"):
    """Kernel, u and (unless `bias_units` is None) the bias."""
    self.kernel = self.add_weight(
        name="kernel", shape=kernel_shape, initializer=kernel_initializer, autocast=False)
    fan_in = 1
    for d in kernel_shape[:-1]:
      fan_in *= d
    self.u = self.add_weight(
        name="u", shape=(fan_in, 1), initializer=keras.initializers.RandomNormal(),
        trainable=False, autocast=False)
    self.bias = None
    if bias_units is not None:
      self.bias = self.add_weight(name="bias", shape=(bias_units,), initializer=bias_initializer)

  def _add_bias(self, outputs):
    return outputs if self.bias is None else tf.nn.bias_add(outputs, self.bias)

  def normalized_kernel(self, training):
    """`kernel / sigma(kernel)` in the compute dtype; stores the new `u` when training."""
    kernel, u = normalize_by_spectral_norm(
        tf.convert_to_tensor(self.kernel), tf.convert_to_tensor(self.u))
    if training:
      self.u.assign(u)
    return tf.cast(kernel, self.compute_dtype)


class SNDense(_SpectralNorm):
  """Spectrally normalized dense layer: `[B, fan_in] -> [B, units]`."""

  def __init__(self, units, kernel_initializer=None, use_bias=True, bias_initializer="zeros",
               **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.kernel_initializer = kernel_initializer or default_initializer()
    self.use_bias, self.bias_initializer = use_bias, bias_initializer

  def build(self, input_shape):
    self._add_kernel_and_u((input_shape[-1], self.units), self.kernel_initializer,
                           self.units if self.use_bias else None, self.bias_initializer)

  def call(self, inputs, training=False):
    outputs = tf.matmul(inputs, self.normalized_kernel(training))
    return outputs if self.bias is None else outputs + self.bias


class SNConv2D(_SpectralNorm):
  """Spectrally normalized 2-D convolution, NHWC, "SAME" padding."""

  def __init__(self, filters, kernel_size, strides=1, kernel_initializer=None, use_bias=True,
               **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.kernel_size = kernel_size
    self.strides = strides
    self.kernel_initializer = kernel_initializer or default_initializer()
    self.use_bias = use_bias

  def build(self, input_shape):
    shape = (self.kernel_size, self.kernel_size, input_shape[-1], self.filters)
    self._add_kernel_and_u(shape, self.kernel_initializer,
                           self.filters if self.use_bias else None)

  def call(self, inputs, training=False):
    outputs = tf.nn.conv2d(
        inputs, self.normalized_kernel(training), self.strides, padding="SAME")
    return self._add_bias(outputs)


def dense(units, spectral_norm, name=None, use_bias=True, bias_initializer="zeros",
          kernel_initializer=None):
  """A Dense layer, spectrally normalized iff `spectral_norm`; compare_gan's init unless
  `kernel_initializer` is given."""
  kernel_initializer = kernel_initializer or default_initializer()
  if spectral_norm:
    return SNDense(units, name=name, use_bias=use_bias, bias_initializer=bias_initializer,
                   kernel_initializer=kernel_initializer)
  return keras.layers.Dense(units, kernel_initializer=kernel_initializer, name=name,
                            use_bias=use_bias, bias_initializer=bias_initializer)


def conv2d(filters, kernel_size, strides=1, spectral_norm=False, name=None, use_bias=True):
  """A "same"-padded Conv2D, spectrally normalized iff `spectral_norm`."""
  if spectral_norm:
    return SNConv2D(filters, kernel_size, strides, name=name, use_bias=use_bias)
  return keras.layers.Conv2D(filters, kernel_size, strides, padding="same",
                             kernel_initializer=default_initializer(), name=name,
                             use_bias=use_bias)

"""Building blocks shared by the ResNet architectures: 2x resampling and residual blocks.

Shapes are NHWC. Up-blocks belong to generators (a normaliser from
`nets/normalization.py`, nearest-neighbour upsampling); down-blocks to discriminators (no
normalisation besides spectral norm, 2x2 average pooling), in SNGAN's pre-activation form.
"""

import keras
import tensorflow as tf

from ssgan_tf.nets import spectral_norm as sn


@tf.custom_gradient
def upsample2x(x):
  """Nearest-neighbour 2x upsampling of `[B, H, W, C]`, as a broadcast.

  The gradient sums each 2x2 block of the upstream gradient. Autodiff of the broadcast
  would do it with a reduce_sum over two strided axes, ~10x slower on CPU than 4 x a 2x2
  average pool (oneDNN); the values agree (x4 and /4 are exact).
  """
  b, h, w, c = tf.unstack(tf.shape(x))
  y = tf.broadcast_to(tf.reshape(x, [b, h, 1, w, 1, c]), [b, h, 2, w, 2, c])

  def grad(dy):
    return 4.0 * tf.nn.avg_pool2d(dy, 2, 2, "VALID")

  return tf.reshape(y, [b, 2 * h, 2 * w, c]), grad


def avg_pool2x(x):
  return tf.nn.avg_pool2d(x, 2, 2, "VALID")


class GeneratorBlock(keras.layers.Layer):
  """Pre-activation up-block: `[B, H, H, C] -> [B, 2H, 2H, C']`.

  `normalization`: a zero-argument factory of normalisers (`normalization.generator_factory`);
  `z` `[B, z_dim]` reaches both, for those conditioned on it.
  """

  def __init__(self, filters, normalization, **kwargs):
    super().__init__(**kwargs)
    self.bn1, self.bn2 = normalization(), normalization()
    self.conv1 = sn.conv2d(filters, 3)
    self.conv2 = sn.conv2d(filters, 3)
    self.shortcut = sn.conv2d(filters, 1)

  def call(self, x, z=None, training=False):
    h = upsample2x(tf.nn.relu(self.bn1(x, z=z, training=training)))
    h = tf.nn.relu(self.bn2(self.conv1(h), z=z, training=training))
    return self.conv2(h) + self.shortcut(upsample2x(x))


class DiscriminatorBlock(keras.layers.Layer):
  """Pre-activation block, optionally halving the resolution.

  `first=True` is SNGAN's "optimized" input block: no ReLU on the image.
  """

  def __init__(self, filters, downsample, first, spectral_norm, **kwargs):
    super().__init__(**kwargs)
    self.downsample, self.first = downsample, first
    self.conv1 = sn.conv2d(filters, 3, spectral_norm=spectral_norm)
    self.conv2 = sn.conv2d(filters, 3, spectral_norm=spectral_norm)
    # SNGAN's learnable 1x1 shortcut where the shape changes; the blocks keep their
    # input's width, so only down-blocks change it.
    self.shortcut = sn.conv2d(filters, 1, spectral_norm=spectral_norm) if downsample else None

  def call(self, x, training=False):
    h = x if self.first else tf.nn.relu(x)
    h = self.conv2(tf.nn.relu(self.conv1(h, training=training)), training=training)
    if not self.downsample:
      return h + x
    # A 1x1 conv commutes with 2x2 average pooling, so the shortcut pools first (4x
    # fewer FLOPs than SNGAN's conv-then-pool in the non-first blocks; same function).
    return avg_pool2x(h) + self.shortcut(avg_pool2x(x), training=training)

"""ResNet-CIFAR (SNGAN, Miyato et al. 2018, Table 4), 32x32.

G: z -> 4x4x256 -> 3 up-blocks of 256 channels (BN, ReLU, nearest 2x upsampling, 3x3
conv, BN, ReLU, 3x3 conv; shortcut: upsampling + 1x1 conv) -> BN, ReLU, 3x3 conv, tanh.
D: an "optimized" first down-block, a down-block, two plain blocks, all 128 channels
(ReLU before each conv, 2x2 average pooling, 1x1 shortcut conv only where the shape
changes), then ReLU and global sum pooling -> 128 features.

This is the network of the SNGAN paper and of torch-mimicry's SSGAN32 (the same
parameter counts: G 4,276,739, D 1,054,341 with the rotation head). compare_gan's
`resnet_cifar` differs in ways that change parameters and compute: a 3x3 shortcut conv in
every block, zero-insertion unpooling, and mean instead of sum pooling.
"""

import keras
import tensorflow as tf

from ssgan_tf.nets import spectral_norm as sn

RESOLUTION = 32


def check_resolution(resolution):
  if resolution != RESOLUTION:
    raise ValueError(
        f"resnet_cifar is a {RESOLUTION}x{RESOLUTION} architecture; got resolution "
        f"{resolution}. Resize the data to {RESOLUTION} or choose architecture 'sndcgan'.")


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
  """Pre-activation up-block: `[B, H, H, C] -> [B, 2H, 2H, C']`."""

  def __init__(self, filters, bn_momentum, bn_epsilon, synchronized_bn, **kwargs):
    super().__init__(**kwargs)
    bn = lambda: keras.layers.BatchNormalization(
        momentum=bn_momentum, epsilon=bn_epsilon, synchronized=synchronized_bn)
    self.bn1, self.bn2 = bn(), bn()
    self.conv1 = sn.conv2d(filters, 3)
    self.conv2 = sn.conv2d(filters, 3)
    self.shortcut = sn.conv2d(filters, 1)

  def call(self, x, training=False):
    h = upsample2x(tf.nn.relu(self.bn1(x, training=training)))
    h = tf.nn.relu(self.bn2(self.conv1(h), training=training))
    return self.conv2(h) + self.shortcut(upsample2x(x))


class Generator(keras.Model):
  """`z [B, z_dim]` -> images `[B, 32, 32, C]` float32 in [-1, 1]."""

  def __init__(self, resolution, channels, g_channels=256, bn_momentum=0.9, bn_epsilon=1e-5,
               synchronized_bn=False, **kwargs):
    super().__init__(**kwargs)
    check_resolution(resolution)
    self.g_channels = g_channels
    self.fc = sn.dense(4 * 4 * g_channels, spectral_norm=False)
    self.blocks = [GeneratorBlock(g_channels, bn_momentum, bn_epsilon, synchronized_bn)
                   for _ in range(3)]
    self.final_bn = keras.layers.BatchNormalization(
        momentum=bn_momentum, epsilon=bn_epsilon, synchronized=synchronized_bn)
    self.to_image = sn.conv2d(channels, 3)

  def call(self, z, training=False):
    x = tf.reshape(self.fc(z), [-1, 4, 4, self.g_channels])
    for block in self.blocks:
      x = block(x, training=training)
    x = tf.nn.relu(self.final_bn(x, training=training))
    return tf.cast(tf.tanh(self.to_image(x)), tf.float32)


class DiscriminatorBlock(keras.layers.Layer):
  """Pre-activation block, optionally halving the resolution.

  `first=True` is SNGAN's "optimized" input block: no ReLU on the image.
  """

  def __init__(self, filters, downsample, first, spectral_norm, **kwargs):
    super().__init__(**kwargs)
    self.downsample, self.first = downsample, first
    self.conv1 = sn.conv2d(filters, 3, spectral_norm=spectral_norm)
    self.conv2 = sn.conv2d(filters, 3, spectral_norm=spectral_norm)
    # SNGAN's learnable 1x1 shortcut where the shape changes; in this D only the
    # down-blocks change it (every block has the same width).
    self.shortcut = sn.conv2d(filters, 1, spectral_norm=spectral_norm) if downsample else None

  def call(self, x, training=False):
    h = x if self.first else tf.nn.relu(x)
    h = self.conv2(tf.nn.relu(self.conv1(h, training=training)), training=training)
    if not self.downsample:
      return h + x
    # A 1x1 conv commutes with 2x2 average pooling, so the shortcut pools first (4x
    # fewer FLOPs than SNGAN's conv-then-pool in the non-first blocks; same function).
    return avg_pool2x(h) + self.shortcut(avg_pool2x(x), training=training)


class DiscriminatorTrunk(keras.layers.Layer):
  """images `[B, 32, 32, C]` in [-1, 1] -> features `[B, d_channels]` (sum-pooled)."""

  def __init__(self, d_channels=128, spectral_norm=True, **kwargs):
    super().__init__(**kwargs)
    self.blocks = [
        DiscriminatorBlock(d_channels, downsample=True, first=True, spectral_norm=spectral_norm),
        DiscriminatorBlock(d_channels, downsample=True, first=False, spectral_norm=spectral_norm),
        DiscriminatorBlock(d_channels, downsample=False, first=False, spectral_norm=spectral_norm),
        DiscriminatorBlock(d_channels, downsample=False, first=False, spectral_norm=spectral_norm),
    ]

  def call(self, images, training=False):
    x = images
    for block in self.blocks:
      x = block(x, training=training)
    return tf.reduce_sum(tf.nn.relu(x), axis=[1, 2])

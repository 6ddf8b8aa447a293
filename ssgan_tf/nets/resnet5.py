"""compare_gan's `resnet5` (`architectures/resnet5.py`; Gulrajani et al. 2017's ResNet),
128x128, also any power of two from 4 to 128.

G: z -> dense 4x4x(ch*m0) -> 5 compare_gan blocks `ch*m_i -> ch*m_{i+1}`, up-sampling
  while the resolution is below the target ("none" after), with G multipliers
  m = (8, 8, 4, 4, 2, 1) -> final norm, ReLU, 3x3 conv -> sigmoid.
D: block B0 `C -> ch` down, then 5 blocks `ch*m_i -> ch*m_{i+1}`, all down, with D
  multipliers m = (1, 2, 4, 4, 8, 8) (6 halvings: 128 -> 2) -> ReLU, global MEAN pooling ->
  `ch*m_5` = 512 features. Blocks as in `resnet_cifar_compare_gan` (zero-insertion
  unpooling, 3x3 conv shortcuts in every block, conv then "SAME" 2x2 average pooling,
  ReLU on the first block's input).
Every G normaliser reads the whole z (compare_gan has no hierarchical z here).
Pixel ranges as `resnet_cifar_compare_gan`: D maps [-1, 1] -> [0, 1]; G returns
`tanh(x / 2)` = `2 sigmoid(x) - 1`.

Parameters equal compare_gan's (unconditional) plus the rotation head `[512 -> 4]` of
SS-GAN (`gans/ssgan.py:97-101`).
"""

import math

import keras
import tensorflow as tf

from ssgan_tf import errors
from ssgan_tf.nets import normalization as norms
from ssgan_tf.nets import resnet_ops
from ssgan_tf.nets import spectral_norm as sn
from ssgan_tf.nets.resnet_ops import CompareGanBlock

# The resolution the paper or compare_gan runs it at (tools/benchmark.py --architectures).
PAPER_RESOLUTION = 128
# The smallest widths it builds with, (generator_kwargs, discriminator_kwargs): the
# tests' networks and tools/benchmark.py --tiny_widths.
TINY_KWARGS = ({"ch": 1}, {"ch": 1})

G_MULTIPLIERS = (8, 8, 4, 4, 2, 1)
D_MULTIPLIERS = (1, 2, 4, 4, 8, 8)


def check_resolution(resolution):
  # compare_gan: G needs log2(resolution / 4) in 0..5, D a power of two.
  if resolution < 4 or resolution > 128 or resolution & (resolution - 1):
    raise errors.ConfigError(
        f"resnet5 needs a power-of-two resolution from 4 to 128; got {resolution}.")


def _check_multipliers(multipliers):
  if len(multipliers) != 6 or not all(isinstance(m, int) and m > 0 for m in multipliers):
    raise errors.ConfigError(
        f"resnet5 channel_multipliers must be 6 positive ints; got {multipliers!r}.")
  return tuple(multipliers)


class Generator(keras.Model):
  """`z [B, z_dim]` -> images `[B, R, R, C]` float32 in [-1, 1].

  Conditional (`num_classes`, from `networks.conditional`): every normaliser, the final
  one included, is class-conditional BN on the one-hot label (compare_gan passes y to
  them all); `call` then takes `labels` `[B]` int.
  """

  def __init__(self, resolution, channels, ch=64, channel_multipliers=G_MULTIPLIERS,
               normalization="batch_norm", sbn_hidden_units=32, bn_momentum=0.9,
               bn_epsilon=1e-5, synchronized_bn=False, num_classes=None, **kwargs):
    super().__init__(**kwargs)
    check_resolution(resolution)
    m = _check_multipliers(channel_multipliers)
    self.seed_channels = ch * m[0]
    up_blocks = int(math.log2(resolution // 4))
    norm = norms.generator_factory(normalization, synchronized_bn, bn_momentum, bn_epsilon,
                                   sbn_hidden_units, num_classes=num_classes)
    self.num_classes = num_classes if norms.reads_labels(normalization) else None
    self.fc = sn.dense(4 * 4 * self.seed_channels, spectral_norm=False)
    self.blocks = [CompareGanBlock(ch * m[i + 1], "up" if i < up_blocks else "none", norm)
                   for i in range(5)]
    self.final_norm = norm()
    self.to_image = sn.conv2d(channels, 3)

  def call(self, z, labels=None, training=False):
    y = norms.one_hot_labels(labels, self.num_classes)
    x = tf.reshape(self.fc(z), [-1, 4, 4, self.seed_channels])
    for block in self.blocks:
      x = block(x, z=z, y=y, training=training)
    x = tf.nn.relu(self.final_norm(x, z=z, y=y, training=training))
    return tf.cast(resnet_ops.sigmoid_to_symmetric(self.to_image(x)), tf.float32)


class DiscriminatorTrunk(keras.layers.Layer):
  """images `[B, R, R, C]` in [-1, 1] -> features `[B, ch * m_5]` (mean-pooled)."""

  def __init__(self, ch=64, channel_multipliers=D_MULTIPLIERS, spectral_norm=True, **kwargs):
    super().__init__(**kwargs)
    m = _check_multipliers(channel_multipliers)
    if m[0] != 1:  # compare_gan's B0 outputs ch channels, which B1 reads as ch * m_0.
      raise errors.ConfigError(f"resnet5 D channel_multipliers must start with 1; got {m!r}.")
    widths = [ch] + [ch * m[i + 1] for i in range(5)]
    self.blocks = [CompareGanBlock(w, "down", spectral_norm=spectral_norm) for w in widths]

  def call(self, images, training=False):
    x = self.block_outputs(images, training)[-1]
    return tf.reduce_mean(tf.nn.relu(x), axis=[1, 2])

  def block_outputs(self, images, training=False):
    """The output of each of the 6 blocks, `[B, R / 2^i, R / 2^i, c_i]` (i = 1..6; at
    least 1 pixel)."""
    return resnet_ops.block_outputs(self.blocks, resnet_ops.images_to_unit_interval(images), training)

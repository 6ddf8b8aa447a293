"""compare_gan's `resnet_stl` (`architectures/resnet_stl.py`; SNGAN Table 5), 48x48.

G: z -> dense 6x6x(8 ch) -> 3 up-blocks `8ch -> 4ch -> 2ch -> ch` -> final norm, ReLU,
  3x3 conv -> sigmoid.
D: B0 `C -> ch` down, B1..B4 `ch -> 2ch -> 4ch -> 8ch -> 16ch` (down, down, down, none;
  48 -> 24 -> 12 -> 6 -> 3 -> 3) -> ReLU, global MEAN pooling -> 16 ch = 1024 features.
Blocks as in `resnet_cifar_compare_gan` (zero-insertion unpooling, a 3x3 conv shortcut in
every block, conv then 2x2 average pooling, ReLU on the first block's input).
Every G normaliser reads the whole z. Pixel ranges: D maps [-1, 1] -> [0, 1]; G returns
`tanh(x / 2)` = `2 sigmoid(x) - 1`.

compare_gan fixes ch = 64; here it is an argument with that default. Parameters equal
compare_gan's (unconditional) plus the rotation head `[1024 -> 4]` of SS-GAN.
"""

import keras
import tensorflow as tf

from ssgan_tf.nets import normalization as norms
from ssgan_tf.nets import resnet_ops
from ssgan_tf.nets import spectral_norm as sn
from ssgan_tf.nets.resnet_ops import CompareGanBlock

RESOLUTION = 48
# The resolution the paper or compare_gan runs it at (tools/benchmark.py --architectures).
PAPER_RESOLUTION = RESOLUTION
# The smallest widths it builds with, (generator_kwargs, discriminator_kwargs): the
# tests' networks and tools/benchmark.py --tiny_widths.
TINY_KWARGS = ({"ch": 1}, {"ch": 1})


def check_resolution(resolution):
  resnet_ops.check_fixed_resolution("resnet_stl", RESOLUTION, resolution)


class Generator(keras.Model):
  """`z [B, z_dim]` -> images `[B, 48, 48, C]` float32 in [-1, 1].

  Conditional (`num_classes`, from `networks.conditional`): every normaliser, the final
  one included, is class-conditional BN on the one-hot label (compare_gan passes y to
  them all); `call` then takes `labels` `[B]` int.
  """

  def __init__(self, resolution, channels, ch=64, normalization="batch_norm",
               sbn_hidden_units=32, bn_momentum=0.9, bn_epsilon=1e-5, synchronized_bn=False,
               num_classes=None, **kwargs):
    super().__init__(**kwargs)
    check_resolution(resolution)
    self.seed_channels = 8 * ch
    norm = norms.generator_factory(normalization, synchronized_bn, bn_momentum, bn_epsilon,
                                   sbn_hidden_units, num_classes=num_classes)
    self.num_classes = num_classes if norms.reads_labels(normalization) else None
    self.fc = sn.dense(6 * 6 * self.seed_channels, spectral_norm=False)
    self.blocks = [CompareGanBlock(m * ch, "up", norm) for m in (4, 2, 1)]
    self.final_norm = norm()
    self.to_image = sn.conv2d(channels, 3)

  def call(self, z, labels=None, training=False):
    y = norms.one_hot_labels(labels, self.num_classes)
    x = tf.reshape(self.fc(z), [-1, 6, 6, self.seed_channels])
    for block in self.blocks:
      x = block(x, z=z, y=y, training=training)
    x = tf.nn.relu(self.final_norm(x, z=z, y=y, training=training))
    return tf.cast(resnet_ops.sigmoid_to_symmetric(self.to_image(x)), tf.float32)


class DiscriminatorTrunk(keras.layers.Layer):
  """images `[B, 48, 48, C]` in [-1, 1] -> features `[B, 16 ch]` (mean-pooled)."""

  def __init__(self, ch=64, spectral_norm=True, **kwargs):
    super().__init__(**kwargs)
    plan = [(1, "down"), (2, "down"), (4, "down"), (8, "down"), (16, "none")]
    self.blocks = [CompareGanBlock(m * ch, scale, spectral_norm=spectral_norm)
                   for m, scale in plan]

  def call(self, images, training=False):
    x = self.block_outputs(images, training)[-1]
    return tf.reduce_mean(tf.nn.relu(x), axis=[1, 2])

  def block_outputs(self, images, training=False):
    """The output of each of the 5 blocks: `[B, h, h, c]`, h = 24, 12, 6, 3, 3."""
    return resnet_ops.block_outputs(self.blocks, resnet_ops.images_to_unit_interval(images), training)

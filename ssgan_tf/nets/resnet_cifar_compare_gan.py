"""compare_gan's own CIFAR ResNet (`architectures/resnet_cifar.py`, `resnet_ops.py:113-165`),
32x32.

Not SNGAN's network (that is `resnet_cifar`); compare_gan's differs in every block:
G: z -> dense 4x4x256 -> 3 up-blocks of 256 channels -> final norm, ReLU, 3x3 conv ->
  sigmoid. Block: `conv2(relu(bn2(conv1(unpool(relu(bn1(x)))))))` + `conv3x3(unpool(x))`,
  unpool = zero insertion (resnet_ops.py:34-55), a 3x3 conv shortcut in every block.
D: 4 blocks of 128 channels (down, down, none, none), each
  `pool(conv2(relu(conv1(relu(x)))))` + `pool(conv3x3(x))` (conv, then 2x2 average pool;
  no "optimized" first block: its ReLU meets the image), then ReLU and global MEAN
  pooling -> 128 features, and the real/fake dense layer.
Pixel ranges, mapped at the edges: D maps our [-1, 1] images to compare_gan's [0, 1]
first (there the first ReLU is then the identity); G's sigmoid output in [0, 1] is
returned as `2 sigmoid(x) - 1`, computed as `tanh(x / 2)`.
Normalisation: `normalization` (`networks.generator_normalization`) for all 7 BNs of G;
a self-modulated BN reads the whole z, or with `hierarchical_z` (compare_gan's option,
off by default) z is split in 4 chunks: the first to the dense layer, one to each block,
the whole z to the final norm (resnet_cifar.py:80-112).
Conditional (`networks.conditional`; compare_gan's `project_y`, no `embed_y`): every
normaliser is class-conditional BN, reading the one-hot label y, or with `hierarchical_z`
`concat([z_i, y])` in block i and y in the final norm (resnet_cifar.py:80-107); D adds
the projection `<embed(y), features>`, embed `[K, 128]` without bias, N(0, 0.02), SN
(resnet_cifar.py:160-165).

Parameters equal compare_gan's Generator / Discriminator (no `embed_z`, `embed_y`; the
conditional ones with `project_y`) plus SS-GAN's rotation head `[128 -> 4]` (compare_gan
`gans/ssgan.py:97-101`), which our `Discriminator` adds. Widths `g_channels` / `d_channels`
are fixed at 256 / 128 in compare_gan; here they are arguments with those defaults.
"""

import keras
import tensorflow as tf

from ssgan_tf.nets import normalization as norms
from ssgan_tf.nets import resnet_ops
from ssgan_tf.nets import spectral_norm as sn
from ssgan_tf.nets.resnet_ops import CompareGanBlock

RESOLUTION = 32
# The resolution the paper or compare_gan runs it at (tools/benchmark.py --architectures).
PAPER_RESOLUTION = RESOLUTION
# The smallest widths it builds with, (generator_kwargs, discriminator_kwargs): the
# tests' networks and tools/benchmark.py --tiny_widths.
TINY_KWARGS = ({"g_channels": 4}, {"d_channels": 4})
NUM_G_BLOCKS = 3


def check_resolution(resolution):
  resnet_ops.check_fixed_resolution("resnet_cifar_compare_gan", RESOLUTION, resolution)


class Generator(keras.Model):
  """`z [B, z_dim]` -> images `[B, 32, 32, C]` float32 in [-1, 1]."""

  def __init__(self, resolution, channels, g_channels=256, hierarchical_z=False,
               normalization="batch_norm", sbn_hidden_units=32, bn_momentum=0.9,
               bn_epsilon=1e-5, synchronized_bn=False, num_classes=None, **kwargs):
    super().__init__(**kwargs)
    check_resolution(resolution)
    self.g_channels = g_channels
    norm = norms.generator_factory(normalization, synchronized_bn, bn_momentum, bn_epsilon,
                                   sbn_hidden_units, num_classes=num_classes)
    self.num_classes = num_classes if norms.reads_labels(normalization) else None
    self.hierarchical_z = resnet_ops.check_hierarchical_z(
        "resnet_cifar_compare_gan", hierarchical_z, normalization)
    self.fc = sn.dense(4 * 4 * g_channels, spectral_norm=False)
    self.blocks = [CompareGanBlock(g_channels, "up", norm) for _ in range(NUM_G_BLOCKS)]
    self.final_norm = norm()
    self.to_image = sn.conv2d(channels, 3)

  def call(self, z, labels=None, training=False):
    y = norms.one_hot_labels(labels, self.num_classes)
    z0, z_per_block, y_per_block = resnet_ops.split_z(
        z, NUM_G_BLOCKS, self.hierarchical_z, "resnet_cifar_compare_gan", y)
    x = tf.reshape(self.fc(z0), [-1, 4, 4, self.g_channels])
    for block, z_block, y_block in zip(self.blocks, z_per_block, y_per_block):
      x = block(x, z=z_block, y=y_block, training=training)
    x = tf.nn.relu(self.final_norm(x, z=z, y=y, training=training))
    return tf.cast(resnet_ops.sigmoid_to_symmetric(self.to_image(x)), tf.float32)


class DiscriminatorTrunk(keras.layers.Layer):
  """images `[B, 32, 32, C]` in [-1, 1] -> features `[B, d_channels]` (mean-pooled)."""

  def __init__(self, d_channels=128, spectral_norm=True, **kwargs):
    super().__init__(**kwargs)
    self.blocks = [CompareGanBlock(d_channels, scale, spectral_norm=spectral_norm)
                   for scale in ("down", "down", "none", "none")]

  def call(self, images, training=False):
    x = self.block_outputs(images, training)[-1]
    return tf.reduce_mean(tf.nn.relu(x), axis=[1, 2])

  def block_outputs(self, images, training=False):
    """The output of each residual block, `[B, h, h, d_channels]` each (h = 16, 8, 8, 8)."""
    return resnet_ops.block_outputs(self.blocks, resnet_ops.images_to_unit_interval(images), training)

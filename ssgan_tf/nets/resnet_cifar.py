"""ResNet-CIFAR (SNGAN, Miyato et al. 2018, Table 4), 32x32.

G: z -> 4x4x256 -> 3 up-blocks of 256 channels (BN, ReLU, nearest 2x upsampling, 3x3
conv, BN, ReLU, 3x3 conv; shortcut: upsampling + 1x1 conv) -> BN, ReLU, 3x3 conv, tanh.
D: an "optimized" first down-block, a down-block, two plain blocks, all 128 channels
(ReLU before each conv, 2x2 average pooling, 1x1 shortcut conv only where the shape
changes), then ReLU and global sum pooling -> 128 features.

This is SNGAN's topology, the network of torch-mimicry's SSGAN32 (the same parameter
counts: G 4,276,739, D 1,054,341 with the rotation head), with compare_gan's weight
initialisation N(0, 0.02) (mimicry uses Xavier). compare_gan's own `resnet_cifar` is a
different network, `resnet_cifar_compare_gan`: a 3x3 conv shortcut in every block (conv,
then pool), zero-insertion unpooling, a first D block that applies ReLU to the image, mean
instead of sum pooling, and a sigmoid output with D reading [0, 1] images unmapped.
"""

import keras
import tensorflow as tf

from ssgan_tf.nets import normalization as norms
from ssgan_tf.nets import resnet_ops
from ssgan_tf.nets import spectral_norm as sn
from ssgan_tf.nets.resnet_ops import DiscriminatorBlock
from ssgan_tf.nets.resnet_ops import GeneratorBlock

RESOLUTION = 32
# The resolution the paper or compare_gan runs it at (tools/benchmark.py --architectures).
PAPER_RESOLUTION = RESOLUTION
# The smallest widths it builds with, (generator_kwargs, discriminator_kwargs): the
# tests' networks and tools/benchmark.py --tiny_widths.
TINY_KWARGS = ({"g_channels": 4}, {"d_channels": 4})


def check_resolution(resolution):
  resnet_ops.check_fixed_resolution("resnet_cifar", RESOLUTION, resolution)


class Generator(keras.Model):
  """`z [B, z_dim]` -> images `[B, 32, 32, C]` float32 in [-1, 1].

  `normalization`: every BN of G (one of `normalization.GENERATOR_NORMALIZERS`); a
  self-modulated one reads the whole z in every block, as compare_gan's resnet_cifar
  without hierarchical z (resnet_cifar.py:80-103).
  Conditional (`num_classes` set, `normalization="conditional"`, from
  `networks.conditional`): every BN is class-conditional on the one-hot label; `call`
  then takes `labels` `[B]` int in 0..num_classes-1.
  """

  def __init__(self, resolution, channels, g_channels=256, normalization="batch_norm",
               sbn_hidden_units=32, bn_momentum=0.9, bn_epsilon=1e-5, synchronized_bn=False,
               num_classes=None, **kwargs):
    super().__init__(**kwargs)
    check_resolution(resolution)
    self.g_channels = g_channels
    norm = norms.generator_factory(normalization, synchronized_bn, bn_momentum, bn_epsilon,
                                   sbn_hidden_units, num_classes=num_classes)
    self.num_classes = num_classes if norms.reads_labels(normalization) else None
    self.fc = sn.dense(4 * 4 * g_channels, spectral_norm=False)
    self.blocks = [GeneratorBlock(g_channels, norm) for _ in range(3)]
    self.final_bn = norm()
    self.to_image = sn.conv2d(channels, 3)

  def call(self, z, labels=None, training=False):
    y = norms.one_hot_labels(labels, self.num_classes)
    x = tf.reshape(self.fc(z), [-1, 4, 4, self.g_channels])
    for block in self.blocks:
      x = block(x, z, y, training=training)
    x = tf.nn.relu(self.final_bn(x, z=z, y=y, training=training))
    return tf.cast(tf.tanh(self.to_image(x)), tf.float32)


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
    x = self.block_outputs(images, training)[-1]
    return tf.reduce_sum(tf.nn.relu(x), axis=[1, 2])

  def block_outputs(self, images, training=False):
    """The output of each residual block, `[B, h, h, d_channels]` each (the probe reads
    them)."""
    return resnet_ops.block_outputs(self.blocks, images, training)

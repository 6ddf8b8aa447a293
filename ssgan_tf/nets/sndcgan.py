"""SNDCGAN (Miyato et al. 2018, as in compare_gan's architectures/sndcgan.py).

Any square resolution divisible by 8. Widths scale with `base_channels` (64 in the paper):
G: z -> (H/8)^2 * 8b -> deconv 4b, 2b, b (4x4, stride 2; BN + ReLU) -> 3x3 conv -> tanh.
D: 3x3/4x4 convs b, 2b, 2b, 4b, 4b, 8b, 8b (strides 1,2,1,2,1,2,1; leaky ReLU 0.1);
features are the flattened last map, `(H/8)^2 * 8b` values.
Images are in [-1, 1] on both sides (compare_gan maps [0, 1] to [-1, 1] inside D and
back after G's tanh; same network).
"""

import keras
import tensorflow as tf

from ssgan_tf import errors
from ssgan_tf.nets import normalization as norms
from ssgan_tf.nets import spectral_norm as sn


# The resolution the paper or compare_gan runs it at (tools/benchmark.py --architectures).
PAPER_RESOLUTION = 32
# The smallest widths it builds with, (generator_kwargs, discriminator_kwargs): the
# tests' networks and tools/benchmark.py --tiny_widths.
TINY_KWARGS = ({"base_channels": 4}, {"base_channels": 4})


def leaky_relu(x, alpha):
  """`tf.nn.leaky_relu(x, alpha)` for 0 < alpha < 1, whose gradient reads its output.

  TF's own gradient reads the input, the conv's BiasAdd; grappler's remapper still fuses
  conv + BiasAdd + LeakyRelu, then fails on the graph ("remapper failed: ... LeakyReluGrad
  exist for missing node ...BiasAdd", an error line in every training run), and the
  failed pass is dropped. The output has the input's sign, so the gradient is
  bit-identical.
  """

  @tf.custom_gradient
  def forward(x):
    y = tf.nn.leaky_relu(x, alpha=alpha)

    def backward(dy):
      return tf.raw_ops.LeakyReluGrad(gradients=dy, features=y, alpha=alpha)

    return y, backward

  return forward(x)


def check_resolution(resolution):
  if resolution % 8:
    raise errors.ConfigError(
        f"sndcgan needs a resolution divisible by 8; got {resolution}. "
        "Resize or pad the images (e.g. MNIST 28 -> 32; an image folder: set "
        "dataset.resolution to a multiple of 8).")


class Generator(keras.Model):
  """`z [B, z_dim]` -> images `[B, H, H, C]` float32 in [-1, 1].

  `normalization`: every BN of G (one of `normalization.GENERATOR_NORMALIZERS`); a
  self-modulated one reads the whole z, as compare_gan's sndcgan (sndcgan.py:59-78).
  Conditional (`num_classes` set, `normalization="conditional"`, from
  `networks.conditional`): every BN is class-conditional on the one-hot label; `call`
  then takes `labels` `[B]` int in 0..num_classes-1.
  """

  def __init__(self, resolution, channels, base_channels=64, normalization="batch_norm",
               sbn_hidden_units=32, bn_momentum=0.9, bn_epsilon=1e-5, synchronized_bn=False,
               num_classes=None, **kwargs):
    super().__init__(**kwargs)
    check_resolution(resolution)
    self.bottom = resolution // 8
    self.top_channels = 8 * base_channels
    init = sn.default_initializer()
    bn = norms.generator_factory(normalization, synchronized_bn, bn_momentum, bn_epsilon,
                                 sbn_hidden_units, num_classes=num_classes)
    self.num_classes = num_classes if norms.reads_labels(normalization) else None

    self.fc = keras.layers.Dense(self.bottom * self.bottom * self.top_channels,
                                 kernel_initializer=init)
    self.fc_bn = bn()
    self.deconvs = [keras.layers.Conv2DTranspose(m * base_channels, 4, 2, padding="same",
                                                 kernel_initializer=init)
                    for m in (4, 2, 1)]
    self.deconv_bns = [bn() for _ in self.deconvs]
    self.to_image = keras.layers.Conv2DTranspose(channels, 3, 1, padding="same",
                                                 kernel_initializer=init)

  def call(self, z, labels=None, training=False):
    y = norms.one_hot_labels(labels, self.num_classes)
    x = tf.nn.relu(self.fc_bn(self.fc(z), z=z, y=y, training=training))
    x = tf.reshape(x, [-1, self.bottom, self.bottom, self.top_channels])
    for deconv, bn in zip(self.deconvs, self.deconv_bns):
      x = tf.nn.relu(bn(deconv(x), z=z, y=y, training=training))
    return tf.cast(tf.tanh(self.to_image(x)), tf.float32)


class DiscriminatorTrunk(keras.layers.Layer):
  """images `[B, H, H, C]` in [-1, 1] -> features `[B, (H/8)^2 * 8 * base_channels]`."""

  def __init__(self, base_channels=64, spectral_norm=True, **kwargs):
    super().__init__(**kwargs)
    plan = [(1, 3, 1), (2, 4, 2), (2, 3, 1), (4, 4, 2), (4, 3, 1), (8, 4, 2), (8, 3, 1)]
    self.convs = [sn.conv2d(m * base_channels, k, s, spectral_norm) for m, k, s in plan]

  def call(self, images, training=False):
    x = self.block_outputs(images, training)[-1]
    return tf.reshape(x, [tf.shape(x)[0], -1])

  def block_outputs(self, images, training=False):
    """The activation map after each conv, `[B, h, h, c]` each (the probe reads them)."""
    outputs, x = [], images
    for conv in self.convs:
      x = leaky_relu(conv(x, training=training), alpha=0.1)
      outputs.append(x)
    return outputs

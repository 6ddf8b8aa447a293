"""compare_gan's BigGAN ResNet (`architectures/resnet_biggan.py`), unconditional or
conditional; 32, 64, 128, 256 or 512 px.

G: z -> dense 4x4x(ch*m_0) -> one up-block per doubling, `ch*m_i -> ch*m_{i+1}`
  (m = [4,4,4,4] at 32, [16,16,8,4,2] at 64, [16,16,8,4,2,1] at 128, [16,16,8,8,4,2,1]
  at 256, [16,16,8,8,4,2,1,1] at 512), a non-local block after the blocks named in
  `blocks_with_attention` -> a plain BN (always: compare_gan's "last BN in G is
  unconditional", resnet_biggan.py:285-287), ReLU, 3x3 conv -> tanh.
  Block (resnet_biggan.py:94-155): `conv2(relu(bn2(conv1(unpool(relu(bn1(x)))))))` +
  `conv1x1(unpool(x))`, unpool = zero insertion.
D: one block per m (m = [2,2,2,2] at 32, [2,4,8,16,16] at 64, [1,2,4,8,16,16] at 128,
  [1,2,4,8,8,16,16] at 256, [1,1,2,4,8,8,16,16] at 512), all down but the last, a
  non-local block after those named -> ReLU, global SUM pooling -> `ch*m_last` features.
  Block: `pool(conv2(relu(conv1(relu(x)))))` + `pool(conv1x1(x))`, the shortcut only where
  the width changes; where it does not, compare_gan's block has no skip connection at all
  (resnet_biggan.py:148-154, `add_shortcut=in != out`), and neither has ours.

Hierarchical z (resnet_biggan.py:249-258): z in `num_G_blocks + 1` equal chunks, the
first to the dense layer, one to both normalisers of each block. Unconditional,
compare_gan's blocks then condition on their chunk only (y is None, so `y_per_block` stays
None): with self-modulated BN each block's MLPs read that chunk; with plain BN the chunks
would be dropped, so `hierarchical_z=True` needs "self_modulated" or a conditional G here
(ConfigError), and the default `None` means "on iff the normalisation reads z or labels".
z_dim must be divisible by the
number of chunks (compare_gan: z_dim 120 at 128 px, 6 chunks of 20).

Conditional (`networks.conditional`; compare_gan's biggan_imagenet128.gin): the one-hot
label is embedded (`embed_y`, default on: a dense `[K, embed_y_dim = 128]` without bias or
spectral norm, resnet_biggan.py:238-241) and every block's normalisers are
class-conditional BN reading `concat([z_i, embed(y)])` (hierarchical z, the default for
conditional BN) or `embed(y)`; the final BN stays plain. D adds the projection
`<embed_D(y), features>`, embed_D `[K, F]` without bias, Glorot-normal init (compare_gan's
choice here, resnet_biggan.py:425-431), spectrally normalised with D. At 128 px, z_dim 120,
ch 96, 1000 classes: G 70,433,988 and D 87,982,370 parameters, compare_gan's published
counts (resnet_biggan.py:37-40), plus our rotation head (6,148).

Attention: `blocks_with_attention`, comma-separated block names "B1", "B2", ... (compare_gan
defaults "B4" in G, "B1" in D, = 64x64 at 128 px). `None` means those defaults, ignored where
the block does not exist (as compare_gan, e.g. G's "B4" at 32 px); names given explicitly
must exist. "" means none.

Pixel ranges: G's `(tanh + 1) / 2` and our map back to [-1, 1] cancel: G returns tanh.
D maps our [-1, 1] images to compare_gan's [0, 1] first.

Parameters equal compare_gan's Generator / Discriminator (unconditional: `embed_y=False`,
`project_y=False`) plus the rotation head `[F -> 4]` of SS-GAN (`gans/ssgan.py:97-101`).
Not matched: compare_gan's BigGAN config also sets orthogonal init (here N(0, 0.02)),
`spectral_norm.singular_value = "auto"` (here "left"; same sigma, other u shape), and
accumulated BN statistics for eval (here moving averages). `spectral_norm` (G) is
compare_gan's `G.spectral_norm` (default False, the BigGAN config sets True): every G
weight, the self-modulation MLPs and the attention convs included.
"""

import keras
import tensorflow as tf

from ssgan_tf import errors
from ssgan_tf.nets import normalization as norms
from ssgan_tf.nets import resnet_ops
from ssgan_tf.nets import spectral_norm as sn
from ssgan_tf.nets.resnet_ops import CompareGanBlock
from ssgan_tf.nets.resnet_ops import NonLocalBlock

# The resolution the paper or compare_gan runs it at (tools/benchmark.py --architectures).
PAPER_RESOLUTION = 128
# The smallest widths it builds with, (generator_kwargs, discriminator_kwargs): the
# tests' networks and tools/benchmark.py --tiny_widths.
# Non-local blocks moved to 16x16 (the default G B4 and D B1 sit at 64x64 at 128 px, where
# one G call on 64 sample-grid images takes seconds); a block needs C // 8 >= 1 where it
# sits: G's B2 has 8 channels, D's B3 8.
TINY_KWARGS = ({"ch": 1, "blocks_with_attention": "B2"},
               {"ch": 2, "blocks_with_attention": "B3"})

G_MULTIPLIERS = {32: [4, 4, 4, 4], 64: [16, 16, 8, 4, 2], 128: [16, 16, 8, 4, 2, 1],
                 256: [16, 16, 8, 8, 4, 2, 1], 512: [16, 16, 8, 8, 4, 2, 1, 1]}
D_MULTIPLIERS = {32: [2, 2, 2, 2], 64: [2, 4, 8, 16, 16], 128: [1, 2, 4, 8, 16, 16],
                 256: [1, 2, 4, 8, 8, 16, 16], 512: [1, 1, 2, 4, 8, 8, 16, 16]}
G_ATTENTION, D_ATTENTION = "B4", "B1"
# compare_gan initialises D's class embedding Glorot-normal here (resnet_biggan.py:428).
PROJECTION_INITIALIZER = "glorot_normal"


def check_resolution(resolution):
  if resolution not in G_MULTIPLIERS:
    raise errors.ConfigError(
        f"resnet_biggan supports resolutions {sorted(G_MULTIPLIERS)}; got {resolution}.")


def _attention_blocks(blocks_with_attention, default, num_blocks, net):
  """Indices (0-based) of the blocks followed by a non-local block."""
  names = [f"B{i + 1}" for i in range(num_blocks)]
  if blocks_with_attention is None:
    return {names.index(n) for n in default.split(",") if n in names}
  chosen = [n.strip() for n in blocks_with_attention.split(",") if n.strip()]
  unknown = [n for n in chosen if n not in names]
  if unknown:
    raise errors.ConfigError(
        f"resnet_biggan {net} blocks_with_attention {unknown} not among its blocks {names}.")
  return {names.index(n) for n in chosen}


class Generator(keras.Model):
  """`z [B, z_dim]` (and, conditional, `labels [B]` int) -> images `[B, R, R, C]`
  float32 in [-1, 1]. `embed_y` / `embed_y_dim`: the label embedding of a conditional G
  (ignored by an unconditional one)."""

  def __init__(self, resolution, channels, ch=96, blocks_with_attention=None,
               hierarchical_z=None, normalization="batch_norm", sbn_hidden_units=32,
               spectral_norm=False, bn_momentum=0.9, bn_epsilon=1e-5, synchronized_bn=False,
               num_classes=None, embed_y=True, embed_y_dim=128, **kwargs):
    super().__init__(**kwargs)
    check_resolution(resolution)
    widths = [ch * m for m in G_MULTIPLIERS[resolution]]
    self.num_blocks = len(widths) - 1
    self.seed_channels = widths[0]
    norm = norms.generator_factory(normalization, synchronized_bn, bn_momentum, bn_epsilon,
                                   sbn_hidden_units, spectral_norm, num_classes)
    self.num_classes = num_classes if norms.reads_labels(normalization) else None
    self.embed_y = (sn.dense(embed_y_dim, spectral_norm=False, name="embed_y", use_bias=False)
                    if self.num_classes and embed_y else None)
    self.hierarchical_z = resnet_ops.check_hierarchical_z(
        "resnet_biggan", hierarchical_z, normalization)
    self.fc = sn.dense(4 * 4 * widths[0], spectral_norm)
    self.blocks = [CompareGanBlock(w, "up", norm, spectral_norm=spectral_norm,
                                   shortcut_kernel=1) for w in widths[1:]]
    attention = _attention_blocks(blocks_with_attention, G_ATTENTION, self.num_blocks, "G")
    self.attention = [NonLocalBlock(spectral_norm) if i in attention else None
                      for i in range(self.num_blocks)]
    self.final_norm = norms.generator_factory("batch_norm", synchronized_bn, bn_momentum,
                                              bn_epsilon)()
    self.to_image = sn.conv2d(channels, 3, spectral_norm=spectral_norm)

  def call(self, z, labels=None, training=False):
    y = norms.one_hot_labels(labels, self.num_classes)
    if self.embed_y is not None:
      y = self.embed_y(y)
    z0, z_per_block, y_per_block = resnet_ops.split_z(
        z, self.num_blocks, self.hierarchical_z, "resnet_biggan", y)
    x = tf.reshape(self.fc(z0, training=training), [-1, 4, 4, self.seed_channels])
    for block, attention, z_block, y_block in zip(self.blocks, self.attention, z_per_block,
                                                  y_per_block):
      x = block(x, z=z_block, y=y_block, training=training)
      if attention is not None:
        x = attention(x, training=training)
    x = tf.nn.relu(self.final_norm(x, training=training))
    return tf.cast(tf.tanh(self.to_image(x, training=training)), tf.float32)


class DiscriminatorTrunk(keras.layers.Layer):
  """images `[B, R, R, C]` in [-1, 1] -> features `[B, ch * m_last]` (sum-pooled).

  The resolution is read from the first call; `check_resolution` ran before.
  """

  def __init__(self, ch=96, blocks_with_attention=None, spectral_norm=True, **kwargs):
    super().__init__(**kwargs)
    self.ch, self.blocks_with_attention = ch, blocks_with_attention
    self.spectral_norm = spectral_norm

  def build(self, input_shape):
    resolution, colors = input_shape[1], input_shape[-1]
    check_resolution(resolution)
    widths = [self.ch * m for m in D_MULTIPLIERS[resolution]]
    inputs = [colors] + widths[:-1]
    last = len(widths) - 1
    self.blocks = [
        CompareGanBlock(w, "none" if i == last else "down", spectral_norm=self.spectral_norm,
                        shortcut_kernel=1, shortcut=c != w)
        for i, (c, w) in enumerate(zip(inputs, widths))]
    attention = _attention_blocks(self.blocks_with_attention, D_ATTENTION, len(widths), "D")
    self.attention = [NonLocalBlock(self.spectral_norm) if i in attention else None
                      for i in range(len(widths))]

  def call(self, images, training=False):
    x = self.block_outputs(images, training)[-1]
    return tf.reduce_sum(tf.nn.relu(x), axis=[1, 2])

  def block_outputs(self, images, training=False):
    """The output of each block (after its non-local block, where there is one),
    `[B, h, h, c]`."""
    outputs, x = [], resnet_ops.images_to_unit_interval(images)
    for block, attention in zip(self.blocks, self.attention):
      x = block(x, training=training)
      if attention is not None:
        x = attention(x, training=training)
      outputs.append(x)
    return outputs

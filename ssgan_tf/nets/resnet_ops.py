"""Building blocks shared by the ResNet architectures: 2x resampling and residual blocks.

Shapes are NHWC. Two families:
- SNGAN's (`GeneratorBlock`, `DiscriminatorBlock`; resnet_cifar): nearest-neighbour
  upsampling, 1x1 shortcuts only where the shape changes, an "optimized" first D block.
- compare_gan's (`CompareGanBlock`, `NonLocalBlock`; resnet_cifar_compare_gan, resnet5,
  resnet_stl, resnet_biggan), as `architectures/resnet_ops.py:113-165` and
  `resnet_biggan.py:94-155`: zero-insertion unpooling, a conv shortcut in every block
  (3x3, or 1x1 in BigGAN where it may be absent), ReLU before the first conv of every
  block, the first D block's included.
Up-blocks belong to generators (a normaliser from `nets/normalization.py`, which may read
z); down-blocks to discriminators (no normalisation besides spectral norm).
"""

import keras
import tensorflow as tf

from ssgan_tf import errors
from ssgan_tf.nets import normalization as norms
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


@tf.custom_gradient
def block_input_relu(x):
  """The ReLU at the input of a pre-activation block: `tf.nn.relu`'s values and gradient,
  bit for bit (TF's ReluGrad, fed the output: it has the input's sign where that counts).

  Written as Maximum(x, 0) because grappler's remapper fuses a Relu into the conv +
  BiasAdd + Add before it even where that sum also feeds the block's skip path, then
  fails on its own graph ("remapper failed: ... missing node .../add", an error line in
  every ResNet-CIFAR run). The gradient is ReluGrad's because Maximum's own would also
  select and reduce one for the 0. Same speed (ResNet-CIFAR, tools/benchmark.py).
  """
  y = tf.maximum(x, tf.zeros([], x.dtype))

  def grad(dy):
    return tf.raw_ops.ReluGrad(gradients=dy, features=y)

  return y, grad


def avg_pool2x(x):
  return tf.nn.avg_pool2d(x, 2, 2, "VALID")


def unpool2x(x):
  """compare_gan's `resnet_ops.unpool` (resnet_ops.py:34-55): 2x upsampling by zero
  insertion, `[B, H, W, C] -> [B, 2H, 2W, C]` with `out[:, 2i, 2j] = x[:, i, j]` and zeros
  elsewhere (not nearest-neighbour: the 3 other pixels of each 2x2 cell are 0)."""
  b, h, w, c = tf.unstack(tf.shape(x))
  y = tf.pad(tf.reshape(x, [b, h, 1, w, 1, c]),
             [[0, 0], [0, 0], [0, 1], [0, 0], [0, 1], [0, 0]])
  return tf.reshape(y, [b, 2 * h, 2 * w, c])


def avg_pool2x_same(x):
  """compare_gan's D pooling: 2x2 average, stride 2, "SAME" (= VALID on even sizes; a
  1-pixel map stays 1 pixel, which resnet5's last down-blocks meet at 32 px and below)."""
  return tf.nn.avg_pool2d(x, 2, 2, "SAME")


class GeneratorBlock(keras.layers.Layer):
  """Pre-activation up-block: `[B, H, H, C] -> [B, 2H, 2H, C']`.

  `normalization`: a zero-argument factory of normalisers (`normalization.generator_factory`);
  `z` `[B, z_dim]` and `y` (a conditional G's `[B, K]` one-hot labels) reach both, for
  those conditioned on them.
  """

  def __init__(self, filters, normalization, **kwargs):
    super().__init__(**kwargs)
    self.bn1, self.bn2 = normalization(), normalization()
    self.conv1 = sn.conv2d(filters, 3)
    self.conv2 = sn.conv2d(filters, 3)
    self.shortcut = sn.conv2d(filters, 1)

  def call(self, x, z=None, y=None, training=False):
    h = upsample2x(tf.nn.relu(self.bn1(x, z=z, y=y, training=training)))
    h = tf.nn.relu(self.bn2(self.conv1(h), z=z, y=y, training=training))
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
    h = x if self.first else block_input_relu(x)
    h = self.conv2(tf.nn.relu(self.conv1(h, training=training)), training=training)
    if not self.downsample:
      return h + x
    # A 1x1 conv commutes with 2x2 average pooling, so the shortcut pools first (4x
    # fewer FLOPs than SNGAN's conv-then-pool in the non-first blocks; same function).
    return avg_pool2x(h) + self.shortcut(avg_pool2x(x), training=training)


class CompareGanBlock(keras.layers.Layer):
  """compare_gan's ResNet block, `ResNetBlock.apply` / `BigGanResNetBlock.apply`.

  G (`scale` "up" or "none"): `conv2(relu(bn2(conv1(up(relu(bn1(x)))))))` + shortcut
  `conv_s(up(x))`, up = zero-insertion unpooling; the normalisers read z (and y).
  D (`scale` "down" or "none", no normalisation): `pool(conv2(relu(conv1(relu(x)))))` +
  shortcut `pool(conv_s(x))`; the ReLU also applies to the first block's input, the image
  (compare_gan's D reads [0, 1] images, so there it is the identity).

  Args:
    filters: output channels.
    scale: "up", "down" or "none".
    normalization: G only: a zero-argument factory of normalisers.
    spectral_norm: on every conv.
    shortcut_kernel: 3 (`ResNetBlock`) or 1 (`BigGanResNetBlock`).
    shortcut: False drops the shortcut, and with it the skip connection: compare_gan's
      BigGAN D blocks with equal input and output widths (resnet_biggan.py:148-154,
      `add_shortcut=in_channels != out_channels`) are plain two-conv blocks.
  """

  def __init__(self, filters, scale, normalization=None, spectral_norm=False,
               shortcut_kernel=3, shortcut=True, **kwargs):
    super().__init__(**kwargs)
    if scale not in ("up", "down", "none"):
      raise ValueError(f"scale must be 'up', 'down' or 'none'; got {scale!r}.")
    self.scale = scale
    is_generator = normalization is not None
    if scale == ("down" if is_generator else "up"):
      raise ValueError("G blocks (with a normalisation) scale 'up' or 'none', D blocks 'down'"
                       " or 'none'.")
    self.bn1 = normalization() if is_generator else None
    self.bn2 = normalization() if is_generator else None
    self.conv1 = sn.conv2d(filters, 3, spectral_norm=spectral_norm)
    self.conv2 = sn.conv2d(filters, 3, spectral_norm=spectral_norm)
    self.shortcut_kernel = shortcut_kernel
    self.shortcut = (sn.conv2d(filters, shortcut_kernel, spectral_norm=spectral_norm)
                     if shortcut else None)

  def _norm(self, bn, x, z, y, training):
    return x if bn is None else bn(x, z=z, y=y, training=training)

  def _shortcut(self, x, training):
    if self.scale == "up":
      return self.shortcut(unpool2x(x), training=training)
    if self.scale == "down" and self.shortcut_kernel == 1:
      # A 1x1 conv commutes with average pooling: pool first, 4x fewer FLOPs.
      return self.shortcut(avg_pool2x_same(x), training=training)
    h = self.shortcut(x, training=training)
    return avg_pool2x_same(h) if self.scale == "down" else h

  def call(self, x, z=None, y=None, training=False):
    # D's input ReLU reads the sum that also feeds the shortcut: see block_input_relu.
    h = (block_input_relu(x) if self.bn1 is None
         else tf.nn.relu(self.bn1(x, z=z, y=y, training=training)))
    if self.scale == "up":
      h = unpool2x(h)
    h = self.conv1(h, training=training)
    h = tf.nn.relu(self._norm(self.bn2, h, z, y, training))
    h = self.conv2(h, training=training)
    if self.scale == "down":
      h = avg_pool2x_same(h)
    return h if self.shortcut is None else h + self._shortcut(x, training)


class NonLocalBlock(keras.layers.Layer):
  """SAGAN self-attention, compare_gan's `arch_ops.non_local_block` (arch_ops.py:709-758).

  `[B, H, W, C] -> [B, H, W, C]`, `x + sigma * conv_o(softmax(theta phi^T) g)` with
  1x1 convs without bias: theta, phi `C -> C/8`, g `C -> C/2`, conv_o `C/2 -> C`; phi and
  g 2x2 max-pooled (keys and values at a quarter of the positions); sigma a learned scalar
  starting at 0, so the block starts as the identity. H, W even; C divisible by 8.
  Parameters: `C^2/8 * 2 + C^2/2 * 2 + 1`.
  """

  def __init__(self, spectral_norm=False, **kwargs):
    super().__init__(**kwargs)
    self.spectral_norm = spectral_norm

  def build(self, input_shape):
    c = input_shape[-1]
    conv = lambda filters, name: sn.conv2d(filters, 1, spectral_norm=self.spectral_norm,
                                           name=name, use_bias=False)
    self.theta, self.phi = conv(c // 8, "theta"), conv(c // 8, "phi")
    self.g, self.attention_out = conv(c // 2, "g"), conv(c, "attention_out")
    self.sigma = self.add_weight(name="sigma", shape=(), initializer="zeros")

  def call(self, x, training=False):
    b, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    c = x.shape[-1]
    flat = lambda t: tf.reshape(t, [b, -1, t.shape[-1]])
    pool = lambda t: tf.nn.max_pool2d(t, 2, 2, "VALID")
    theta = flat(self.theta(x, training=training))  # [B, HW, C/8]
    phi = flat(pool(self.phi(x, training=training)))  # [B, HW/4, C/8]
    attention = tf.nn.softmax(tf.matmul(theta, phi, transpose_b=True))  # [B, HW, HW/4]
    g = flat(pool(self.g(x, training=training)))  # [B, HW/4, C/2]
    attended = tf.reshape(tf.matmul(attention, g), [b, h, w, c // 2])
    return x + tf.cast(self.sigma, x.dtype) * self.attention_out(attended, training=training)


# --- compare_gan's pixel ranges and z plumbing, at the edges of its architectures -------

def images_to_unit_interval(images):
  """Our D input, [-1, 1], to compare_gan's, [0, 1] (its data range; its ResNet Ds read
  it unmapped)."""
  return (images + 1.0) / 2.0


def sigmoid_to_symmetric(logits):
  """compare_gan's ResNet G output `sigmoid(logits)` in [0, 1], mapped to our [-1, 1]:
  `2 sigmoid(x) - 1`, computed as the identical `tanh(x / 2)` (no cancellation near -1)."""
  return tf.tanh(logits / 2.0)


def check_fixed_resolution(architecture, expected, resolution):
  """Rejects any resolution but `expected` (pixels) for a fixed-size architecture."""
  if resolution != expected:
    raise errors.ConfigError(
        f"{architecture} is a {expected}x{expected} architecture; got resolution "
        f"{resolution}. Resize the data to {expected} (an image folder: "
        f"dataset.resolution={expected})"
        + (" or set networks.architecture = 'sndcgan'." if resolution % 8 == 0 else "."))


def check_hierarchical_z(architecture, hierarchical_z, normalization):
  """Resolves `hierarchical_z` (None: on iff the normalisation reads z, or the labels,
  which compare_gan then concatenates with each block's chunk) and rejects it where G
  would ignore all but z's first chunk."""
  known = normalization in norms.NORMALIZERS
  uses_chunks = known and (norms.reads_z(normalization) or norms.reads_labels(normalization))
  if hierarchical_z is None:
    return uses_chunks
  if hierarchical_z and not uses_chunks:
    raise errors.ConfigError(
        f"{architecture}: hierarchical_z needs a normalisation that reads z "
        f"('self_modulated') or labels (networks.conditional); with {normalization!r} G "
        "would use only z's first chunk.")
  return bool(hierarchical_z)


def split_z(z, num_blocks, hierarchical, architecture, y=None):
  """compare_gan's z (and label) plumbing (resnet_cifar.py:76-103,
  resnet_biggan.py:238-258).

  Args:
    z: `[B, z_dim]`.
    num_blocks: G's blocks.
    hierarchical: split z into chunks.
    architecture: for the error message.
    y: a conditional G's conditioning `[B, d]` (one-hot or embedded labels), or None.

  Returns:
    `(z0, [z_1, ..., z_num_blocks], [y_1, ..., y_num_blocks])`: what the first dense
    layer reads, and what each block's normalisers read as z and as y. Hierarchical:
    `num_blocks + 1` equal chunks of z, and (conditional) `y_i = concat([z_i, y])`; else
    the whole z and y everywhere. `y_i` is None for an unconditional G.
  """
  if not hierarchical:
    return z, [z] * num_blocks, [y] * num_blocks
  z_dim = z.shape[-1]
  if z_dim % (num_blocks + 1):
    raise errors.ConfigError(
        f"{architecture} with hierarchical_z splits z into {num_blocks + 1} equal chunks; "
        f"ssgan.z_dim = {z_dim} is not divisible by {num_blocks + 1}: set it to a "
        f"multiple, e.g. {-(-z_dim // (num_blocks + 1)) * (num_blocks + 1)}.")
  chunks = tf.split(z, num_blocks + 1, axis=1)
  z_per_block = chunks[1:]
  y_per_block = ([None] * num_blocks if y is None
                 else [tf.concat([zi, tf.cast(y, zi.dtype)], 1) for zi in z_per_block])
  return chunks[0], z_per_block, y_per_block


def block_outputs(blocks, x, training):
  """Runs `x` through `blocks` in turn; returns the list of every block's output."""
  outputs = []
  for block in blocks:
    x = block(x, training=training)
    outputs.append(x)
  return outputs

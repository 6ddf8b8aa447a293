"""The two-headed SS-GAN discriminator shared by every architecture, optionally with a
class projection (the conditional baseline).

One trunk maps images to final features; two linear heads read them: the real/fake
logit and the 4-way rotation logits (compare_gan's `discriminator_rotation/score_classify`:
`linear(final_features -> 4)`, spectrally normalized iff the rest of D is).

Conditional (`num_classes` set): the projection discriminator of Miyato & Koyama (2018),
as compare_gan's `project_y` (resnet_cifar.py:160-165, resnet_biggan.py:420-435):
  logit(x, y) = gan_head(features(x)) + <embed(y), features(x)>,
embed(y) a row of a `[K, F]` matrix without bias (a linear map of the one-hot y),
spectrally normalized iff D is (sigma of the whole matrix). The rotation head reads the
features only, so rotation logits do not depend on labels.
"""

import keras
import tensorflow as tf

from ssgan_tf import rotation
from ssgan_tf.nets import spectral_norm as sn


class Discriminator(keras.Model):
  """`images [B, H, H, C] in [-1, 1]` (and, conditional, `labels [B]` int in
  0..num_classes-1) -> dict of float32 outputs.

  Outputs:
    logits: `[B]`, the real/fake logit (before any sigmoid), projection included.
    rotation_logits: `[B, 4]`, logits over rot90 k = 0, 1, 2, 3.
    features: `[B, F]`, the trunk's final features (the linear probe reads these).

  D has no batch norm, so real and fake images may share one call: the output of an
  example does not depend on the rest of the batch.

  Args:
    trunk: images -> features `[B, F]`.
    spectral_norm: on both heads and the class embedding.
    num_classes: None (unconditional), or the classes of the projection.
    projection_initializer: of the class embedding; None: N(0, 0.02) (compare_gan's
      `ops.linear`; its BigGAN uses "glorot_normal").
  """

  def __init__(self, trunk, spectral_norm=True, num_classes=None, projection_initializer=None,
               **kwargs):
    super().__init__(**kwargs)
    self.trunk = trunk
    self.num_classes = num_classes
    self.gan_head = sn.dense(1, spectral_norm, name="gan_head")
    self.rotation_head = sn.dense(rotation.NUM_ROTATIONS, spectral_norm, name="rotation_head")
    self.projection = (ClassProjection(num_classes, spectral_norm, projection_initializer)
                       if num_classes is not None else None)

  def probe_features(self, images):
    """What the linear probe compares, D in eval mode: `{"block<i>": [B, c_i]}` the
    spatial mean of each trunk block's output (i = 1, 2, ...), and "features" `[B, F]`,
    what the heads read. float32. (No labels: the features do not depend on them.)"""
    blocks = self.trunk.block_outputs(images, training=False)
    out = {f"block{i}": tf.cast(tf.reduce_mean(x, axis=[1, 2]), tf.float32)
           for i, x in enumerate(blocks, start=1)}
    out["features"] = tf.cast(self.trunk(images, training=False), tf.float32)
    return out

  def call(self, images, labels=None, training=False):
    features = self.trunk(images, training=training)
    logits = tf.squeeze(self.gan_head(features, training=training), -1)
    if self.projection is not None:
      logits += self.projection(features, labels, training=training)
    elif labels is not None:
      raise ValueError("this discriminator is unconditional; it takes no labels.")
    return {
        "logits": tf.cast(logits, tf.float32),
        "rotation_logits": tf.cast(self.rotation_head(features, training=training), tf.float32),
        "features": tf.cast(features, tf.float32),
    }


class ClassProjection(keras.layers.Layer):
  """`<embed(labels), features>`: `features [B, F]`, `labels [B]` int -> `[B]`.

  embed: a Dense `[K, F]` without bias applied to the one-hot labels (compare_gan's op; a
  gather of the matrix's rows computes the same), spectrally normalized iff
  `spectral_norm`; created when F is known (build).
  """

  def __init__(self, num_classes, spectral_norm=True, initializer=None, **kwargs):
    super().__init__(**kwargs)
    self.num_classes, self.spectral_norm, self.initializer = (num_classes, spectral_norm,
                                                              initializer)

  def build(self, features_shape):
    self.embedding = sn.dense(features_shape[-1], self.spectral_norm, name="embedding",
                              use_bias=False, kernel_initializer=self.initializer)

  def call(self, features, labels=None, training=False):
    if labels is None:
      raise ValueError(f"this discriminator is conditional ({self.num_classes} classes); "
                       "pass labels [B] int.")
    y = tf.one_hot(labels, self.num_classes, dtype=features.dtype)
    return tf.reduce_sum(self.embedding(y, training=training) * features, axis=1)

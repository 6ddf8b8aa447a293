"""The two-headed SS-GAN discriminator shared by every architecture.

One trunk maps images to final features; two linear heads read them: the real/fake
logit and the 4-way rotation logits (compare_gan's `discriminator_rotation/score_classify`:
`linear(final_features -> 4)`, spectrally normalized iff the rest of D is).
"""

import keras
import tensorflow as tf

from ssgan_tf import rotation
from ssgan_tf.nets import spectral_norm as sn


class Discriminator(keras.Model):
  """`images [B, H, H, C] in [-1, 1]` -> dict of float32 outputs.

  Outputs:
    logits: `[B]`, the real/fake logit (before any sigmoid).
    rotation_logits: `[B, 4]`, logits over rot90 k = 0, 1, 2, 3.
    features: `[B, F]`, the trunk's final features (the linear probe reads these).

  D has no batch norm, so real and fake images may share one call: the output of an
  example does not depend on the rest of the batch.
  """

  def __init__(self, trunk, spectral_norm=True, **kwargs):
    super().__init__(**kwargs)
    self.trunk = trunk
    self.gan_head = sn.dense(1, spectral_norm, name="gan_head")
    self.rotation_head = sn.dense(rotation.NUM_ROTATIONS, spectral_norm, name="rotation_head")

  def probe_features(self, images):
    """What the linear probe compares, D in eval mode: `{"block<i>": [B, c_i]}` the
    spatial mean of each trunk block's output (i = 1, 2, ...), and "features" `[B, F]`,
    what the heads read. float32."""
    blocks = self.trunk.block_outputs(images, training=False)
    out = {f"block{i}": tf.cast(tf.reduce_mean(x, axis=[1, 2]), tf.float32)
           for i, x in enumerate(blocks, start=1)}
    out["features"] = self(images, training=False)["features"]
    return out

  def call(self, images, training=False):
    features = self.trunk(images, training=training)
    return {
        "logits": tf.cast(tf.squeeze(self.gan_head(features, training=training), -1), tf.float32),
        "rotation_logits": tf.cast(self.rotation_head(features, training=training), tf.float32),
        "features": tf.cast(features, tf.float32),
    }

"""A tiny G for the tests that work out a step's losses by hand."""

import keras
import tensorflow as tf


class TinyGenerator(keras.Model):
  """z [B, 6] -> tanh(dense) reshaped to [B, 4, 4, 3]: no batch norm, so deterministic."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.dense = keras.layers.Dense(48)

  def call(self, z, training=False):
    return tf.reshape(tf.tanh(self.dense(z)), [-1, 4, 4, 3])

"""The Keras dtype policy of the networks: float32, or bf16 compute with float32 weights."""

import keras

from ssgan_tf import errors

PRECISIONS = ("float32", "mixed_bfloat16")


def set_precision(precision):
  """Sets the Keras dtype policy; call before building models."""
  if precision not in PRECISIONS:
    raise errors.ConfigError(
        f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}.")
  keras.config.set_dtype_policy(precision)

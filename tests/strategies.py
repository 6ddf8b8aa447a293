"""Shared by the tests that build their own two-replica MirroredStrategy."""

import tensorflow as tf

from ssgan_tf import distribute


def own_mirrored_strategy(key_base):
  """Two CPU replicas with collective keys of their own.

  Each MirroredStrategy numbers its all-reduces from `_collective_key_base` (0 unless a
  test sets it); two strategies with the same base in one process clash ("Shape mismatch
  in the collective instance 100"). TF's own tests move the base (strategy_combinations.py);
  here it is moved for this strategy only and put back. Give each module its own base.
  """
  cls = tf.distribute.MirroredStrategy
  # pylint: disable=protected-access
  saved, cls._collective_key_base = cls._collective_key_base, key_base
  try:
    strategy = distribute.make_strategy("mirrored", num_cpu_devices=2)
  finally:
    cls._collective_key_base = saved
  assert strategy.num_replicas_in_sync == 2
  return strategy

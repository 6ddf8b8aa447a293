"""Shared by the tests that build their own two-replica MirroredStrategy."""

import itertools

import tensorflow as tf

from ssgan_tf import distribute

# Far enough apart that no strategy's group keys reach the next one's.
_KEY_BASES = itertools.count(10_000_000, 10_000_000)


def own_mirrored_strategy():
  """Two CPU replicas with collective keys no other strategy in this process uses.

  Each MirroredStrategy numbers its all-reduces from `_collective_key_base` (0 unless a
  test sets it); two strategies with the same base in one process clash ("Shape mismatch
  in the collective instance 100"), and pytest-xdist runs many test files in one process.
  TF's own tests move the base (strategy_combinations.py); here each call gets the next
  unused base, for this strategy only, and the class default is put back.
  """
  cls = tf.distribute.MirroredStrategy
  # pylint: disable=protected-access
  saved, cls._collective_key_base = cls._collective_key_base, next(_KEY_BASES)
  try:
    strategy = distribute.make_strategy("mirrored", num_cpu_devices=2)
  finally:
    cls._collective_key_base = saved
  assert strategy.num_replicas_in_sync == 2
  return strategy

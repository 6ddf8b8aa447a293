"""Tests of distribute.py: strategies by name, batch arithmetic and its readable errors."""

import pytest
import tensorflow as tf

from ssgan_tf import distribute


def test_default_strategy_is_the_single_device_one():
  strategy = distribute.make_strategy("default")
  assert strategy is tf.distribute.get_strategy()
  assert strategy.num_replicas_in_sync == 1


def test_mirrored_on_split_cpu_has_one_replica_per_logical_device():
  # conftest.py has split the CPU in two; asking again for 2 must not fail.
  strategy = distribute.make_strategy("mirrored", num_cpu_devices=2)
  assert isinstance(strategy, tf.distribute.MirroredStrategy)
  assert strategy.num_replicas_in_sync == 2
  devices = sorted(strategy.extended.worker_devices)
  assert [d.split(":")[-2:] for d in devices] == [["CPU", "0"], ["CPU", "1"]]


def test_split_cpu_is_idempotent():
  distribute.split_cpu(2)
  assert len(tf.config.list_logical_devices("CPU")) == 2


def test_unknown_strategy_lists_choices():
  with pytest.raises(ValueError, match=r"unknown strategy 'gpu'.*'default', 'mirrored'"):
    distribute.make_strategy("gpu")


@pytest.mark.parametrize("global_batch, replicas, rotated, per_replica, rot_per_replica, n", [
    (64, 1, 64, 64, 64, 16),   # build_ssgan default (rotated = batch): last quarter rotated
    (64, 2, 64, 32, 32, 8),
    (16, 2, 8, 8, 4, 1),
    (8, 2, 0, 4, 0, 0),        # no rotation loss
    (8, 1, 32, 8, 32, 8),      # every image rotated (the most allowed)
])
def test_batch_sizes_split_global_counts_per_replica(global_batch, replicas, rotated,
                                                     per_replica, rot_per_replica, n):
  sizes = distribute.BatchSizes(global_batch, replicas, rotated)
  assert sizes.per_replica_batch == per_replica
  assert sizes.rotated_per_replica == rot_per_replica
  assert sizes.rotated_per_angle == n


@pytest.mark.parametrize("args, match", [
    ((10, 4, 8), "global batch size 10 is not divisible by the 4 replicas"),
    ((0, 1, 0), "global batch size 0"),
    ((8, 2, 12), r"rotated batch size 12 must be a multiple of 4 x 2 replicas = 8"),
    ((8, 1, 6), r"multiple of 4 x 1 replicas = 4"),
    ((8, 2, 40), r"rotate 5 images, but it has only 4; use at most 4 x global batch size = 32"),
])
def test_batch_sizes_reject_impossible_splits_readably(args, match):
  with pytest.raises(ValueError, match=match):
    distribute.BatchSizes(*args)


def test_is_chief_off_a_cluster():
  assert distribute.is_chief(distribute.make_strategy("default"))
  assert distribute.is_chief(distribute.make_strategy("mirrored", num_cpu_devices=2))

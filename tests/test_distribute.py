"""Tests of distribute.py: strategies by name and the chief."""

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


def test_is_chief_off_a_cluster():
  assert distribute.is_chief(distribute.make_strategy("default"))
  assert distribute.is_chief(distribute.make_strategy("mirrored", num_cpu_devices=2))

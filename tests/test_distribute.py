"""Tests of distribute.py: strategies by name and the chief."""

import logging

import pytest
import tensorflow as tf

from ssgan_tf import distribute
from ssgan_tf import errors


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


@pytest.mark.parametrize("tf_config, message", [
    ("{cluster: ", r"TF_CONFIG is not valid JSON \(Expecting property name"),
    ('{"cluster": {"worker": ["h:1"]}}', "TF_CONFIG needs a 'cluster' and a 'task'"),
    ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 3}}',
     r"TF_CONFIG's task index 3 is not one of the 1 worker address\(es\) of its cluster \(0 to "
     r"0\)"),
    ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "chief", "index": 0}}',
     r"TF_CONFIG's task type 'chief' is not a job of its cluster \(\['worker'\]\)"),
])
def test_malformed_tf_config_is_named(monkeypatch, tf_config, message):
  monkeypatch.setenv("TF_CONFIG", tf_config)
  with pytest.raises(errors.ConfigError, match=message):
    distribute.make_strategy("multi_worker")


def test_a_missing_tf_config_is_warned_about(monkeypatch, caplog):
  # MultiWorkerMirroredStrategy would train as one worker without a word.
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with caplog.at_level(logging.WARNING):
    distribute._check_tf_config()  # pylint: disable=protected-access
  assert "--strategy=multi_worker without TF_CONFIG: this process trains as a single worker" \
      in caplog.text


@pytest.mark.parametrize("name", ["default", "multi_worker", "tpu"])
def test_num_cpu_devices_outside_mirrored_is_refused(name):
  with pytest.raises(errors.ConfigError, match=(
      rf"--num_cpu_devices=2 splits the CPU for --strategy=mirrored only, not '{name}'")):
    distribute.make_strategy(name, num_cpu_devices=2)


def test_tpu_outside_the_tpu_strategy_is_refused():
  with pytest.raises(errors.ConfigError, match=r"--tpu=my-tpu is read by --strategy=tpu only, "
                                               r"not 'default'"):
    distribute.make_strategy("default", tpu="my-tpu")


def test_mirrored_without_a_gpu_or_a_cpu_split_warns_it_trains_on_the_cpu(caplog):
  # (conftest.py has split this process's CPU in two: one replica each; a process that
  # has not, the command line's, gets one.)
  with caplog.at_level(logging.WARNING):
    strategy = distribute.make_strategy("mirrored")
  assert strategy.num_replicas_in_sync == len(tf.config.list_logical_devices("CPU"))
  assert (f"--strategy=mirrored found no GPU: it trains on the CPU, "
          f"{strategy.num_replicas_in_sync} replica(s)") in caplog.text


def test_tpu_without_a_name_off_a_tpu_vm_is_one_line():
  with pytest.raises(errors.ConfigError, match=r"--strategy=tpu: .*\(--tpu=NAME, or run on a "
                                               r"TPU VM\)\.$"):
    distribute.make_strategy("tpu")


def test_is_chief_off_a_cluster():
  assert distribute.is_chief(distribute.make_strategy("default"))
  assert distribute.is_chief(distribute.make_strategy("mirrored", num_cpu_devices=2))

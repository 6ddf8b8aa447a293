"""pyproject.toml: `pip install .` gives the `ssgan-tf` command, the same program as
`python -m ssgan_tf.main`, installs the tested requirements and ships the metric
classifier's weights."""

import fnmatch
import importlib
import os
import tomllib

from ssgan_tf.evaluation import mnist_classifier
from tiny_runs import ROOT


def _pyproject():
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    return tomllib.load(f)


def test_console_command_is_the_main_program():
  target = _pyproject()["project"]["scripts"]["ssgan-tf"]
  module_name, function_name = target.split(":")
  module = importlib.import_module(module_name)
  assert module_name == "ssgan_tf.main"
  assert callable(getattr(module, function_name))


def test_dependencies_are_the_tested_requirements():
  assert _pyproject()["tool"]["setuptools"]["dynamic"]["dependencies"] == {
      "file": ["requirements.txt"]}
  with open(os.path.join(ROOT, "requirements.txt")) as f:
    pins = [line for line in f if line.strip() and not line.startswith("#")]
  assert pins and all("==" in line for line in pins)


def test_the_metric_classifiers_weights_are_package_data():
  patterns = _pyproject()["tool"]["setuptools"]["package-data"]["ssgan_tf.evaluation"]
  name = os.path.basename(mnist_classifier.WEIGHTS)
  assert os.path.dirname(mnist_classifier.WEIGHTS) == os.path.dirname(
      os.path.abspath(mnist_classifier.__file__))
  assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns)

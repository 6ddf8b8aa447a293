"""pyproject.toml: `pip install .` gives the `ssgan-tf` command, the same program as
`python -m ssgan_tf.main`, and installs the tested requirements."""

import importlib
import os
import tomllib

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

"""gin_files.py: a config's gin mistakes as one line that says how to fix it, before
TensorFlow is imported (a value that is a bare word; a required binding left unset)."""

import gin
import pytest

from ssgan_tf import errors
from ssgan_tf import gin_files


@pytest.mark.parametrize("param, fix", [
    # What bash leaves of --gin_param=dataset.name="folder" without single quotes.
    ("dataset.name=folder", r"""'folder' is not a value; string values need quotes: """
                            r"""--gin_param='dataset\.name="folder"'$"""),
    ("a.b = [1, folder]", r"""'folder' is not a value; .*--gin_param='a\.b = \[1, "folder"\]'$"""),
    ("a.b = {'k': folder}", r"""'folder' is not a value; .*'a\.b = \{'k': "folder"\}'$"""),
    # Quoted, "false" would be a true string.
    ("a.allow = false", r"'false' is not a value; write False\.$"),
    ("a.b = none  # unset", r"'none' is not a value; write None\.$"),
])
def test_a_bare_word_value_says_how_to_quote_it(param, fix):
  with pytest.raises(errors.ConfigError, match=r"bad gin syntax in --gin_param, line 1: " + fix):
    gin_files.check_syntax([], [param])


def test_a_bare_word_in_a_file_gets_the_fixed_line(tmp_path):
  path = tmp_path / "mine.gin"
  path.write_text("train.total_steps = 10\n\ndataset.name = folder  # my images\n")
  with pytest.raises(errors.ConfigError, match=(
      r"""bad gin syntax in .*mine\.gin, line 3: 'folder' is not a value; string values need """
      r"""quotes: dataset\.name = "folder"  # my images$""")):
    gin_files.check_syntax([str(path)], [])


@pytest.mark.parametrize("param", ["a.b = %macro", "a.b = @configurable", "a.b = @c()",
                                   "a.b = True", "a.b = None", "a.b = 'folder'"])
def test_names_that_are_gin_values_pass(param):
  gin_files.check_syntax([], [param])


@pytest.mark.parametrize("param", ["a.b = some/path", "a.b = folder.name", "a.b = -folder",
                                   "a.b = two words"])
def test_no_quoting_hint_where_quoting_the_word_would_not_be_the_fix(param):
  with pytest.raises(errors.ConfigError, match="bad gin syntax") as raised:
    gin_files.check_syntax([], [param])
  assert "need quotes" not in str(raised.value)


@gin.configurable("gin_files_test")
def _needs(total_steps=gin.REQUIRED, name=gin.REQUIRED):
  return total_steps, name


def test_a_value_gin_cannot_build_is_one_line():
  # gin's parser evaluates literals: an unhashable dict key is a TypeError there.
  with pytest.raises(errors.ConfigError, match=r"^bad gin syntax in --gin_param: unhashable "
                     r"type: 'list'$"):
    gin_files.check_syntax([], ["a.b = {[1]: 2}"])


@pytest.mark.parametrize("bindings, message", [
    ({"name": "x"}, r"required gin binding gin_files_test\.total_steps is not set; start from "
                    r"a config \(e\.g\. --gin_file=gin_configs/quickstart\.gin\) or add "
                    r"--gin_param='gin_files_test\.total_steps=\.\.\.'\.$"),
    ({}, r"required gin bindings gin_files_test\.total_steps, gin_files_test\.name are not "
         r"set; .* or add --gin_param='gin_files_test\.total_steps=\.\.\.'\.$"),
])
def test_a_required_binding_left_unset_is_named(bindings, message):
  with pytest.raises(errors.ConfigError, match=message):
    with gin_files.missing_bindings_as_config_errors():
      _needs(**bindings)


def test_other_runtime_errors_pass_through_unchanged():
  bug = RuntimeError("Required bindings are a bug here")
  with pytest.raises(RuntimeError) as raised:
    with gin_files.missing_bindings_as_config_errors():
      raise bug
  assert raised.value is bug


def test_bindings_outside_the_named_configurables_are_found_as_written():
  params = ["N = 100", "evaluation.num_samples = %N", "eval/probe.num_train = 5",
            "ssgan.z_dim = 16", "dataset.data_dir = '/d'", "networks.generator_kwargs = {}"]
  assert gin_files.bindings_outside(params, ("evaluation", "probe", "dataset")) == [
      "ssgan.z_dim = 16", "networks.generator_kwargs = {}"]

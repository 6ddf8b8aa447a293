"""Gin config files as the command line reads them: syntax checked before any slow import,
and each file's `include`s found next to it.

No TensorFlow here (main.py checks a config before importing it); main.py, the study
runner and tools/benchmark.py share these.
"""

import contextlib
import os
import tokenize

import gin
from gin import config_parser

from ssgan_tf import errors


class SyntaxOnly(config_parser.ParserDelegate):
  """Lets gin's parser read a config without knowing its configurables."""

  def configurable_reference(self, scoped_name, evaluate):
    return None

  def macro(self, macro_name):
    return None


def check_syntax(files, params):
  """One-line ConfigErrors for missing or malformed gin files and bindings, before the
  slow imports (whether the names exist is checked when the configurables are known)."""
  sources = []
  for path in files:
    if not os.path.isfile(path):
      raise errors.ConfigError(f"gin file {path!r} not found; pass an existing file to "
                               "--gin_file (see gin_configs/).")
    with open(path) as f:
      sources.append((path, f.read()))
  sources += [("--gin_param", param) for param in params]
  for where, text in sources:
    try:
      for _ in config_parser.ConfigParser(text, SyntaxOnly()):
        pass
    except SyntaxError as e:
      raise errors.ConfigError(f"bad gin syntax in {where}, line {e.lineno}: {e.msg}; "
                               f"{(e.text or '').strip()!r}") from None
    except tokenize.TokenError as e:  # An unclosed bracket or string.
      raise errors.ConfigError(f"bad gin syntax in {where}: {e.args[0]} (an unclosed "
                               "bracket or string?)") from None


@contextlib.contextmanager
def _includes_next_to(path):
  """While `path` is parsed, gin finds the files it includes in `path`'s folder first.

  gin looks an `include "x.gin"` up in one process-wide list of prefixes: '' (the
  working directory) first, then every folder added so far, in order. Appending the
  folder of each file, as gin's API allows, would let `include "base.gin"` in
  gin_configs/imagenet128/ssgan.gin read a base.gin in the working directory, or
  gin_configs/cifar10/base.gin once a CIFAR-10 config had been parsed in the same process
  (a test, a notebook). gin has no public way to put a folder first, so its list is edited
  here and restored afterwards.
  """
  prefixes = gin.config._LOCATION_PREFIXES  # pylint: disable=protected-access
  saved = list(prefixes)
  prefixes[:] = [os.path.dirname(os.path.abspath(path))] + saved
  try:
    yield
  finally:
    prefixes[:] = saved


def parse(files, params):
  """One-line ConfigErrors for missing or malformed gin files and bindings, and unknown
  bindings. A file's includes are looked up next to it first (then in the working
  directory), whatever the working directory and whatever was parsed before."""
  check_syntax(files, params)
  try:
    for path in files:
      with _includes_next_to(path):
        # Absolute: gin then tries no prefix for the file itself, only for its includes.
        gin.parse_config_file(os.path.abspath(path))
    # Not finalized (locked): configure() binds the other flags afterwards.
    gin.parse_config_files_and_bindings([], params, finalize_config=False)
  except (ValueError, KeyError, SyntaxError, IOError) as e:
    message = " ".join(str(e).split())
    raise errors.ConfigError(f"bad gin config: {message}") from None

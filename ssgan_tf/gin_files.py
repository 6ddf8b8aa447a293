"""Gin config files as the command line reads them: syntax checked before any slow import,
each file's `include`s found next to it, and what changed between two configs.

No TensorFlow here (main.py checks a config before importing it); main.py, the study
runner and tools/benchmark.py share these.
"""

import contextlib
import os
import re
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
    statements(text, where)


def statements(text, where, delegate=None):
  """The statements of gin `text` (a list), read by `delegate` (default: `SyntaxOnly`).

  Raises:
    ConfigError: one line naming `where` (a file, "--gin_param", ...): bad syntax, or a
      ConfigError of the delegate's.
  """
  try:
    return list(config_parser.ConfigParser(text, delegate or SyntaxOnly()))
  except SyntaxError as e:
    problem = _bare_word(where, e) or f"{e.msg}; {(e.text or '').strip()!r}"
    raise errors.ConfigError(f"bad gin syntax in {where}, line {e.lineno}: {problem}") from e
  except errors.ConfigError as e:  # The delegate's (a ValueError too: caught first).
    message = str(e).split("\n  In bindings string")[0]  # gin appends where it parsed.
    raise errors.ConfigError(f"{where}: {message}") from e
  except (ValueError, TypeError) as e:  # Gin's own messages for e.g. a bad dict literal.
    message = " ".join(str(e).split())
    raise errors.ConfigError(f"bad gin syntax in {where}: {message}") from e
  except tokenize.TokenError as e:  # An unclosed bracket or string.
    raise errors.ConfigError(f"bad gin syntax in {where}: {e.args[0]} (an unclosed "
                             "bracket or string?)") from e


def bindings_outside(params, configurables):
  """The `params` (--gin_param strings, syntax already checked) that bind a configurable
  not in `configurables` (names such as "evaluation"), as written; macro definitions
  (`N = 5`, which those bindings may use) are not counted."""
  outside = []
  for param in params:
    for statement in config_parser.ConfigParser(param, SyntaxOnly()):
      if (isinstance(statement, config_parser.BindingStatement) and statement.arg_name
          and statement.selector.split(".")[-1] not in configurables):
        outside.append(param)
        break
  return outside


# gin's parser reads a value with ast.literal_eval; a word that is not a Python literal
# fails with this message (gin/config_parser.py, `_maybe_parse_basic_type`).
_NOT_A_LITERAL = re.compile(r"Failed to parse token '([A-Za-z_]\w*)'$")


def _bare_word(where, error):
  """The fix for a plain word gin rejects as a value, e.g. `dataset.name=folder` (what bash
  leaves of `--gin_param=dataset.name="folder"` without single quotes), or None.

  Only a word that ends its value (a line's end, `,`, a closing bracket or a comment):
  quoting the start of `a/b` or `x.y` would not be the fix.
  """
  match = _NOT_A_LITERAL.search(error.msg)
  line, start = error.text or "", (error.offset or 0)
  if not match or not line.startswith(match.group(1), start):
    return None
  word = match.group(1)
  rest = line[start + len(word):].lstrip()
  if rest and rest[0] not in ",)]}#":
    return None
  if word.lower() in ("true", "false", "none"):
    # Quoted, "false" would be a string, which is true.
    return f"{word!r} is not a value; write {word.capitalize()}."
  fixed = f'{line[:start]}"{word}"{line[start + len(word):]}'.strip()
  if where == "--gin_param":
    fixed = f"--gin_param='{fixed}'"
  return f"{word!r} is not a value; string values need quotes: {fixed}"


# gin's error for a `gin.REQUIRED` argument left unbound (gin/config.py).
_REQUIRED = re.compile(r"Required bindings for `([^`]+)` not provided in config: \[([^\]]*)\]")


@contextlib.contextmanager
def missing_bindings_as_config_errors():
  """Inside, gin's RuntimeError for a required binding left unset (`train.total_steps`
  with no --gin_file at all, `dataset.name` missing from a config) becomes a one-line
  ConfigError naming the binding; any other exception passes through unchanged."""
  try:
    yield
  except RuntimeError as e:
    match = _REQUIRED.match(str(e))
    if not match:
      raise
    names = [f"{match.group(1)}.{name}" for name in re.findall(r"'(\w+)'", match.group(2))]
    bindings = (f"binding {names[0]} is" if len(names) == 1
                else f"bindings {', '.join(names)} are")
    raise errors.ConfigError(
        f"required gin {bindings} not set; start from a config (e.g. "
        f"--gin_file=gin_configs/quickstart.gin) or add --gin_param='{names[0]}=...'.") from e


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
    raise errors.ConfigError(f"bad gin config: {message}") from e


# What `changed_bindings` raises for a text gin cannot parse (one edited by hand, say).
UNPARSABLE = (SyntaxError, ValueError, tokenize.TokenError)


def changed_bindings(before, after):
  """`[(name, old value, new value)]`, sorted by name, of the bindings that differ between
  two gin config texts (an unset side is `(unset)`); values are Python literals,
  references and macros as written (`@fn`, `%MACRO`).

  Raises:
    One of UNPARSABLE: a text gin cannot parse.
  """
  old, new = _bindings(before), _bindings(after)
  return [(key, old.get(key, _UNSET), new.get(key, _UNSET))
          for key in sorted(old.keys() | new.keys())
          if old.get(key, _UNSET) != new.get(key, _UNSET)]


def format_change(change):
  """`"train.seed 0 -> 7"`: one item of `changed_bindings`, as a user reads it."""
  key, old, new = change
  return f"{key} {old!r} -> {new!r}"


class _Text(str):
  """A reference (`@fn`, `%MACRO`) or a placeholder, shown as written in gin."""

  def __repr__(self):
    return str(self)


_UNSET = _Text("(unset)")


class _ReferencesAsText(config_parser.ParserDelegate):

  def configurable_reference(self, scoped_configurable_name, evaluate):
    return _Text(f"@{scoped_configurable_name}{'()' if evaluate else ''}")

  def macro(self, macro_name):
    return _Text(f"%{macro_name}")


def _bindings(text):
  """{"scope/configurable.param" (or a macro's name): value} of gin config `text`; values
  are Python literals, references are _Text. Raises SyntaxError, ValueError or
  tokenize.TokenError."""
  parser = config_parser.ConfigParser(text, _ReferencesAsText())
  bindings = {}
  while (statement := parser.parse_statement()) is not None:
    if isinstance(statement, config_parser.BindingStatement):
      name = ".".join(filter(None, (statement.selector, statement.arg_name)))
      bindings["/".join(filter(None, (statement.scope, name)))] = statement.value
  return bindings

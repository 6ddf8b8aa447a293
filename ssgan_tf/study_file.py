"""A study file -> `Study` (its arms x seeds), and each arm's record of the config its runs
were started with. Read by study.py, the runner.

The study file is gin syntax (comments allowed) binding only `study.*`, literals only:

    study.arms = {"gan": ["gin_configs/quickstart_baseline.gin"],
                  "ssgan_bn": ["gin_configs/quickstart.gin",
                               "networks.generator_normalization = 'batch_norm'"]}
    study.seeds = [0, 1, 2]            # default [0, 1, 2]
    study.eval_every = 500             # required: train.eval_every of every run
    study.gin_params = ["evaluation.metrics = ('fid', 'is', 'pr')"]   # every run; default []
    study.metric = "fmd500_test_ema"   # the headline metric; default: the first FID-like one
    study.probe_steps = ["final"]      # checkpoints to linear-probe (ints or "final"); default []

An arm is a list: one or more gin files (paths relative to the directory the runner is
started from, as `--gin_file`), then gin bindings. Arm names are folder names.

A study may grow (more seeds, more arms, another metric or probe steps) but an arm's runs
keep the config they were started with: `<arm>/study_arm.json` records the arm's gin
files and bindings (study.gin_params, the arm's, train.eval_every) and a digest of each
file's statements (its includes too; comments aside), as the runner reads them just
before it starts one of the arm's runs or as --print_commands prints them; once one of
its runs has begun training (its model_info.json or a checkpoint exists), the runner
(then too), --print_commands and --aggregate_only refuse a study file or an edited gin
file that changes them. Bindings of `evaluation`, `probe`, `classifier` and
`dataset.data_dir`, `cache_dir`, `allow_download` may change (NOT_TRAINING): they
evaluate runs or find their data.

Imports neither TensorFlow nor gin's registry (gin's parser only).
"""

import dataclasses
import hashlib
import json
import os
import re

from gin import config_parser

from ssgan_tf import errors
from ssgan_tf import gin_files
from ssgan_tf import study_runs

SETTINGS = ("arms", "seeds", "eval_every", "gin_params", "metric", "probe_steps")
# Bound by the study itself for every run; an arm or study.gin_params may not bind them.
OWNED = {("train", "seed"), ("ssgan", "seed"), ("train", "eval_every")}
ARM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ARM_RECORD = "study_arm.json"
# Configurables, and (configurable, argument) pairs, that choose how runs are evaluated
# or where their data is found, not what they train: a study may change them later.
NOT_TRAINING = {"evaluation", "probe", "classifier"}
NOT_TRAINING_ARGS = {("dataset", "data_dir"), ("dataset", "cache_dir"),
                     ("dataset", "allow_download")}


@dataclasses.dataclass(frozen=True)
class Arm:
  """One arm: its gin files and bindings, and the run length they set.

  Attributes:
    name: the arm's name (a folder name).
    gin_files: paths as written in the study file.
    gin_params: the arm's own bindings (applied after study.gin_params).
    total_steps: train.total_steps of its runs (generator steps), read statically.
    gin_file_digests: ((path, sha256), ...) of the gin files and their includes, over
      their statements (comments and layout aside): `_arm_statements`.
  """
  name: str
  gin_files: tuple
  gin_params: tuple
  total_steps: int
  gin_file_digests: tuple = ()


@dataclasses.dataclass(frozen=True)
class Study:
  """A parsed, validated study file (`load_study`)."""
  path: str
  name: str
  arms: tuple  # Of Arm, in the file's order.
  seeds: tuple
  eval_every: int
  gin_params: tuple = ()
  metric: str = None
  probe_steps: tuple = ()  # Ints and/or "final".

  def runs(self):
    """Every (arm, seed), seed by seed."""
    return [(arm, seed) for seed in self.seeds for arm in self.arms]


class _Literals(config_parser.ParserDelegate):
  """Study files take literal values only."""

  def configurable_reference(self, scoped_name, evaluate):
    raise errors.ConfigError(f"a study file takes literal values only, not @{scoped_name}.")

  def macro(self, macro_name):
    raise errors.ConfigError(f"a study file takes literal values only, not %{macro_name}.")


def load_study(path):
  """Parses and validates a study file and its arms' gin files (they exist, parse and
  bind train.total_steps as a number); one-line ConfigErrors.

  Args:
    path: the study file (gin syntax, `study.*` bindings only).

  Returns:
    A `Study`.
  """
  if not os.path.isfile(path):
    raise errors.ConfigError(f"study file {path!r} not found; pass an existing file to "
                             "--study (see studies/).")
  with open(path) as f:
    text = f.read()
  values, lines = {}, {}
  for statement in gin_files.statements(text, path, _Literals()):
    if not isinstance(statement, config_parser.BindingStatement):
      raise errors.ConfigError(f"{path}, line {statement.location.line_num}: a study file "
                               "holds study.* bindings only (no include or import).")
    where = f"{path}, line {statement.location.line_num}"
    if statement.scope or statement.selector != "study" or statement.arg_name not in SETTINGS:
      name = "/".join(filter(None, [statement.scope, statement.selector]))
      raise errors.ConfigError(f"{where}: unknown setting {name}.{statement.arg_name}; a "
                               f"study file binds {['study.' + s for s in SETTINGS]}.")
    if statement.arg_name in values:
      raise errors.ConfigError(f"{where}: study.{statement.arg_name} is bound twice "
                               f"(also line {lines[statement.arg_name]}).")
    values[statement.arg_name] = statement.value
    lines[statement.arg_name] = statement.location.line_num

  def where(key):
    return f"{path}, line {lines[key]}: study.{key}" if key in lines else f"{path}: study.{key}"

  if "arms" not in values:
    raise errors.ConfigError(f"{path}: study.arms is required, e.g. study.arms = "
                             '{"gan": ["gin_configs/quickstart_baseline.gin"]}.')
  if "eval_every" not in values:
    raise errors.ConfigError(f"{path}: study.eval_every is required (generator steps "
                             "between evaluations of every run; the report needs them).")
  eval_every = values["eval_every"]
  if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 1:
    raise errors.ConfigError(f"{where('eval_every')} must be an integer >= 1; got "
                             f"{eval_every!r}.")
  seeds = values.get("seeds", [0, 1, 2])
  if (not isinstance(seeds, (list, tuple)) or not seeds
      or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
    raise errors.ConfigError(f"{where('seeds')} must be a non-empty list of integers >= 0;"
                             f" got {seeds!r}.")
  if len(set(seeds)) != len(seeds):
    raise errors.ConfigError(f"{where('seeds')} repeats a seed: {list(seeds)!r}.")
  gin_params = _string_list(values.get("gin_params", []), where("gin_params"))
  for param in gin_params:
    _check_binding(param, where("gin_params"))
  metric = values.get("metric")
  if metric is not None and (not isinstance(metric, str) or not metric):
    raise errors.ConfigError(f"{where('metric')} must be a metric name such as "
                             f"'fid10k_test'; got {metric!r}.")
  probe_steps = values.get("probe_steps", [])
  if not isinstance(probe_steps, (list, tuple)) or any(
      s != "final" and (isinstance(s, bool) or not isinstance(s, int) or s < 1)
      for s in probe_steps):
    raise errors.ConfigError(f"{where('probe_steps')} must be a list of checkpoint steps "
                             f"(integers >= 1) and/or 'final'; got {probe_steps!r}.")
  arms = _parse_arms(values["arms"], where("arms"), tuple(gin_params))
  name = os.path.splitext(os.path.basename(path))[0]
  return Study(path=path, name=name, arms=arms, seeds=tuple(seeds), eval_every=eval_every,
               gin_params=tuple(gin_params), metric=metric,
               probe_steps=tuple(dict.fromkeys(probe_steps)))


def _string_list(value, where):
  if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
    raise errors.ConfigError(f"{where} must be a list of strings; got {value!r}.")
  return list(value)


def _check_binding(binding, where):
  """A gin binding string: parses, and binds nothing the study owns."""
  for statement in gin_files.statements(binding, f"{where} binding {binding!r}"):
    if not isinstance(statement, config_parser.BindingStatement):
      raise errors.ConfigError(f"{where}: {binding!r} is not a binding; put includes in a "
                               "gin file.")
    if (statement.selector.split(".")[-1], statement.arg_name) in OWNED:
      raise errors.ConfigError(
          f"{where}: {binding!r} binds {statement.selector}.{statement.arg_name}, which the "
          "study sets for every run (study.seeds, study.eval_every); drop it.")


def _parse_arms(arms, where, study_params):
  if not isinstance(arms, dict) or not arms:
    raise errors.ConfigError(f"{where} must be a non-empty dict {{name: [gin files..., "
                             f"bindings...]}}; got {arms!r}.")
  parsed = []
  for name, items in arms.items():
    if not isinstance(name, str) or not ARM_NAME.match(name):
      raise errors.ConfigError(f"{where}: arm name {name!r} must be a folder name (ASCII "
                               "letters, digits, '_', '-', '.').")
    if name in study_runs.OWN_NAMES:
      raise errors.ConfigError(f"{where}: arm name {name!r} is taken by the study's own "
                               f"files ({', '.join(study_runs.OWN_NAMES)}); rename the arm.")
    if isinstance(items, str):
      items = [items]
    items = _string_list(items, f"{where}[{name!r}]")
    files = []
    while items and items[0].endswith(".gin") and "=" not in items[0]:
      files.append(items.pop(0))
    if not files:
      raise errors.ConfigError(f"{where}[{name!r}] must start with a gin file (e.g. "
                               f"'gin_configs/quickstart.gin'), then bindings; got "
                               f"{arms[name]!r}.")
    for binding in items:
      if binding.endswith(".gin") and "=" not in binding:
        raise errors.ConfigError(f"{where}[{name!r}]: gin file {binding!r} after a binding; "
                                 "list the files first.")
      _check_binding(binding, f"{where}[{name!r}]")
    parsed.append(_read_arm(name, files, items, study_params, f"{where}[{name!r}]"))
  return tuple(parsed)


def _read_arm(name, files, params, study_params, where):
  """An `Arm` whose total_steps and digests are those of its gin files as they are now."""
  file_statements, digests = _arm_statements(files, where)
  total_steps = _total_steps(file_statements, list(study_params) + list(params), where)
  return Arm(name, tuple(files), tuple(params), total_steps, tuple(sorted(digests.items())))


def reread_arm(study, arm):
  """`arm` with its gin files read again (they may have been edited since the study was
  loaded: its runs must be checked against, and recorded with, what they will read)."""
  return _read_arm(arm.name, arm.gin_files, arm.gin_params, study.gin_params,
                   f"{study.path}: study.arms[{arm.name!r}]")


def _arm_statements(files, where):
  """Reads an arm's gin files, their includes expanded in place and looked up as
  gin_files.parse does: in the top file's folder first, then the working directory.

  Returns:
    ([(statement, label)], {path: sha256}): the binding and import statements in order,
    each with "<path>, line N"; and per file read, a digest of the statements that
    `_trains` (comments and layout left out), so that a run's config can be told from an
    edited file's.
  """
  statements, digests = [], {}

  def read_file(path, top_folder):
    candidates = ([os.path.join(top_folder, path)] if top_folder is not None else []) + [path]
    existing = [c for c in candidates if os.path.isfile(c)]
    if not existing:
      raise errors.ConfigError(f"{where}: gin file {path!r} not found (paths are relative "
                               f"to the directory the study runs from, {os.getcwd()!r}).")
    with open(existing[0]) as f:
      parsed = gin_files.statements(f.read(), existing[0], _Canonical())
    digests[os.path.normpath(existing[0])] = hashlib.sha256(
        repr([tuple(s)[:-1] for s in parsed if _trains(s)]).encode()).hexdigest()
    for statement in parsed:
      if isinstance(statement, config_parser.IncludeStatement):
        read_file(statement.filename,
                  os.path.dirname(existing[0]) if top_folder is None else top_folder)
      else:
        statements.append((statement, f"{existing[0]}, line {statement.location.line_num}"))

  for path in files:
    read_file(path, None)
  return statements, digests


def _trains(statement):
  """False for a binding of NOT_TRAINING or NOT_TRAINING_ARGS; True for any other
  statement."""
  if not isinstance(statement, config_parser.BindingStatement):
    return True
  name = statement.selector.split(".")[-1]
  return name not in NOT_TRAINING and (name, statement.arg_name) not in NOT_TRAINING_ARGS


class _Canonical(config_parser.ParserDelegate):
  """References and macros as text, so that a digest of statements sees them change."""

  def configurable_reference(self, scoped_name, evaluate):
    return f"<@{scoped_name}{'()' if evaluate else ''}>"

  def macro(self, macro_name):
    return f"<%{macro_name}>"


def _total_steps(file_statements, params, where):
  """train.total_steps as the run will see it: the last unscoped binding over the files'
  statements (`_arm_statements`), then the bindings."""
  found = None
  statements = file_statements + [
      (statement, f"binding {param!r}") for param in params
      for statement in gin_files.statements(param, f"binding {param!r}")]
  for statement, source in statements:
    if (isinstance(statement, config_parser.BindingStatement) and not statement.scope
        and statement.selector.split(".")[-1] == "train"
        and statement.arg_name == "total_steps"):
      found = (statement.value, source)
  value, source = found or (None, None)
  if value is None or isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise errors.ConfigError(
        f"{where}: cannot read train.total_steps as an integer >= 1 from its gin files and "
        f"bindings (got {value!r}{' at ' + source if source else ''}); bind it as a number, "
        "e.g. study.gin_params = ['train.total_steps = 2000'].")
  return value


# ----------------------------------------------------------------------------------------
# An arm's record: what its runs were started with.


def arm_config(study, arm):
  """What every run of `arm` is trained with, its seed aside: {"gin_files": [...],
  "gin_params": [...], "gin_file_digests": {path: sha256}} (the ARM_RECORD's content)."""
  return {"gin_files": list(arm.gin_files),
          "gin_params": list(study.gin_params + arm.gin_params)
                        + [f"train.eval_every = {study.eval_every}"],
          "gin_file_digests": dict(arm.gin_file_digests)}


def check_arms(study, workdir):
  """Raises `arm_refusal`'s ConfigError for the first arm of `study` that has one."""
  for arm in study.arms:
    check_arm(study, arm, workdir)


def check_arm(study, arm, workdir):
  """Raises `arm_refusal`'s ConfigError, if `arm` has one."""
  refusal = arm_refusal(study, arm, workdir)
  if refusal:
    raise errors.ConfigError(refusal)


def arm_refusal(study, arm, workdir):
  """Why `arm`'s runs in `workdir` may not go on with the arm as the study now gives it
  (one line), or None: the gin files, their statements (`gin_file_digests`) or the
  bindings differ from its ARM_RECORD; bindings that only evaluate or locate data
  (`_trains`) may change. An arm without a record, or whose runs have not started
  (`_started`), passes, as do the files of a record made before digests were kept."""
  path = os.path.join(workdir, arm.name, ARM_RECORD)
  if not os.path.exists(path) or not _started(workdir, arm):
    return None
  with open(path) as f:
    recorded = json.load(f)
  changes = _changes(recorded, arm_config(study, arm))
  if changes:
    return (f"arm {arm.name!r} of {study.path} differs from the one its runs in "
            f"{os.path.join(workdir, arm.name)} were started with ({path}): "
            f"{'; '.join(changes)}; restore the arm in the study file, or pass a new "
            "--workdir (or give the changed arm a new name).")
  if "gin_file_digests" not in recorded:
    return None
  recorded_digests, digests = recorded["gin_file_digests"], dict(arm.gin_file_digests)
  edited = sorted(file for file in set(recorded_digests) | set(digests)
                  if recorded_digests.get(file) != digests.get(file))
  if edited:
    return (f"gin file {edited[0]} of arm {arm.name!r} has other settings than when the "
            f"arm's runs in {os.path.join(workdir, arm.name)} were started (recorded in "
            f"{path}); restore the file, or pass a new --workdir (or save the edited file "
            "under a new name for a new arm).")
  return None


def _normalized(config):
  """An ARM_RECORD dict with its paths normalized, the bindings that do not `_trains`
  left out and the spaces around each binding's first "=" folded, so that `a.b=1` and
  `a.b = 1` give the same arm."""
  return {"gin_files": [path if "://" in path else os.path.normpath(path)
                        for path in config.get("gin_files", [])],
          "gin_params": [" = ".join(side.strip() for side in param.split("=", 1))
                         for param in config.get("gin_params", [])
                         if all(_trains(statement) for statement in gin_files.statements(
                             param, f"binding {param!r}"))]}


def _changes(recorded, config):
  """What differs between two ARM_RECORD dicts: ["gin_params added ['x = 1']", ...]."""
  changes = []
  recorded, config = _normalized(recorded), _normalized(config)
  for key, now in config.items():
    before = recorded[key]
    if now != before:
      added = [x for x in now if x not in before]
      removed = [x for x in before if x not in now]
      parts = ([f"added {added}"] if added else []) + ([f"removed {removed}"] if removed else [])
      changes.append(f"{key} {' and '.join(parts) or 'reordered'}")
  return changes


def _started(workdir, arm):
  """Whether a run of `arm` in `workdir` (any seed, in the study or not) has begun
  training (its model_info.json, written before the first step, or a checkpoint): until
  then its config may still change, e.g. to fix a run that failed at start-up."""
  folder = os.path.join(workdir, arm.name)
  return any(name.startswith("seed") and (
      os.path.exists(os.path.join(folder, name, study_runs.MODEL_INFO))
      or study_runs.checkpoint_steps(os.path.join(folder, name)))
             for name in os.listdir(folder))


def record_arm(study, arm, workdir):
  """Writes `arm`'s ARM_RECORD before its runs start: where it has none, or none of its
  runs has begun training (`_started`)."""
  path = os.path.join(workdir, arm.name, ARM_RECORD)
  if not os.path.exists(path) or not _started(workdir, arm):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
      json.dump(arm_config(study, arm), f, indent=2)

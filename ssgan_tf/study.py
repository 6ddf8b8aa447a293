"""A study: arms x seeds of ordinary training runs, then one Table-1-shaped report.

    python -m ssgan_tf.study --study=studies/mnist_table1.gin --workdir=runs/t1
    python -m ssgan_tf.study --study=... --workdir=... --print_commands   # for a scheduler
    python -m ssgan_tf.study --study=... --workdir=... --aggregate_only   # report only

The study file (gin syntax, `study.*` literals only: the arms, each a list of gin files
then bindings; the seeds; the evaluation interval; the headline metric; the checkpoints to
probe) is read by study_file.py, whose docstring gives its format.

Each arm x seed is an ordinary training workdir `<workdir>/<arm>/seed<k>`, trained by an
ordinary subprocess (gin's global state never enters this process):

    python -m ssgan_tf.main --gin_file=<arm files> --gin_param=<study.gin_params>
        --gin_param=<arm bindings> --gin_param=train.eval_every=<N>
        --gin_param=train.seed=<k> --gin_param=ssgan.seed=<k> --workdir=<workdir>/<arm>/seed<k>

(the last three are the study's: binding them in the study's or an arm's bindings is an
error). Runs go seed by seed (every arm's seed 0, then every arm's seed 1, ...), so a
study stopped early still compares the arms. A run is finished when its latest checkpoint
is at `train.total_steps` (read from its gin files and bindings, without gin's registry)
and a metric record of that step exists; a re-run of the study skips finished runs,
resumes interrupted ones (training resumes exactly by itself), evaluates a trained run
whose final evaluation is missing (`--mode=eval --checkpoint=<step>`) and probes the
checkpoints of `study.probe_steps` not yet probed (`--mode=probe`).

A study may grow (more seeds, more arms, another metric or probe steps) but an arm's runs
keep the config they were started with: `<arm>/study_arm.json` records it, and the runner,
--print_commands and --aggregate_only refuse a study file or an edited gin file that
changes it (study_file.py says what may change).

--aggregate_only also prints the commands that finish trained runs whose final
evaluation or a probe is missing (e.g. a preempted evaluation on a cluster).

The workdir:
    <arm>/seed<k>/          ordinary training workdirs
    <arm>/study_arm.json    the gin files (and digests) and bindings its runs started with
    logs/<arm>.seed<k>.log  every child's output (appended)
    study_log.jsonl         one line per child process: arm, seed, mode, seconds, status
    study.gin               a copy of the study file (the first one run)
    lock.json               the running runner's (workdir_lock.py): one runner at a time
    report.md, report.json, curves.png, probe.png, samples.png   (study_report.py)

Exit status: 0 done (report written); 1 a bad study file or a failed run (the others
still run, and the report covers what finished); 75 stopped by SIGTERM or Ctrl-C, the
running child saved its step (EX_TEMPFAIL: run the same command again). A runner killed
outright (SIGKILL) leaves no child training: on Linux the child gets SIGTERM then.

Imports neither TensorFlow nor gin's registry: starting it is fast, and it never holds
training state.
"""

import argparse
import ctypes
import datetime
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

from ssgan_tf import errors
from ssgan_tf import study_file
from ssgan_tf import study_report
from ssgan_tf import study_runs
from ssgan_tf import workdir_lock
from ssgan_tf.study_runs import LOGS
from ssgan_tf.study_runs import log_path
from ssgan_tf.study_runs import STUDY_LOG
from ssgan_tf.study_runs import run_dir
from ssgan_tf.study_runs import run_state

_CHILD_HEADER = "=== "  # Starts the line each child's output follows in its run's log.
# A traceback's last line: "ValueError: ...", "tensorflow.python...InvalidArgumentError: ...".
_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception|Exit|Interrupt)\b[\w.]*(: |$)")
# gin appends it after the exception, for each configurable the exception passed through.
_GIN_CALL_LINE = "In call to configurable"
# Keras' wrapper, whose message is on the line after it.
_KERAS_CALL_LINE = "Exception encountered when calling"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")  # Keras prints its message in bold.


class StudyInterrupted(errors.UserError):
  """The runner stopped on SIGTERM / SIGINT after its running child saved its step."""
  exit_code = errors.EXIT_CODE_PREEMPTED


# ----------------------------------------------------------------------------------------
# Runs: their commands and what each still needs.


def _gin_args(study, arm, seed):
  config = study_file.arm_config(study, arm)
  return ([f"--gin_file={path}" for path in config["gin_files"]]
          + [f"--gin_param={param}" for param in config["gin_params"]]
          + [f"--gin_param=train.seed = {seed}", f"--gin_param=ssgan.seed = {seed}"])


def command(study, workdir, arm, seed, mode="train", checkpoint=None, python=None):
  """The `python -m ssgan_tf.main` argv of one run (mode train, eval or probe)."""
  argv = [python or sys.executable, "-m", "ssgan_tf.main"]
  if mode != "train":
    argv += [f"--mode={mode}", f"--checkpoint={checkpoint}"]
  return argv + _gin_args(study, arm, seed) + [f"--workdir={run_dir(workdir, arm, seed)}"]


def probe_steps(study, arm):
  """The checkpoint steps to probe in `arm`'s runs, sorted."""
  return sorted({arm.total_steps if s == "final" else s for s in study.probe_steps})


def shell_commands(study, workdir):
  """One shell line per arm x seed: the training command (then its probes, with &&)."""
  lines = []
  for arm, seed in study.runs():
    parts = [command(study, workdir, arm, seed, python="python")]
    parts += [command(study, workdir, arm, seed, "probe", step, python="python")
              for step in probe_steps(study, arm)]
    lines.append(" && ".join(shlex.join(p) for p in parts))
  return lines


def pending(study, workdir, arm, seed):
  """The (mode, checkpoint) child processes the run still needs, in order."""
  state = run_state(workdir, arm, seed)
  todo = []
  if not state.trained:
    todo.append(("train", None))
  elif not state.evaluated:
    todo.append(("eval", state.step))
  for step in probe_steps(study, arm):
    if step not in state.probed:
      todo.append(("probe", step))
  return todo, state


# ----------------------------------------------------------------------------------------
# The runner.


class _Signals:
  """While installed, SIGTERM and SIGINT are recorded and forwarded to the child as
  SIGTERM (it saves its step and exits 75); the child has its own session, so a
  terminal's Ctrl-C reaches only the runner."""

  def __init__(self):
    self.received, self.child, self._previous = None, None, {}

  def _handle(self, signum, frame):
    del frame
    self.received = self.received or signal.Signals(signum).name
    if self.child is not None and self.child.poll() is None:
      self.child.send_signal(signal.SIGTERM)

  def __enter__(self):
    for signum in (signal.SIGTERM, signal.SIGINT):
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc):
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)


def _say(message):
  print(message, flush=True)


def _last_error_line(path, status):
  """What ended the last child of log `path` (after its "=== " header): its `error:`
  line; else, if a signal killed it (status < 0), the signal; else the last exception
  line of its traceback (with the message Keras puts on the line after it); else its
  last line."""
  lines = []
  with open(path, errors="replace") as f:
    for line in f:
      if line.startswith(_CHILD_HEADER):
        lines = []
      elif line.strip() and not line.strip().startswith(_GIN_CALL_LINE):
        lines.append(_ANSI_CODE.sub("", line.strip()))
  errors_ = [line for line in lines if line.startswith("error:")]
  if errors_:
    return errors_[-1]
  if status < 0:
    try:
      return f"killed by {signal.Signals(-status).name}"
    except ValueError:  # A number without a name.
      return f"killed by signal {-status}"
  raised = [i for i, line in enumerate(lines) if _EXCEPTION_LINE.match(line)]
  if not raised:
    return (lines or ["(no output)"])[-1]
  line = lines[raised[-1]]
  if _KERAS_CALL_LINE in line and raised[-1] + 1 < len(lines):
    line += " " + lines[raised[-1] + 1]
  return line


def run_study(study, workdir, out=_say):
  """Runs what the study still needs, one child at a time, then writes the report.

  Returns:
    The report's dict (study_report.write: study_report.collect's, with its figures).

  Raises:
    errors.ConfigError: when an arm differs from its ARM_RECORD (`arm_refusal`): before
      anything runs, or before a run whose gin files were edited meanwhile.
    StudyInterrupted: on SIGTERM / SIGINT (exit 75) after the running child saved.
    errors.UserError: when a child failed (after the others ran and the report was written).
  """
  study_file.check_arms(study, workdir)
  # One runner per study folder: a second one would fail every run the first is training
  # (each run's trainer lock refuses it) and write the same logs and report.
  with workdir_lock.WorkdirLock(workdir, holder="study runner"):
    return _run_study(study, workdir, out)


def _run_study(study, workdir, out):
  os.makedirs(os.path.join(workdir, LOGS), exist_ok=True)
  copy = os.path.join(workdir, study_runs.STUDY_COPY)
  if not os.path.exists(copy):
    with open(study.path) as f, open(copy, "w") as g:
      g.write(f.read())
  runs = study.runs()
  start = time.perf_counter()
  failed = []
  out(f"study {study.name}: {len(study.arms)} arm(s) x {len(study.seeds)} seed(s) = "
      f"{len(runs)} runs in {workdir}")
  with _Signals() as signals:
    for index, (arm, seed) in enumerate(runs, 1):
      label = f"[{index}/{len(runs)}] {arm.name}/seed{seed}"
      todo, state = pending(study, workdir, arm, seed)
      if not todo:
        out(f"{label}: finished earlier (step {state.step}/{state.total_steps}), skipped")
        continue
      # Its files as the child will read them: edited since the study started, an arm
      # whose runs began is refused; one whose runs did not is recorded anew.
      arm = study_file.reread_arm(study, arm)
      study_file.check_arm(study, arm, workdir)
      study_file.record_arm(study, arm, workdir)
      todo, state = pending(study, workdir, arm, seed)
      run_start = time.perf_counter()
      for mode, checkpoint in todo:
        what = {"train": (f"training from step {state.step} to {state.total_steps}"
                          if state.step else f"training to step {state.total_steps}"),
                "eval": f"evaluating step {checkpoint} (its final evaluation is missing)",
                "probe": f"probing step {checkpoint}"}[mode]
        out(f"{label}: {what}; log {log_path(workdir, arm, seed)}")
        status = _run_child(study, workdir, arm, seed, mode, checkpoint, signals)
        if signals.received or status == errors.EXIT_CODE_PREEMPTED:
          out(f"{label}: stopped ({signals.received or 'the child was preempted'}) after "
              f"{study_runs.duration(time.perf_counter() - run_start)}")
          raise StudyInterrupted(
              f"stopped by {signals.received or 'a signal to the child'} during "
              f"{arm.name}/seed{seed} ({mode}; exit status {status}); run the same command "
              "again to resume.")
        if status != 0:
          message = _last_error_line(log_path(workdir, arm, seed), status)
          out(f"{label}: FAILED ({mode}, exit status {status}): {message}")
          failed.append(f"{arm.name}/seed{seed} ({mode}: {message})")
          break
      else:
        state = run_state(workdir, arm, seed)
        now = time.perf_counter()
        out(f"{label}: done in {study_runs.duration(now - run_start)} (step {state.step}/"
            f"{state.total_steps}; study {study_runs.duration(now - start)})")
  report = write_report(study, workdir, out)
  if failed:
    raise errors.UserError(f"{len(failed)} run(s) failed: {'; '.join(failed)}; see their logs "
                           f"in {os.path.join(workdir, LOGS)}; the report covers the others.")
  return report


def _run_child(study, workdir, arm, seed, mode, checkpoint, signals):
  argv = command(study, workdir, arm, seed, mode, checkpoint)
  log = log_path(workdir, arm, seed)
  started = datetime.datetime.now().astimezone()
  begin = time.perf_counter()
  with open(log, "a") as f:
    f.write(f"{_CHILD_HEADER}{started.isoformat(timespec='seconds')} {shlex.join(argv)}\n")
    f.flush()
    # Its own session: a terminal's Ctrl-C goes to the runner only, which forwards SIGTERM.
    signals.child = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_stop_with_the_runner(os.getpid()))
    if signals.received:  # A signal came while it was starting.
      signals.child.send_signal(signal.SIGTERM)
    try:
      status = signals.child.wait()
    finally:
      if signals.child.poll() is None:  # The runner itself is dying: don't orphan it.
        signals.child.send_signal(signal.SIGTERM)
        signals.child.wait()
      signals.child = None
  entry = {"arm": arm.name, "seed": seed, "mode": mode, "checkpoint": checkpoint,
           "started": started.isoformat(timespec="seconds"),
           "seconds": round(time.perf_counter() - begin, 2), "exit_status": status}
  with open(os.path.join(workdir, STUDY_LOG), "a") as f:
    f.write(json.dumps(entry) + "\n")
  return status


def _stop_with_the_runner(runner_pid):
  """A `preexec_fn` for a child: on Linux, the child gets SIGTERM (it saves its step and
  exits 75) when the runner dies, even by SIGKILL, rather than train on, orphaned,
  holding its run's lock; elsewhere nothing (None)."""
  if not sys.platform.startswith("linux"):
    return None
  # Looked up here: between fork and exec (the runner has threads: its lock's heartbeat)
  # the child should only call, not load.
  prctl = ctypes.CDLL(None, use_errno=True).prctl

  def stop_with_the_runner():
    prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != runner_pid:  # It died before the prctl: nothing started yet.
      os._exit(errors.EXIT_CODE_PREEMPTED)  # (A SIGTERM would meet the runner's handler.)

  return stop_with_the_runner


def write_report(study, workdir, out=_say):
  report = study_report.write(study, workdir)
  out(f"report: {os.path.join(workdir, study_runs.REPORT_MD)} ({report['finished_runs']} "
      f"of {len(study.runs())} runs finished)")
  if report["headline_note"]:
    out(f"warning: {report['headline_note']}")
  for metrics, by_classifier in study_report.group_mixed(report["mixed_classifiers"]):
    out(f"warning: {', '.join(metrics)} from different classifiers "
        f"({', '.join(by_classifier)}): not comparable; report.md names the runs to "
        "re-evaluate.")
  return report


def finishing_commands(study, workdir):
  """Shell lines for the trained runs that still miss their final evaluation or a probe
  (what the runner would run for them; a training command finds nothing to do there)."""
  lines = []
  for arm, seed in study.runs():
    todo, state = pending(study, workdir, arm, seed)
    if state.trained and todo:
      lines.append(" && ".join(
          shlex.join(command(study, workdir, arm, seed, mode, step, python="python"))
          for mode, step in todo))
  return lines


def main(argv=None):
  parser = argparse.ArgumentParser(
      prog="python -m ssgan_tf.study",
      description="Train every arm x seed of a study (ordinary ssgan_tf.main runs) and "
                  "write report.md / report.json with curves and sample grids.",
      epilog="Exit status: 0 done (report written); 1 a bad study file or a failed run "
             "(its log is named; the report covers the others); 75 stopped by SIGTERM or "
             "Ctrl-C after the running child saved (run the same command again). The "
             "study file's format: studies/README.md.")
  parser.add_argument("--study", required=True, help="the study file (gin syntax, "
                      "study.*); the arms' gin file paths are relative to the working "
                      "directory")
  parser.add_argument("--workdir", required=True, help="the study's folder: "
                      "<workdir>/<arm>/seed<k> are the runs")
  group = parser.add_mutually_exclusive_group()
  group.add_argument("--print_commands", action="store_true",
                     help="print one shell command per arm x seed (training, then its "
                     "probes) for a job scheduler; runs nothing (records the arms' "
                     "configs in the workdir)")
  group.add_argument("--aggregate_only", action="store_true",
                     help="run nothing: write the report from what the workdir holds")
  args = parser.parse_args(argv)
  # `--workdir=~/x` reaches a program unexpanded: a shell expands `~` at a word's start.
  args.study, args.workdir = map(os.path.expanduser, (args.study, args.workdir))
  with errors.user_errors_as_one_line():
    study = study_file.load_study(args.study)
    if args.print_commands:
      # The printed commands start runs: their arms are held to this config, as the
      # runner's are.
      study_file.check_arms(study, args.workdir)
      for arm in study.arms:
        study_file.record_arm(study, arm, args.workdir)
      lines = shell_commands(study, args.workdir)
      print(f"# {len(lines)} commands, one per arm x seed (seed by seed); when they are done: "
            f"python -m ssgan_tf.study --study={shlex.quote(args.study)} "
            f"--workdir={shlex.quote(args.workdir)} --aggregate_only", file=sys.stderr)
      _print_to_a_pipe("\n".join(lines))
    elif args.aggregate_only:
      if not os.path.isdir(args.workdir):
        raise errors.WorkdirError(f"--workdir {args.workdir!r} does not exist; run the "
                                  "study (or its --print_commands) first.")
      study_file.check_arms(study, args.workdir)
      write_report(study, args.workdir)
      finishing = finishing_commands(study, args.workdir)
      if finishing:
        _say(f"{len(finishing)} trained run(s) miss their final evaluation or a probe; "
             "these commands (or the runner) finish them:")
        _print_to_a_pipe("\n".join(finishing))
    else:
      run_study(study, args.workdir)


def _print_to_a_pipe(text):
  """Prints `text`; a reader that stopped early (`| head`) ends the output quietly, as
  Python's docs advise (stdout pointed at /dev/null, so the exit's flush cannot fail)."""
  try:
    print(text, flush=True)
  except BrokenPipeError:
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(1)


def cli():
  """The `ssgan-tf-study` console command (pyproject.toml)."""
  main()


if __name__ == "__main__":
  cli()

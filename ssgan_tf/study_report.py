"""A study's report: per arm, final metrics over seeds, honest comparisons, curves, samples.

`write(study, workdir)` (study: a study.Study) reads every run folder of the study
(`metrics.jsonl`, checkpoints, `samples/fakes_<step>.png`) and the runner's
`study_log.jsonl`, and writes
  report.json   everything below, as numbers
  report.md     Table-1-shaped: per arm the headline metric's mean +- std over seeds, the
                best of the seeds (the paper's Table 1 is best of 3, its Table 2 mean +-
                std), every metric, steps and wall time; pairwise comparisons
  curves.png    each sample metric vs generator step: per arm the mean over its finished
                seeds (the evaluation during training, and each run's final value), a +-1
                std band
  probe.png     linear-probe accuracy vs step (when probe records exist)
  samples.png   each run's last sample grid, arms side by side, one row per seed

Statistics. A run's value of a metric is its record at the run's last checkpoint step
(the mean over that evaluation's fake sets). Only finished runs count (trained to
train.total_steps and evaluated there). Over seeds: the mean, the sample standard deviation
(ddof = 1; undefined for one seed) and the best (min or max as the metric's direction
says). Two arms are compared on a metric only with >= 2 seeds each: a difference of means
within the larger of the two stds is reported as "within one std" (no winner); beyond it,
as more than one std apart, and one arm is called better only with >= 3 seeds per arm,
Welch's t-test p-value beside it (with 3 seeds rarely below 0.05; the report says so). A
metric whose direction is unknown gets no "better". Final values of one metric that came
from different classifiers (the records' `classifier`, e.g. mnist_cnn_v1 and v2) are
flagged as not comparable, naming the runs to re-evaluate, and not compared. A non-finite
final value (NaN, inf) is left out of its metric's statistics and named.
"""

import datetime
import itertools
import json
import math
import os
import re

import numpy as np

from ssgan_tf import errors
from ssgan_tf import study_runs

# matplotlib (Agg backend: files only) and scipy are imported where they are used, so that
# the runner starts fast.

LOWER_IS_BETTER = re.compile(r"^(fid|fmd|kid|kmd)\d")
HIGHER_IS_BETTER = re.compile(
    r"^((is|mnist_score|precision|recall|mnist_precision|mnist_recall)\d|probe_)")
MIN_SEEDS_TO_CALL = 3  # Seeds per arm before the report names a better arm.
FID_LIKE = re.compile(r"^(fid|fmd)\d")


# ----------------------------------------------------------------------------------------
# Statistics.


def direction(metric):
  """"lower", "higher" or None (unknown) is better, from the metric's name."""
  if LOWER_IS_BETTER.match(metric):
    return "lower"
  if HIGHER_IS_BETTER.match(metric):
    return "higher"
  return None


def summarize(values, better):
  """Statistics of one metric over seeds.

  Args:
    values: the seeds' values (floats; any count >= 1).
    better: "lower", "higher" or None.

  Returns:
    {"n", "mean", "std" (ddof 1; None for n = 1), "best" (None if `better` is None),
    "values"}.
  """
  values = [float(v) for v in values]
  array = np.asarray(values, dtype=np.float64)
  best = None
  if better is not None:
    best = float(array.min() if better == "lower" else array.max())
  return {"n": len(values), "mean": float(array.mean()),
          "std": float(array.std(ddof=1)) if len(values) > 1 else None,
          "best": best, "values": values}


def compare(name_a, a, name_b, b, better):
  """The comparison of two arms' summaries (`summarize`) on one metric.

  The rule: fewer than 2 seeds in either arm: no comparison (no spread). Otherwise the
  difference of the means against the larger of the two stds: within it, "within one
  std"; beyond it, the better arm is named only with >= MIN_SEEDS_TO_CALL seeds in each
  and a known direction, with Welch's t-test p-value beside it.

  Returns:
    {"arms": [a, b], "difference": mean_a - mean_b, "larger_std", "welch_p",
     "verdict": "too_few_seeds" | "within_one_std" | "beyond_one_std",
     "better": the better arm's name or None, "text": one sentence}.
  """
  difference = a["mean"] - b["mean"]
  out = {"arms": [name_a, name_b], "difference": difference, "larger_std": None,
         "welch_p": None, "better": None}
  if a["n"] < 2 or b["n"] < 2:
    out["verdict"] = "too_few_seeds"
    out["text"] = (f"too few seeds to compare (n = {a['n']} and {b['n']}; a spread needs "
                   "at least 2 each)")
    return out
  larger = max(a["std"], b["std"])
  out["larger_std"] = larger
  # Float round-off is no difference (e.g. a score of 1 +- 1e-13 from an untrained model).
  round_off = 1e-9 * max(abs(a["mean"]), abs(b["mean"]))
  if abs(difference) <= max(larger, round_off):
    out["verdict"] = "within_one_std"
    out["text"] = ("equal" if difference == 0 else
                   "equal up to float round-off" if abs(difference) > larger else
                   f"within one std (|difference| {_f(abs(difference))} <= {_f(larger)})")
    out["text"] += ": these seeds do not separate them"
    return out
  out["verdict"] = "beyond_one_std"
  if a["std"] > 0 or b["std"] > 0:
    from scipy import stats  # pylint: disable=import-outside-toplevel
    p = stats.ttest_ind(a["values"], b["values"], equal_var=False).pvalue
    out["welch_p"] = None if math.isnan(p) else float(p)
  beyond = f"more than one std apart (|difference| {_f(abs(difference))} > {_f(larger)})"
  if larger == 0:
    beyond += ("; every seed of each arm gave the same value (no t-test: did the seed "
               "change the runs?)")
  p_text = ("" if out["welch_p"] is None else
            f"; Welch's t-test p = {out['welch_p']:.2g}"
            + (", not significant at the 5 % level" if out["welch_p"] >= 0.05 else ""))
  if min(a["n"], b["n"]) < MIN_SEEDS_TO_CALL:
    out["text"] = (f"{beyond}{p_text}; but {min(a['n'], b['n'])} seeds are too few to "
                   "call either better")
  elif better is None:
    out["text"] = f"{beyond}{p_text}; this metric's direction is unknown"
  else:
    out["better"] = name_a if (difference < 0) == (better == "lower") else name_b
    out["text"] = f"{out['better']} is better ({better} is better), {beyond}{p_text}"
  return out


def _f(x):
  """A number as the report prints it: 4 significant digits."""
  return "—" if x is None else f"{x:.4g}"


def _latest_per_step(records):
  """{metric: {step: record}}, the last record of each (metric, step) winning."""
  out = {}
  for record in records:
    if isinstance(record.get("value"), (int, float)) and "metric" in record:
      out.setdefault(record["metric"], {})[int(record["step"])] = record
  return out


def _children(workdir):
  """From the runner's study_log.jsonl: ({(arm, seed): seconds of all its children},
  {(arm, seed): its last child's entry}); a line that is not an entry is left out."""
  walls, last = {}, {}
  for entry in study_runs.read_jsonl(os.path.join(workdir, study_runs.STUDY_LOG),
                                     ("arm", "seed", "seconds")):
    key = (entry["arm"], entry["seed"])
    walls[key] = walls.get(key, 0.0) + float(entry["seconds"])
    last[key] = entry
  return walls, last


def _curves(series, final, last_step):
  """{metric: [[step, value], ...]}: the evaluation during training (records without a
  checkpoint: the same settings at every step) or the probes of checkpoints, and at the
  last step the run's final value (which may come from an `--mode=eval` of that
  checkpoint)."""
  curves = {}
  for metric, by_step in series.items():
    probe = metric.startswith(study_runs.PROBE_PREFIX)
    points = {step: record["value"] for step, record in by_step.items()
              if (probe or record.get("checkpoint") is None) and step != last_step}
    if metric in final:
      points[last_step] = final[metric]["value"]
    if points:
      curves[metric] = sorted([step, value] for step, value in points.items())
  return curves


def _status(state, last_child, log):
  """A run's status in words; a failure of its last child (not a preemption) is named
  with its log."""
  if state.finished:
    return "finished"
  if state.trained:
    status = "trained, final evaluation missing"
  elif state.step:
    status = f"interrupted or running (step {state.step}/{state.total_steps})"
  else:
    status = "not started"
  exit_status = (last_child or {}).get("exit_status", 0)
  if exit_status not in (0, errors.EXIT_CODE_PREEMPTED):
    status += f"; its last {last_child['mode']} failed (exit status {exit_status}, {log})"
  return status


def _sample_grid(path, step):
  """The run's sample grid at `step`, else its latest, else None."""
  folder = os.path.join(path, study_runs.SAMPLES)
  if not os.path.isdir(folder):
    return None
  grids = {int(m.group(1)): m.group(0)
           for m in map(study_runs.SAMPLE_GRID.match, os.listdir(folder)) if m}
  if not grids:
    return None
  chosen = step if step in grids else max(grids)
  return os.path.join(folder, grids[chosen])


def collect(study, workdir):
  """The report as a dict (what report.json holds); see the module docstring."""
  workdir = os.fspath(workdir)
  walls, last_children = _children(workdir)
  arms = {}
  for arm in study.arms:
    runs = {}
    for seed in study.seeds:
      path = study_runs.run_dir(workdir, arm, seed)
      state = study_runs.run_state(workdir, arm, seed)
      series = _latest_per_step(study_runs.read_records(path))
      status = _status(state, last_children.get((arm.name, seed)),
                       os.path.relpath(study_runs.log_path(workdir, arm, seed), workdir))
      final = {metric: {k: by_step[state.step][k] for k in ("value", "std", "runs", "classifier")
                        if k in by_step[state.step]}
               for metric, by_step in series.items() if state.step in by_step}
      runs[str(seed)] = {
          "seed": seed, "status": status, "finished": state.finished, "step": state.step,
          "total_steps": state.total_steps, "final": final,
          "curves": _curves(series, final, state.step),
          "wall_seconds": walls.get((arm.name, seed)),
          "sample_grid": _sample_grid(path, state.step) if state.step else None,
          "workdir": os.fspath(path)}
    finished = [run for run in runs.values() if run["finished"]]
    metrics, non_finite = {}, {}
    for metric in dict.fromkeys(m for run in finished for m in run["final"]):
      having = [run for run in finished if metric in run["final"]]
      # NaN or inf (a diverged generator's metric) is no value to average or rank.
      bad = [run["seed"] for run in having if not math.isfinite(run["final"][metric]["value"])]
      having = [run for run in having if run["seed"] not in bad]
      if bad:
        non_finite[metric] = bad
      if not having:
        continue
      summary = summarize([run["final"][metric]["value"] for run in having], direction(metric))
      summary["seeds"] = [run["seed"] for run in having]
      summary["direction"] = direction(metric)
      metrics[metric] = summary
    known_walls = [run["wall_seconds"] for run in finished if run["wall_seconds"] is not None]
    arms[arm.name] = {
        "gin_files": list(arm.gin_files), "gin_params": list(arm.gin_params),
        "total_steps": arm.total_steps, "finished_seeds": [run["seed"] for run in finished],
        "metrics": metrics, "non_finite": non_finite, "runs": runs,
        "mean_wall_seconds": float(np.mean(known_walls)) if known_walls else None,
        "total_wall_seconds": float(np.sum(known_walls)) if known_walls else None}
  all_metrics = list(dict.fromkeys(m for arm in arms.values() for m in arm["metrics"]))
  mixed = mixed_classifiers(arms)
  headline, headline_note = _headline(study, all_metrics)
  comparisons = {}
  for metric in all_metrics:
    if metric in mixed:  # Named in the report as not comparable.
      comparisons[metric] = []
      continue
    having = [(name, arm["metrics"][metric]) for name, arm in arms.items()
              if metric in arm["metrics"]]
    comparisons[metric] = [compare(name_a, a, name_b, b, direction(metric))
                           for (name_a, a), (name_b, b) in itertools.combinations(having, 2)]
  return {
      "study": study.name, "study_file": study.path, "workdir": workdir,
      "generated": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
      "seeds": list(study.seeds), "eval_every": study.eval_every,
      "gin_params": list(study.gin_params), "headline_metric": headline,
      "headline_note": headline_note, "metrics": all_metrics,
      "directions": {m: direction(m) for m in all_metrics}, "arms": arms,
      "comparisons": comparisons, "mixed_classifiers": mixed,
      "finished_runs": sum(len(arm["finished_seeds"]) for arm in arms.values()),
      "statistics": "per arm over its finished seeds: mean, sample std (ddof = 1), best "
                    "(min or max by the metric's direction); a run's value is its record "
                    "at its last checkpoint step (the mean over that evaluation's fake sets)"}


def mixed_classifiers(arms):
  """`{metric: {classifier: ["arm/seedK", ...]}}` for each metric whose finished runs'
  final values came from more than one classifier (e.g. runs evaluated before and after a
  classifier's new version): those values do not compare."""
  found = {}
  for name, arm in arms.items():
    for run in arm["runs"].values():
      if run["finished"]:
        for metric, final in run["final"].items():
          if final.get("classifier") is not None:  # None: a record that does not say.
            found.setdefault(metric, {}).setdefault(final["classifier"], []).append(
                f"{name}/seed{run['seed']}")
  return {metric: by_classifier for metric, by_classifier in found.items()
          if len(by_classifier) > 1}


def group_mixed(mixed):
  """`mixed_classifiers`' metrics grouped by the same runs per classifier:
  `[([metric, ...], {classifier: [run, ...]})]`, in first-seen order."""
  groups = {}
  for metric, by_classifier in mixed.items():
    key = json.dumps(by_classifier, sort_keys=True)
    groups.setdefault(key, ([], by_classifier))[0].append(metric)
  return list(groups.values())


def _headline(study, metrics):
  """(the headline metric or None, a note or None)."""
  if study.metric and study.metric in metrics:
    return study.metric, None
  sample_metrics = [m for m in metrics if not m.startswith(study_runs.PROBE_PREFIX)]
  fallback = next((m for m in sample_metrics if FID_LIKE.match(m)),
                  sample_metrics[0] if sample_metrics else (metrics[0] if metrics else None))
  if study.metric:
    return fallback, (f"study.metric {study.metric!r} was not recorded by any finished run"
                      f" (recorded: {metrics})"
                      + (f"; showing {fallback!r} instead." if fallback else "."))
  return fallback, None


# ----------------------------------------------------------------------------------------
# Files.


def write(study, workdir):
  """Writes report.json, report.md and the PNGs; returns the report dict."""
  report = collect(study, workdir)
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  figures = {}
  markdown_file, json_file, curves, probe, samples = study_runs.REPORT_FILES
  if _plot_curves(report, os.path.join(workdir, curves), probe=False):
    figures["curves"] = curves
  if _plot_curves(report, os.path.join(workdir, probe), probe=True):
    figures["probe"] = probe
  if _plot_samples(report, os.path.join(workdir, samples)):
    figures["samples"] = samples
  report["figures"] = figures
  _write_text(os.path.join(workdir, json_file),
              json.dumps(_json_safe(report), indent=1, allow_nan=False) + "\n")
  _write_text(os.path.join(workdir, markdown_file), markdown(report))
  return report


def _json_safe(value):
  """`value` with NaN and infinities as None: strict JSON has no token for them."""
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {key: _json_safe(item) for key, item in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_safe(item) for item in value]
  return value


def _write_text(path, text):
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def _arrow(metric):
  return {"lower": " ↓", "higher": " ↑"}.get(direction(metric), "")


def _mean_std(summary):
  if summary is None:
    return "—"
  if summary["std"] is None:
    return f"{_f(summary['mean'])} (1 seed)"
  return f"{_f(summary['mean'])} ± {_f(summary['std'])}"


def markdown(report):
  """report.md's text."""
  seeds = report["seeds"]
  arms = report["arms"]
  headline = report["headline_metric"]
  lines = [f"# Study `{report['study']}`", "",
           f"Study file `{report['study_file']}`, workdir `{report['workdir']}`, written "
           f"{report['generated']}. {len(arms)} arm(s), {len(seeds)} seed(s) per arm "
           f"({', '.join(map(str, seeds))}); {report['finished_runs']} of "
           f"{len(arms) * len(seeds)} runs finished. Evaluation every "
           f"{report['eval_every']} generator steps.", "",
           "Statistics over each arm's finished seeds: mean ± sample std (ddof = 1) and the "
           "best seed (the paper's Table 1 reports the best of 3 runs, its Table 2 mean ± "
           "std). ↓ lower is better, ↑ higher is better. A run's value is its evaluation at "
           "its last step, itself the mean over that evaluation's fake sets. An arm is called "
           f"better only with >= {MIN_SEEDS_TO_CALL} seeds per arm and more than one std "
           "apart; Welch's p is given beside it, and with 3 seeds it is rarely below 0.05.",
           ""]
  fewest = min((len(arm["finished_seeds"]) for arm in arms.values()), default=0)
  if fewest < MIN_SEEDS_TO_CALL:
    lines += [f"**Only {fewest} finished seed(s) in {'an arm' if len(arms) > 1 else 'the arm'}"
              ": too few to tell arms apart with any confidence.**", ""]
  if report["headline_note"]:
    lines += [f"Note: {report['headline_note']}", ""]
  for name, arm in arms.items():
    for metric, bad in arm.get("non_finite", {}).items():
      lines += [f"**{name}: `{metric}` is not finite for seed(s) "
                f"{', '.join(map(str, bad))}: left out of its statistics.**", ""]
  for metrics, by_classifier in group_mixed(report["mixed_classifiers"]):
    used = "; ".join(f"{name}: {', '.join(runs)}" for name, runs in by_classifier.items())
    names = ", ".join(f"`{m}`" for m in metrics)
    lines += [f"**Not comparable: {names} from different classifiers** ({used}). "
              "Re-evaluate the runs that used another one (`python -m ssgan_tf.main "
              "--mode=eval --workdir=RUN`: the last record of a step counts), then run the "
              "study again to rewrite this report.", ""]
  if headline:
    lines += [f"## `{headline}`{_arrow(headline)} at the last step", "",
              "| arm | seeds finished | steps | mean ± std | best of n | per seed | "
              "wall time per run |", "|---|---|---|---|---|---|---|"]
    for name, arm in arms.items():
      summary = arm["metrics"].get(headline)
      per_seed = ", ".join(f"{_f(run['final'][headline]['value'])} (seed {run['seed']})"
                           for run in arm["runs"].values()
                           if run["finished"] and headline in run["final"])
      best = "—" if summary is None else f"{_f(summary['best'])} (n = {summary['n']})"
      lines.append(f"| {name} | {len(arm['finished_seeds'])}/{len(seeds)} | "
                   f"{arm['total_steps']} | {_mean_std(summary)} | {best} | "
                   f"{per_seed or '—'} | {_wall(arm['mean_wall_seconds'])} |")
    lines.append("")
    lines += _comparison_lines(report, headline)
  others = [m for m in report["metrics"]]
  if others:
    lines += ["## Every metric at the last step (mean ± std [best])", "",
              "| arm | " + " | ".join(f"`{m}`{_arrow(m)}" for m in others) + " |",
              "|---|" + "---|" * len(others)]
    for name, arm in arms.items():
      cells = []
      for metric in others:
        summary = arm["metrics"].get(metric)
        cells.append("—" if summary is None else
                     _mean_std(summary) + ("" if summary["best"] is None
                                           else f" [{_f(summary['best'])}]"))
      lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    rest = [m for m in others if m != headline]
    compared = [line for metric in rest
                for line in _comparison_lines(report, metric, heading=False)]
    if compared:
      lines += ["### Comparisons on the other metrics", ""] + compared
  figures = report.get("figures", {})
  if "curves" in figures:
    lines += ["## Curves", "", "Mean over each arm's finished seeds (the evaluation during "
              "training, and each run's final value), the band ± 1 std (where 2 or more "
              "seeds have the step).", "", f"![metrics vs step]({figures['curves']})", ""]
  if "probe" in figures:
    lines += ["Linear probe of D's features (`--mode=probe`):", "",
              f"![probe accuracy vs step]({figures['probe']})", ""]
  if "samples" in figures:
    lines += ["## Samples at the last step", "", "One column per arm, one row per seed.",
              "", f"![samples]({figures['samples']})", ""]
  lines += ["## Runs", "", "| arm | seed | status | step | wall time (runner) | workdir |",
            "|---|---|---|---|---|---|"]
  for name, arm in arms.items():
    for run in arm["runs"].values():
      lines.append(f"| {name} | {run['seed']} | {run['status']} | {run['step']}/"
                   f"{run['total_steps']} | {_wall(run['wall_seconds'])} | "
                   f"`{run['workdir']}` |")
  lines += ["", "Wall time is what the study runner measured (its children's seconds, "
            "`study_log.jsonl`); runs trained elsewhere (`--print_commands`) show —.", ""]
  return "\n".join(lines)


def _comparison_lines(report, metric, heading=True):
  comparisons = report["comparisons"].get(metric, [])
  if not comparisons:
    return []
  lines = ([f"Comparisons on `{metric}`:", ""] if heading else [f"`{metric}`:", ""])
  for c in comparisons:
    a, b = c["arms"]
    lines.append(f"- {a} vs {b}: mean difference {_f(c['difference'])}; {c['text']}.")
  return lines + [""]


def _wall(seconds):
  return "—" if seconds is None else study_runs.duration(seconds)


def _plot_curves(report, path, probe):
  """Metric vs step per arm (mean, ± 1 std band); False if there is nothing to plot."""
  metrics = [m for m in dict.fromkeys(
      m for arm in report["arms"].values() for run in arm["runs"].values()
      for m in run["curves"]) if m.startswith(study_runs.PROBE_PREFIX) == probe]
  if not metrics:
    return False
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  from matplotlib import ticker  # pylint: disable=import-outside-toplevel
  columns = min(3, len(metrics))
  rows = -(-len(metrics) // columns)
  figure, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.4 * rows),
                              squeeze=False)
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for axis, metric in zip(axes.flat, metrics):
    for index, (name, arm) in enumerate(report["arms"].items()):
      by_step = {}
      for run in arm["runs"].values():
        if not run["finished"]:  # The table's seeds only (n as there).
          continue
        for step, value in run["curves"].get(metric, []):
          by_step.setdefault(step, []).append(value)
      if not by_step:
        continue
      steps = sorted(by_step)
      mean = np.array([np.mean(by_step[s]) for s in steps])
      std = np.array([np.std(by_step[s], ddof=1) if len(by_step[s]) > 1 else 0.0
                      for s in steps])
      color = colors[index % len(colors)]
      seeds = max(len(v) for v in by_step.values())
      axis.plot(steps, mean, marker="o", markersize=3, color=color,
                label=f"{name} (n={seeds})")
      axis.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
    axis.set_title(f"{metric}{_arrow(metric)}", fontsize=10)
    axis.set_xlabel("generator step")
    axis.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
  for axis in list(axes.flat)[len(metrics):]:
    axis.set_visible(False)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)
  return True


def _plot_samples(report, path):
  """Each run's last sample grid: columns arms, rows seeds; False if there is none."""
  arms = report["arms"]
  seeds = report["seeds"]
  grids = {(name, seed): arm["runs"][str(seed)]["sample_grid"]
           for name, arm in arms.items() for seed in seeds}
  if not any(grids.values()):
    return False
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  figure, axes = plt.subplots(len(seeds), len(arms), figsize=(2.9 * len(arms),
                                                              3.0 * len(seeds)),
                              squeeze=False)
  for column, (name, arm) in enumerate(arms.items()):
    for row, seed in enumerate(seeds):
      axis = axes[row][column]
      axis.set_xticks([])
      axis.set_yticks([])
      grid = grids[(name, seed)]
      run = arm["runs"][str(seed)]
      if grid is None:
        axis.set_title(f"{name} / seed {seed}: none", fontsize=9)
        continue
      image = plt.imread(grid)
      step = int(study_runs.SAMPLE_GRID.match(os.path.basename(grid)).group(1))
      axis.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1,
                  interpolation="nearest")
      note = "" if run["finished"] else " (unfinished)"
      axis.set_title(f"{name} / seed {seed}, step {step}{note}", fontsize=9)
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)
  return True

"""The files of the research drivers: figures, CSVs and MIDI, from what the library computed.

The library modules compute and return data (``recurrent.gradient_lab.run``,
``recurrent.horizon_sweep.run``, ``recurrent.music_sampling``); this module,
at the edge with the binaries (experiments/gradient_decay.py,
experiments/horizon_sweep.py, experiments/music_generate.py), writes them:
every file atomically (``recurrent.training.reports``), figures drawn with
matplotlib here or by a plot kind of ``recurrent.training.plots``. It also
finds, or makes from the latest checkpoint, the final report of a trained run
for the report binaries (``report_folder``: experiments/captioning_report.py,
experiments/translation_report.py). It defines no flags, so tests call it
directly.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Sequence

import jax
import numpy as np

from recurrent import gradient_lab, horizon_sweep, music_sampling
from recurrent.data.music import DATASETS, NUM_NOTES, load_piano_rolls
from recurrent.data.paths import data_file
from recurrent.layers import make_stack
from recurrent.models import stack_kwargs
from recurrent.tasks import captioning as captioning_task
from recurrent.training import checkpoint, loop, plots, reports

plt = plots.plt  # matplotlib.pyplot, on the Agg backend


def write_config(config, workdir: Path) -> Path:
  """The resolved config as ``workdir/config.json``."""
  return reports.write_text(workdir / "config.json",
                            config.to_json_best_effort(indent=2, sort_keys=True))


# --------------------------------------------------------------------------- reports of trained runs

def report_folder(workdir: str | Path, report: str, latest: bool = False,
                  task_overrides: dict | None = None) -> Path:
  """The folder that holds a run's final ``report`` (a file name, e.g. "translation_report.json").

  The workdir itself when the task wrote the report there at its last step. Otherwise (a run
  stopped early), or with ``latest``, the report is made first from the latest checkpoint:
  ``loop.evaluate`` with ``num_steps`` set to that step (a task writes its full report at
  step == num_steps) and ``task_overrides`` set on ``config.task``, into
  ``loop.evaluation_dir`` (``WORKDIR/evaluate/step_<N>/``), which is returned.
  """
  workdir = Path(workdir)
  if not latest and (workdir / report).is_file():
    return workdir
  steps = checkpoint.saved_steps(workdir / "checkpoints")
  if not steps:
    raise FileNotFoundError(f"workdir: no {report} in {workdir} and no checkpoint in "
                            f"{workdir / 'checkpoints'}")
  config = loop.load_config(workdir)
  config.unlock()
  config.num_steps = steps[-1]
  for field, value in (task_overrides or {}).items():
    config.task[field] = value
  folder = loop.evaluation_dir(workdir, loop.evaluate(config, workdir, "latest")["step"])
  if not (folder / report).is_file():
    raise FileNotFoundError(f"workdir: the report of checkpoint {steps[-1]} in {folder} has no "
                            f"{report} (a run of task {config.task.name!r})")
  return folder


def translation_report(workdirs: Sequence[str | Path], out: str | Path, latest: bool = False,
                       bleu_sentences: int = 0) -> tuple[str, list[Path]]:
  """experiments/translation_report.py: (a Markdown table of BLEU and beam errors, the files written).

  Draws BLEU against source length for every run (greedy dashed, beam solid) into
  ``out/translation_bleu_by_length.png`` and copies each run's first attention heatmap to
  ``out/translation_attention_<attention>.png``. ``bleu_sentences`` > 0: the held-out sentences
  decoded when a report is made from the latest checkpoint (``report_folder``).
  """
  out = Path(out)
  out.mkdir(parents=True, exist_ok=True)
  overrides = {"bleu_sentences": bleu_sentences} if bleu_sentences > 0 else None
  rows = ["| attention | steps | BLEU greedy | BLEU beam | beam errors | search | model |",
          "| --- | --- | --- | --- | --- | --- | --- |"]
  series, written = [], []
  for wd in workdirs:
    src = report_folder(wd, "translation_report.json", latest, overrides)
    r = json.loads((src / "translation_report.json").read_text())
    for kind, style in (("greedy", "--"), ("beam", "-")):
      by_len = r[f"bleu_by_source_length_{kind}"]
      xs = sorted(int(k) for k in by_len)
      series.append({"x": xs, "y": [by_len[str(x)][0] for x in xs], "style": style, "marker": "o",
                     "label": f"{r['attention']} ({kind})"})
    a = r["error_analysis"]
    rows.append(f"| {r['attention']} | {r['step']} | {r['bleu_greedy']:.2f} | {r['bleu_beam']:.2f} | "
                f"{a['errors']} | {a['search_errors']} | {a['model_errors']} |")
    if (src / "attention_0.png").is_file():
      written.append(Path(shutil.copy(src / "attention_0.png",
                                      out / f"translation_attention_{r['attention']}.png")))
  written.append(plots.lines(
      out / "translation_bleu_by_length.png", series, xlabel="source length (word tokens)",
      ylabel="BLEU", title="French to English, held-out sentences, same step budget",
      figsize=(6.5, 3.8), legend="best", legend_size=8, title_size=10, grid=True))
  return "\n".join(rows), written


def captioning_report(workdirs: Sequence[str | Path], out: str | Path, latest: bool = False,
                      canvases: int = 8) -> tuple[str, list[Path]]:
  """experiments/captioning_report.py: (a Markdown table of BLEU, exact match and errors, the files).

  Draws ``canvases`` held-out canvases (rebuilt from the first run's config: they are a pure
  function of it), the first half in order and then ones some model gets wrong, each with the
  reference and every run's greedy caption, into ``out/captioning_captions.png``, and copies
  each attention run's ``attention_words.png`` to ``out/captioning_attention_<attention>.png``.
  """
  out = Path(out)
  out.mkdir(parents=True, exist_ok=True)
  rows = ["| model | steps | BLEU greedy | BLEU beam | exact greedy | exact beam | beam errors "
          "(search / model) | wrong digits / right digits, wrong places (greedy) | attention in "
          "the named digit's cell |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
  runs, written = [], []
  for wd in workdirs:
    src = report_folder(wd, "captioning_report.json", latest)
    r = json.loads((src / "captioning_report.json").read_text())
    runs.append((r, json.loads((src / "captions.json").read_text())))
    a, e = r["error_analysis"], r["errors_greedy"]
    att = r.get("attention_in_named_cell")
    att = f"{att:.3f} (uniform {r['attention_in_named_cell_uniform']:.2f})" if att is not None else "-"
    name = "show and tell (no attention)" if r["attention"] == "none" else f"{r['attention']} soft attention"
    rows.append(f"| {name} | {r['step']} | {r['bleu_greedy']:.2f} | {r['bleu_beam']:.2f} | "
                f"{r['exact_greedy']:.3f} | {r['exact_beam']:.3f} | {a['errors']} ({a['search_errors']} / "
                f"{a['model_errors']}) | {e['wrong_digits']} / {e['right_digits_wrong_places']} | {att} |")
    if (src / "attention_words.png").is_file():
      written.append(Path(shutil.copy(src / "attention_words.png",
                                      out / f"captioning_attention_{r['attention']}.png")))

  config = loop.load_config(Path(workdirs[0]))
  test, _ = captioning_task.test_set(config.task.data_dir, captioning_task.canvas_spec(config.task),
                                     config.task.num_test)
  kept = min(len(c["greedy"]) for _, c in runs)
  refs = runs[0][1]["refs"]
  first = list(range(min(-(-canvases // 2), kept)))
  wrong = [i for i in range(len(first), kept) if any(c["greedy"][i] != refs[i] for _, c in runs)]
  pick = list(dict.fromkeys((first + wrong + list(range(len(first), kept)))[:min(canvases, kept)]))
  captions = []
  for i in pick:
    lines = [f"#{i} ref: {' '.join(refs[i])}"]
    for r, c in runs:
      lines.append(f"{r['attention']} {'=' if c['greedy'][i] == refs[i] else 'x'} "
                   f"{' '.join(c['greedy'][i])}")
    captions.append("\n".join(lines))
  written.append(plots.captioned_images(
      out / "captioning_captions.png", [test["src"][i] for i in pick], captions, cols=4,
      title="held-out canvases (test digits): reference and greedy captions (= exact, x wrong)"))
  return "\n".join(rows), written


# --------------------------------------------------------------------------- the gradient lab

def run_gradient_lab(config, workdir: str | Path, log=print) -> dict:
  """``gradient_lab.run`` with its files: gradient_decay.png, the three CSVs and config.json.

  Returns {"figure": path, "csv": [paths], "table": str, "results": {Arm: dict}}.
  """
  gradient_lab.check_config(config)
  gradient_lab.get_problem(config.task)  # an unknown task fails before the workdir is written
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  write_config(config, workdir)
  out = gradient_lab.run(config, log)
  csvs = [reports.write_csv(workdir / name, header, rows)
          for name, (header, rows) in gradient_lab.csv_tables(config, out["results"]).items()]
  figure = plot_gradient_decay(workdir / "gradient_decay.png", config, out["results"], out["title"])
  return {"figure": figure, "csv": csvs, "table": out["table"], "results": out["results"]}


def plot_gradient_decay(path: Path, config, results: dict, title: str) -> Path:
  """One panel per checkpoint; per arm the median over seeds of ||dL/dh_{T-k}|| / ||dL/dh_T||."""
  steps = list(config.checkpoint_steps)
  fig, axes = plt.subplots(1, len(steps), figsize=(4.2 * len(steps), 3.8), sharey=True,
                           squeeze=False)
  floor = 1e-12
  for c, ax in enumerate(axes[0]):
    for i, (arm, r) in enumerate(results.items()):
      g = r["grad"][c]                                          # [S, K]
      rel = np.clip(g / np.where(g[:, :1] > 0, g[:, :1], np.nan), floor, None)
      k = np.arange(rel.shape[1])
      h = np.median(gradient_lab.horizons(r["grad"][c:c + 1], config.horizon_factor))
      color = f"C{i}"
      with warnings.catch_warnings():          # a diverged arm is all NaN: nothing to draw
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, mid, hi = np.nanmin(rel, 0), np.nanmedian(rel, 0), np.nanmax(rel, 0)
      ax.fill_between(k, lo, hi, color=color, alpha=0.2, lw=0)
      ax.plot(k, mid, color=color,
              label=f"{arm.label}: horizon {gradient_lab.format_horizon(h, len(k))}")
    k = np.arange(results[next(iter(results))]["grad"].shape[-1])
    ax.plot(k, 0.9 ** k, ":", color="grey", lw=1, label="0.9^k" if c == 0 else None)
    ax.plot(k, 1.1 ** k, "-.", color="grey", lw=1, label="1.1^k" if c == 0 else None)
    ax.axhline(1.0 / config.horizon_factor, color="black", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_ylim(1e-9, 1e4)
    ax.set_xlim(0, k[-1])
    ax.set_xlabel("distance k back from the last step")
    ax.set_title("initialisation" if steps[c] == 0 else f"after {steps[c]} steps")
    ax.legend(fontsize=7, loc="lower left")
  axes[0, 0].set_ylabel("||dL/dh_(T-k)|| / ||dL/dh_T||")
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  return plots.save(fig, path, 90)


# --------------------------------------------------------------------------- the horizon sweep

def run_horizon_sweep(config, workdir: str | Path, log=print,
                      train=gradient_lab.train_arm) -> dict:
  """``horizon_sweep.run`` with its files: sweep.csv, the figures per task and config.json.

  Returns {"rows": [...], "figures": [paths], "tables": {task: str}, "results": {...}}.
  """
  horizon_sweep.check_config(config)
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  write_config(config, workdir)
  out = horizon_sweep.run(config, log, train)
  rows = out["rows"]
  reports.write_csv(workdir / "sweep.csv", list(rows[0]), [list(r.values()) for r in rows])
  figures = []
  for task in config.tasks:
    figures.append(plot_horizon_sweep(workdir / f"horizon_sweep_{task}.png", config, task,
                                      out["results"]))
    linear = [c for c in config.cells if horizon_sweep.is_linear(c)]
    if linear:
      figures.append(plot_diagonal_decay(workdir / f"diagonal_decay_{task}.png", config, task,
                                         linear, out["results"]))
  return {**out, "figures": figures}


def _band(values_TS: np.ndarray):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    return np.nanmin(values_TS, 1), np.nanmedian(values_TS, 1), np.nanmax(values_TS, 1)


STYLES = ("-", "--", ":", "-.")


def plot_horizon_sweep(path: Path, config, task: str, results: dict) -> Path:
  """Four panels against T, one line per cell: median over seeds, band min-max."""
  Ts = np.array(config.delays, np.float64)
  xs = np.log2(Ts)                                  # T on a log axis, drawn linearly in log2 T
  fig, axes = plt.subplots(1, 4, figsize=(19, 4.6))
  panels = (("loss_ratio", "held-out loss / baseline (1 = nothing learned)"),
            ("steps_to_learn", f"steps to loss <= {config.learned_fraction:g} x baseline"),
            ("horizon_init", "gradient horizon at initialisation"),
            ("horizon_end", f"gradient horizon after {config.num_steps} steps"))
  for ax, (key, title) in zip(axes, panels):
    for i, spec in enumerate(config.cells):
      v_TS = np.stack([results[(task, T, spec)][key] for T in config.delays]).astype(np.float64)
      if key.startswith("horizon"):
        v_TS = np.clip(v_TS, 1.0, Ts[:, None])             # inf: beyond T, drawn at T
      lo, mid, hi = _band(v_TS)
      color, style = f"C{i % 10}", STYLES[i // 10 % len(STYLES)]
      ax.fill_between(xs, lo, hi, color=color, alpha=0.12, lw=0)
      ax.plot(xs, mid, style, color=color, marker="o", ms=3, label=spec)
    if key.startswith("horizon"):
      ax.plot(xs, Ts, color="black", lw=0.8, ls=":", label="T (beyond: capped)")
      ax.set_yscale("log")
      ax.set_ylim(1, Ts[-1] * 1.5)
    if key == "loss_ratio":
      ax.axhline(1.0, color="black", lw=0.8, ls=":")
      ax.axhline(config.learned_fraction, color="grey", lw=0.8, ls="--")
      ax.set_yscale("log")
      ax.set_ylim(1e-3, 3)
    if key == "steps_to_learn":
      ax.set_ylim(0, config.num_steps * 1.05)
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{int(t)}" for t in Ts])
    ax.set_xlabel("T (delay)")
    ax.set_title(title, fontsize=9)
  axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
  fig.suptitle(f"{task}: {config.num_seeds} seeds per point, {config.num_steps} steps, hidden "
               f"{tuple(config.hidden_sizes)}; median, band min-max; missing point = never learned",
               fontsize=10)
  fig.tight_layout()
  return plots.save(fig, path, 80)


def plot_diagonal_decay(path: Path, config, task: str, cells, results: dict) -> Path:
  """log10 prod |a| against distance for the linear cells at the longest T, init and end."""
  T = config.delays[-1]
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
  for c, (ax, when) in enumerate(zip(axes, ("initialisation", f"after {config.num_steps} steps"))):
    for i, spec in enumerate(cells):
      d = results[(task, T, spec)].get("decay")
      if d is None:
        continue
      d_S2K = d[c]
      k = np.arange(d_S2K.shape[-1])
      ax.plot(k, np.median(d_S2K[:, 0], 0), color=f"C{i}", label=f"{spec}: median unit")
      ax.plot(k, np.median(d_S2K[:, 1], 0), color=f"C{i}", ls="--", label=f"{spec}: 90th pct")
    ax.axhline(-np.log10(config.horizon_factor), color="black", lw=0.8, ls=":")
    ax.set_xlabel("distance k back from the last step")
    ax.set_title(f"{task}, T = {T}, {when}", fontsize=9)
  axes[0].set_ylabel("log10 |dh_T / dh_(T-k)| per unit (diagonal)")
  axes[0].set_ylim(-12, 0.5)
  axes[1].legend(fontsize=7)
  fig.tight_layout()
  return plots.save(fig, path, 80)


# --------------------------------------------------------------------------- music sampling

def write_midi(path: str | Path, roll_TN: np.ndarray, ticks: int = 480, velocity: int = 80) -> Path:
  """A binary piano roll as a format-0 Standard MIDI File (``music_sampling.midi_bytes``)."""
  return reports.write_bytes(path, music_sampling.midi_bytes(roll_TN, ticks, velocity))


def plot_rolls(rolls: list[np.ndarray], titles: list[str], path: str | Path) -> Path:
  """Sampled piano rolls, one panel each (MIDI pitch up, time to the right)."""
  return plots.piano_roll(path, rolls, titles)


def music_samples(workdir: str | Path, checkpoint: str = "best", steps: int = 64, samples: int = 2,
                  prime_steps: int = 16, seed: int = 0) -> tuple[int, list[np.ndarray], list[Path]]:
  """(checkpoint step, rolls, files written): piano rolls sampled from a configs/music.py run.

  ``samples`` rolls from scratch (the first input is the silent frame) and as many continuing the
  first ``prime_steps`` steps of test piece 0 (included in those files), each ``steps`` long, as
  MIDI files and one figure in ``<workdir>/generated``; ``rolls[k]`` [T, 88] is the roll of
  ``files[k]`` (sample_0, primed_0, sample_1, ...). The stack is rebuilt from the run's config as
  the task built it (``models.stack_kwargs``: highway, param_dtype, ... included).
  """
  workdir = Path(workdir)
  config = loop.load_config(workdir)
  step, params = loop.restore_params(config, workdir, checkpoint)
  m = config.model
  stack = make_stack(m.cell, NUM_NOTES, tuple(m.hidden_sizes), **stack_kwargs(m))
  prime = load_piano_rolls(data_file(config.task.data_dir, DATASETS[config.task.dataset]))["test"][0]
  prime = prime[:prime_steps].astype(np.float32)
  key = jax.random.key(seed)
  scratch, _ = music_sampling.sample_rolls(stack, params, jax.random.fold_in(key, 0), steps, samples)
  primed, _ = music_sampling.sample_rolls(stack, params, jax.random.fold_in(key, 1), steps, samples,
                                          prime_TN=prime)
  out = workdir / "generated"
  out.mkdir(exist_ok=True)
  rolls, titles, written = [], [], []
  for i in range(samples):
    a = np.asarray(scratch[i])
    b = np.concatenate([prime, np.asarray(primed[i])])
    written += [write_midi(out / f"sample_{i}.mid", a), write_midi(out / f"primed_{i}.mid", b)]
    rolls += [a, b]
    titles += [f"sample {i} from scratch ({config.task.dataset}, step {step})",
               f"primed {i}: test piece 0's first {len(prime)} steps, then sampled"]
  written.append(plot_rolls(rolls, titles, out / "piano_rolls.png"))
  return step, rolls, written

"""Reports as data: only recurrent/training/ writes files or plots; each plot kind draws a PNG.

The layout rule (issue 14.3) is checked on the source: an AST walk over
recurrent/** finds every matplotlib import and every file opened for writing
(``open(..., "w"/"a"/"x"/"+")``, ``Path.write_text/write_bytes``,
``savefig``); outside recurrent/training/ there must be none.
"""

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from recurrent.tasks.base import Figure, Log, Report
from recurrent.training import plots, reports

ROOT = Path(__file__).resolve().parents[1] / "recurrent"
PNG = b"\x89PNG\r\n\x1a\n"


WRITERS = ("write_text", "write_bytes", "savefig", "imsave", "mkdir", "makedirs", "touch",
           "urlretrieve", "copyfile", "copy2", "copytree", "tofile")
# module.function calls that write (np.save, json.dump, os.replace, shutil.move, ...)
MODULE_WRITERS = {"np": ("save", "savez", "savez_compressed"), "numpy": ("save", "savez"),
                  "json": ("dump",), "pickle": ("dump",), "os": ("rename", "replace"),
                  "shutil": ("move", "copy")}


def _writes_and_plots(tree: ast.AST) -> list[tuple[int, str]]:
  """(line, what) of every matplotlib import and file write in a module's AST."""
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found += [(node.lineno, f"import {a.name}") for a in node.names
                if a.name.split(".")[0] == "matplotlib"]
    elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "matplotlib":
      found.append((node.lineno, f"from {node.module} import"))
    elif isinstance(node, ast.Call):
      f = node.func
      name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
      module = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
      if name in WRITERS or name in MODULE_WRITERS.get(module, ()):
        found.append((node.lineno, f"{name}(...)"))
      elif name == "open":
        mode = node.args[1] if len(node.args) > 1 else next(
            (k.value for k in node.keywords if k.arg == "mode"), None)
        if mode is not None and (not isinstance(mode, ast.Constant) or
                                 any(c in str(mode.value) for c in "wax+")):
          found.append((node.lineno, f"open(..., {ast.unparse(mode)})"))
  return sorted(found)


def test_the_checker_finds_writes_and_plots():
  src = """
import matplotlib.pyplot as plt
from matplotlib import cm
import os
with open(p, "w") as f: pass
open(p, mode="ab")
open(p)
open(p, "rb")
Path(p).write_text("x")
fig.savefig(p)
s.replace("a", "b")
np.save(p, x)
json.dump(d, f)
"""
  found = [what for _, what in _writes_and_plots(ast.parse(src))]
  assert found == ["import matplotlib.pyplot", "from matplotlib import", "open(..., 'w')",
                   "open(..., 'ab')", "write_text(...)", "savefig(...)", "save(...)",
                   "dump(...)"]


def test_only_training_writes_files_or_plots():
  bad = []
  for path in sorted(ROOT.rglob("*.py")):
    rel = path.relative_to(ROOT.parent)
    if rel.parts[:2] == ("recurrent", "training"):
      continue
    bad += [f"{rel}:{line}: {what}" for line, what in _writes_and_plots(ast.parse(path.read_text()))]
  assert not bad, "files written or plotted outside recurrent/training/:\n" + "\n".join(bad)


# --------------------------------------------------------------------------- one test per kind

T, M, U = 120, 8, 30
rng = np.random.default_rng(0)
FIGURES = {
    "lines": {"series": [{"y": np.sin(np.arange(20.0)), "label": "actual"},
                         {"y": np.cos(np.arange(20.0)), "style": "--", "marker": "o",
                          "label": "prediction"}],
              "xlabel": "i", "ylabel": "y", "title": "two curves", "grid": True, "legend_size": 8},
    "heatmap": {"weights": rng.random((3, 4)), "x_labels": list("abcd"), "y_labels": list("xyz"),
                "vmax": 1.0, "title": "alignment"},
    "spectrogram_track": {"spec_TM": rng.standard_normal((T, M)), "track_t": np.arange(U) * 0.04,
                          "curves": [{"y": rng.random(U), "label": "p"}],
                          "fill": {"y": (np.arange(U) > 20).astype(float), "label": "target"},
                          "hline": 0.5, "spec_marks_s": [0.9], "track_marks_s": [1.0],
                          "texts": [(0.5, 1.03, "7")], "ylim": (0, 1.12)},
    "piano_roll": {"rolls": [rng.random((16, 88)) > 0.9, rng.random((16, 88))],
                   "titles": ["notes", ""], "crop": True, "colorbar": True, "sharex": True},
    "attention_grid": {"images": [rng.integers(0, 255, (28, 56))] * 2,
                       "weights": [rng.random((2, 8)), rng.random((3, 8))],
                       "words": [["one", "<eos>"], ["two", "three", "<eos>"]],
                       "row_titles": ["right", "wrong; ref:\none"], "grid": (2, 4), "title": "t"},
    "bars": {"groups": ["lstm", "gru"], "series": [{"label": "a", "values": [[0.8, 0.82, 0.81], [0.7]]},
                                                    {"label": "b", "values": [[], [0.5, 0.6]]}],
             "ylabel": "accuracy", "ylim": (0, 1)},
    "captioned_images": {"images": [rng.integers(0, 255, (28, 56))] * 3,
                         "captions": ["#0 ref: one\nbahdanau = one", "#1", "#2 ref: two\nnone x"],
                         "cols": 2, "title": "t"},
}


def test_every_kind_has_a_test():
  assert set(FIGURES) == set(plots.KINDS)


@pytest.mark.parametrize("kind", sorted(FIGURES))
def test_each_kind_writes_a_png_from_a_tiny_description(kind, tmp_path):
  path = plots.draw(Figure(kind, FIGURES[kind]), tmp_path / f"{kind}.png")
  assert path == tmp_path / f"{kind}.png" and path.read_bytes()[:8] == PNG
  assert [p.name for p in tmp_path.iterdir()] == [f"{kind}.png"]  # no temporary file left


def test_captioned_images_need_one_caption_per_image(tmp_path):
  with pytest.raises(ValueError, match=r"^captions: expected one caption per image .* got 1 captions "
                                       r"for 2 images"):
    plots.captioned_images(tmp_path / "c.png", [np.zeros((4, 4))] * 2, ["one"])
  assert not list(tmp_path.iterdir())


def test_write_puts_every_file_in_the_workdir_and_appends_logs(tmp_path):
  report = Report(scalars={"x": 1.0}, texts={"samples.txt": "a\nb\n"},
                  json={"r.json": {"bleu": 3.5, "by_length": {4: [1.0, 2]}}},
                  logs={"log.txt": Log("step 1\n", header="header\n")},
                  figures={"f.png": Figure("lines", FIGURES["lines"])})
  reports.write(report, tmp_path / "run")
  reports.write(Report(logs={"log.txt": Log("step 2\n", header="header\n")}), tmp_path / "run")
  run = tmp_path / "run"
  assert sorted(p.name for p in run.iterdir()) == ["f.png", "log.txt", "r.json", "samples.txt"]
  assert (run / "samples.txt").read_text() == "a\nb\n"
  assert json.loads((run / "r.json").read_text()) == {"bleu": 3.5, "by_length": {"4": [1.0, 2]}}
  assert (run / "log.txt").read_text() == "header\nstep 1\nstep 2\n"
  assert (run / "f.png").read_bytes()[:8] == PNG


def test_bad_reports_fail_naming_the_problem(tmp_path):
  with pytest.raises(TypeError, match="must return a recurrent.tasks.base.Report, got dict"):
    reports.write({"loss": 1.0}, tmp_path)
  with pytest.raises(ValueError, match="plain names"):
    reports.write(Report(texts={"../escape.txt": "x"}), tmp_path)
  with pytest.raises(ValueError, match="end in .png"):
    reports.write(Report(figures={"f.pdf": Figure("lines", FIGURES["lines"])}), tmp_path)
  with pytest.raises(ValueError, match="given twice"):
    reports.write(Report(texts={"a.txt": ""}, json={"a.txt": {}}), tmp_path)
  with pytest.raises(ValueError, match=r"unknown plot kind 'pie'; valid kinds are \['attention_grid'"):
    plots.draw(Figure("pie", {}), tmp_path / "f.png")
  assert not list(tmp_path.iterdir())


def test_a_failed_figure_leaves_the_old_file(tmp_path):
  path = tmp_path / "f.png"
  path.write_bytes(b"old")
  with pytest.raises(TypeError):
    plots.draw(Figure("lines", {"series": [{"y": np.arange(3.0)}], "not_an_argument": 1}), path)
  with pytest.raises(Exception):
    plots.draw(Figure("heatmap", {"weights": np.zeros((2, 2)), "y_labels": ["a", "b"],
                                  "figsize": "big"}), path)
  assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.png"]


def test_tasks_and_data_do_not_import_training():
  """The interface runs one way: training imports tasks (registry and base), never the reverse."""
  bad = []
  for folder in ("tasks", "data"):
    for path in sorted((ROOT / folder).rglob("*.py")):
      for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        bad += [f"{path.relative_to(ROOT.parent)}:{node.lineno}: {n}" for n in names
                if n.startswith("recurrent.training")]
  assert not bad, "\n".join(bad)

"""Figures drawn from their descriptions: one function per plot kind, ``draw(figure, path)``.

A task describes a figure as data (``recurrent.tasks.base.Figure``: a kind
and the arrays, labels and title it needs); this module is the only one of
the library that imports matplotlib. The kinds are the few the tasks use:

  lines              curves over a shared x axis (sine predictions)
  heatmap            a matrix with labelled rows (and columns or a time axis):
                     attention alignments of translation and speech
  spectrogram_track  a log-mel spectrogram over a panel of per-frame curves with
                     marks (CTC posteriors, trigger-word output and detections)
  piano_roll         stacked [T, notes] panels in [0, 1] (true notes, p(note), samples)
  attention_grid     images, each followed by its attention map per emitted word
                     (image captioning)
  bars               grouped bars, mean with a ± std error bar and each seed as a dot
                     (several seeds per model and setting: sequential MNIST)
  captioned_images   a grid of images, each with lines of text under it (captions
                     of several models, experiments/captioning_report.py)

Each writes a PNG atomically (a temporary file in the same folder, then a
rename), so a reader never sees half a figure; ``save`` does the same for a
figure built elsewhere (experiments/).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

LOWEST_MIDI = 21  # MIDI pitch of piano key 0 (A0)


def save(fig, path: str | os.PathLike, dpi: int) -> Path:
  """Writes ``fig`` as a PNG to ``path`` atomically and closes it."""
  path = Path(path)
  tmp = path.with_name(f".{path.name}.tmp")
  try:
    fig.savefig(tmp, dpi=dpi, format="png")
    os.replace(tmp, path)
  finally:
    plt.close(fig)
    tmp.unlink(missing_ok=True)
  return path


def lines(path, series: Sequence[Mapping[str, Any]], title: str = "", xlabel: str = "",
          ylabel: str = "", figsize=(7, 3.5), dpi: int = 100, legend: str = "upper right",
          legend_size: float | None = None, title_size: float | None = None,
          grid: bool = False) -> Path:
  """Curves over x: each of ``series`` is {"y", optional "x", "style", "marker", "label"}."""
  fig, ax = plt.subplots(figsize=figsize)
  for s in series:
    y = np.asarray(s["y"])
    x = np.arange(len(y)) if s.get("x") is None else np.asarray(s["x"])
    ax.plot(x, y, s.get("style", "-"), marker=s.get("marker"), label=s.get("label"))
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title, **({} if title_size is None else {"fontsize": title_size}))
  if any(s.get("label") for s in series):
    ax.legend(loc=legend, **({} if legend_size is None else {"fontsize": legend_size}))
  if grid:
    ax.grid(alpha=0.3)
  fig.tight_layout()
  return save(fig, path, dpi)


def heatmap(path, weights: np.ndarray, y_labels: Sequence[str], x_labels: Sequence[str] | None = None,
            seconds: float | None = None, title: str = "", xlabel: str = "", ylabel: str = "",
            vmax: float | None = None, figsize=None, title_size: int = 9, dpi: int = 90) -> Path:
  """``weights`` [rows, cols] in gray (dark = large): rows named by ``y_labels``; columns named by
  ``x_labels``, or spanning ``seconds`` of time when those are not given."""
  weights = np.asarray(weights)
  if figsize is None:
    figsize = (0.45 * len(x_labels) + 1.8, 0.4 * len(y_labels) + 1.4) if x_labels is not None \
        else (10, 0.35 * len(y_labels) + 1.8)
  fig, ax = plt.subplots(figsize=figsize)
  extent = None if seconds is None else (0, seconds, len(y_labels) - 0.5, -0.5)
  ax.imshow(weights, cmap="gray_r", vmin=0.0, vmax=vmax, aspect="auto", extent=extent)
  if x_labels is not None:
    ax.set_xticks(range(len(x_labels)), x_labels, rotation=60, ha="right")
  ax.set_yticks(range(len(y_labels)), y_labels)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=title_size)
  fig.tight_layout()
  return save(fig, path, dpi)


def spectrogram_track(path, spec_TM: np.ndarray, track_t: np.ndarray,
                      curves: Sequence[Mapping[str, Any]], spec_title: str = "",
                      track_ylabel: str = "", ylim=(0.0, 1.0), spec_marks_s: Sequence[float] = (),
                      fill: Mapping[str, Any] | None = None, hline: float | None = None,
                      track_marks_s: Sequence[float] = (), texts: Sequence[tuple] = (),
                      track_title: str | None = None, figsize=(10, 5.5), dpi: int = 90) -> Path:
  """A log-mel spectrogram (100 frames/s) above per-frame curves on the time axis ``track_t`` (s).

  ``curves``: {"y", optional "label", "color", "lw"}; ``fill``: {"y", "label"}, a step-filled
  target under the curves; ``hline``: a dotted threshold; ``spec_marks_s`` (cyan) and
  ``track_marks_s`` (red dashes) mark times; ``texts``: (t, y, string) written in red.
  """
  spec_TM = np.asarray(spec_TM)
  fig, (a0, a1) = plt.subplots(2, 1, figsize=figsize, sharex=True)
  T = spec_TM.shape[0]
  a0.imshow(spec_TM.T, origin="lower", aspect="auto", cmap="magma",
            extent=(0, T / 100, 0, spec_TM.shape[1]))
  a0.set_ylabel("mel band")
  for t in spec_marks_s:
    a0.axvline(t, color="c", lw=1)
  a0.set_title(spec_title, fontsize=10)
  if fill is not None:
    a1.fill_between(track_t, 0, fill["y"], step="pre", color="C2", alpha=0.3, label=fill.get("label"))
  for c in curves:
    kw = {k: c[k] for k in ("color", "label") if c.get(k) is not None}
    a1.plot(track_t, c["y"], lw=c.get("lw", 1.2), **kw)
  if hline is not None:
    a1.axhline(hline, color="0.5", ls=":", lw=1)
  for t in track_marks_s:
    a1.axvline(t, color="C3", lw=1, ls="--")
  for t, y, s in texts:
    a1.text(t, y, s, ha="center", fontsize=10, color="C3")
  a1.set_ylim(*ylim)
  a1.set_xlabel("time (s)")
  a1.set_ylabel(track_ylabel)
  a1.legend(loc="upper right", fontsize=8)
  if track_title:
    a1.set_title(track_title, fontsize=10)
  fig.tight_layout()
  return save(fig, path, dpi)


def piano_roll(path, rolls: Sequence[np.ndarray], titles: Sequence[str] = (),
               ylabels: Sequence[str] = (), cmap: str = "Greys", crop: bool = False,
               colorbar: bool = False, title_size: int | None = 9, panel_height: float = 2.2,
               sharex: bool = False, dpi: int = 80) -> Path:
  """[T, notes] panels in [0, 1] stacked on one time axis, MIDI pitch up.

  ``crop`` keeps the pitches where any panel has a value above 0.05 (all notes when none);
  ``colorbar`` draws one bar for all panels (then the layout is not tightened, as matplotlib
  cannot place both).
  """
  rolls = [np.asarray(r) for r in rolls]
  lo, hi = 0, rolls[0].shape[1]
  if crop:
    active = np.flatnonzero(np.any([(r > 0.05).any(0) for r in rolls], 0))
    lo, hi = (active.min(), active.max() + 1) if active.size else (lo, hi)
  fig, axes = plt.subplots(len(rolls), 1, figsize=(9, panel_height * len(rolls)), squeeze=False,
                           sharex=sharex)
  for i, (ax, roll) in enumerate(zip(axes[:, 0], rolls)):
    im = ax.imshow(roll[:, lo:hi].T, origin="lower", aspect="auto", cmap=cmap, vmin=0, vmax=1,
                   extent=(0, len(roll), lo + LOWEST_MIDI - 0.5, hi + LOWEST_MIDI - 0.5))
    ax.set_ylabel(ylabels[i] if i < len(ylabels) else "MIDI pitch")
    if i < len(titles) and titles[i]:
      ax.set_title(titles[i], **({} if title_size is None else {"fontsize": title_size}))
  axes[-1, 0].set_xlabel("time step (quarter notes)")
  if colorbar:
    fig.colorbar(im, ax=axes[:, 0], shrink=0.8)
  else:
    fig.tight_layout()
  return save(fig, path, dpi)


def attention_grid(path, images: Sequence[np.ndarray], weights: Sequence[np.ndarray],
                   words: Sequence[Sequence[str]], row_titles: Sequence[str],
                   grid: tuple[int, int], title: str = "", dpi: int = 100) -> Path:
  """One row per image: the image (titled ``row_titles``), then for each of its ``words`` the
  attention ``weights`` [words, regions] over a ``grid`` of regions, upsampled over the image."""
  n_cols = 1 + max(len(w) for w in words)
  H, W = np.asarray(images[0]).shape
  fig, axes = plt.subplots(len(images), n_cols, figsize=(1.25 * n_cols * W / H + 0.3,
                                                          1.45 * len(images) + 0.4), squeeze=False)
  for i, (img, w_TR, row_words, row_title) in enumerate(zip(images, weights, words, row_titles)):
    ax = axes[i, 0]
    ax.imshow(img, cmap="gray_r", vmin=0, vmax=255)
    ax.set_title(row_title, fontsize=6)
    for j in range(1, n_cols):
      ax = axes[i, j]
      ax.axis("off")
      if j - 1 >= len(row_words):
        continue
      a = np.asarray(w_TR[j - 1]).reshape(grid)
      up = np.kron(a, np.ones((H // grid[0], W // grid[1])))
      ax.imshow(img, cmap="gray", vmin=0, vmax=255)
      ax.imshow(up, cmap="magma", alpha=0.6, vmin=0, vmax=max(float(a.max()), 1e-6))
      ax.set_title(row_words[j - 1], fontsize=8)
    axes[i, 0].set_xticks([])
    axes[i, 0].set_yticks([])
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  return save(fig, path, dpi)


def bars(path, groups: Sequence[str], series: Sequence[Mapping[str, Any]], title: str = "",
         ylabel: str = "", ylim=None, figsize=(9, 3.8), dpi: int = 100) -> Path:
  """Grouped bars: one group per name in ``groups``, one bar per series in each.

  Each of ``series`` is {"label", "values"}: ``values[g]`` is the sequence of
  one group's observations (one per seed; empty: no bar). A bar is their mean,
  its error bar the sample standard deviation (n - 1; none for one value), and
  every observation is drawn as a dot on it.
  """
  fig, ax = plt.subplots(figsize=figsize)
  width = 0.8 / max(len(series), 1)
  for i, s in enumerate(series):
    x0 = np.arange(len(groups)) - 0.4 + (i + 0.5) * width
    means = [np.mean(v) if len(v) else np.nan for v in s["values"]]
    stds = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in s["values"]]
    ax.bar(x0, means, width * 0.9, yerr=stds, capsize=2, label=s.get("label"))
    for x, v in zip(x0, s["values"]):
      ax.plot([x] * len(v), v, ".", color="black", markersize=3)
  ax.set_xticks(np.arange(len(groups)), groups)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  if ylim is not None:
    ax.set_ylim(*ylim)
  if any(s.get("label") for s in series):
    ax.legend(fontsize=8)
  ax.grid(axis="y", alpha=0.3)
  fig.tight_layout()
  return save(fig, path, dpi)


def captioned_images(path, images: Sequence[np.ndarray], captions: Sequence[str], cols: int = 4,
                     title: str = "", caption_size: float = 6.5, cell_size=(3.6, 3.3),
                     dpi: int = 100) -> Path:
  """Gray images (0..255, dark = high) in a grid of ``cols`` columns, each with its caption (lines
  of text, left-aligned) under it."""
  n = len(images)
  if n == 0 or len(captions) != n:
    raise ValueError(f"captions: expected one caption per image (at least one), got {len(captions)} "
                     f"captions for {n} images")
  rows = -(-n // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(cell_size[0] * cols, cell_size[1] * rows),
                           squeeze=False)
  for k in range(rows * cols):
    ax = axes[k // cols, k % cols]
    ax.set_xticks([])
    ax.set_yticks([])
    if k >= n:
      ax.axis("off")
      continue
    ax.imshow(images[k], cmap="gray_r", vmin=0, vmax=255)
    ax.set_xlabel(captions[k], fontsize=caption_size, loc="left")
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  return save(fig, path, dpi)


KINDS: dict[str, Callable[..., Path]] = {
    "lines": lines, "heatmap": heatmap, "spectrogram_track": spectrogram_track,
    "piano_roll": piano_roll, "attention_grid": attention_grid,
    "captioned_images": captioned_images, "bars": bars}


def draw(figure, path: str | os.PathLike) -> Path:
  """Draws a ``Figure`` (kind + data) to the PNG ``path``; an unknown kind fails listing the valid ones."""
  if figure.kind not in KINDS:
    raise ValueError(f"figure {Path(path).name}: unknown plot kind {figure.kind!r}; valid kinds are "
                     f"{sorted(KINDS)}")
  return KINDS[figure.kind](path, **figure.data)

"""Event-level scoring of a per-frame detector: detections, matching, precision/recall/F1, latency.

A detection is a run of frames whose probability is at least ``threshold``;
runs separated by fewer than ``merge_gap`` frames count as one, and the
detection time is the end time of the run's first frame. A true event (the
end of a trigger word, in seconds) and a detection match when

    event - tolerance <= detection <= event + window + tolerance

(``window`` the span after the word where the target is 1). Matching is
one-to-one and greedy in time order. Precision = matched / detections,
recall = matched / events, F1 their harmonic mean; latency = detection -
event over the matches; false alarms per minute = unmatched detections per
minute of audio.
"""

from __future__ import annotations

import numpy as np


def detections(prob_U: np.ndarray, threshold: float, merge_gap: int, frame_s: float) -> list[float]:
  """Detection times (s) of one clip's per-frame probabilities (output u ends at (u + 1) frame_s)."""
  on = np.asarray(prob_U) >= threshold
  times, last_on = [], -10 ** 9
  for u in np.nonzero(on)[0]:
    if u - last_on > merge_gap:
      times.append((u + 1) * frame_s)
    last_on = u
  return times


def match(events: list[float], dets: list[float], window: float, tolerance: float
          ) -> list[tuple[float, float]]:
  """Greedy one-to-one (event, detection) pairs, each event taking the earliest free detection in range."""
  pairs, used = [], set()
  for e in sorted(events):
    for i, d in enumerate(dets):
      if i not in used and e - tolerance <= d <= e + window + tolerance:
        pairs.append((e, d))
        used.add(i)
        break
  return pairs


def score(events: list[list[float]], dets: list[list[float]], seconds: float, window: float,
          tolerance: float) -> dict:
  """Totals over clips: precision, recall, F1, false alarms per minute, mean/median latency (s)."""
  n_events = sum(len(e) for e in events)
  n_dets = sum(len(d) for d in dets)
  pairs = [p for e, d in zip(events, dets) for p in match(e, d, window, tolerance)]
  tp = len(pairs)
  precision = tp / n_dets if n_dets else 1.0
  recall = tp / n_events if n_events else 1.0
  f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
  lat = np.array([d - e for e, d in pairs])
  return {"precision": precision, "recall": recall, "f1": f1, "events": n_events,
          "detections": n_dets, "false_alarms_per_min": (n_dets - tp) / (seconds / 60.0),
          "latency_mean_s": float(lat.mean()) if tp else float("nan"),
          "latency_median_s": float(np.median(lat)) if tp else float("nan")}

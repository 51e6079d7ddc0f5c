"""The speed benchmark's library: training-step builders for every implementation and the timer.

``experiments/benchmark.py`` is the binary; ``configs/benchmark.py`` its config.
"""

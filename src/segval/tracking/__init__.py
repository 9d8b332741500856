"""Experiment tracking: the W&B run lifecycle of a job (:mod:`.run`) and the offline-run reader (:mod:`.offline`)."""

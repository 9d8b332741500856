"""Experiments across runs: find run directories (:mod:`~segval.experiments.runs`), compare them per dataset
version / split / dataset over seeds (:mod:`~segval.experiments.compare`) and gate a release on a policy
(:mod:`~segval.experiments.gate`)."""

"""The relabel loop: a ranked queue from the findings, SAM 2 proposals, Label Studio / CVAT exports,
and corrections imported back as a new dataset version.

Modules (one concept each): :mod:`~segval.relabel.scoring` (pure ranking), :mod:`~segval.relabel.evidence`
(model-free evidence), :mod:`~segval.relabel.queue`, :mod:`~segval.relabel.sam2_backend`,
:mod:`~segval.relabel.embeddings`, :mod:`~segval.relabel.proposals`, :mod:`~segval.relabel.video`,
:mod:`~segval.relabel.labelstudio`, :mod:`~segval.relabel.cvat`,
:mod:`~segval.relabel.import_back`, :mod:`~segval.relabel.pilot` (the guideline pilot: Label Studio / CVAT tasks
for M annotators and their agreement).
"""

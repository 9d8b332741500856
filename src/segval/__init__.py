"""segval: validate robotics segmentation datasets by training on them.

Dependency rule (``tests/test_dependencies.py`` walks every import, those inside functions included)::

    dataset  <-  metrics  <-  models, datamodules  <-  analysis, qa, relabel, release, experiments  <-  commands

* ``dataset`` (the package format) imports no other segval package; ``metrics`` imports only ``dataset``.
* The middle layer has an order too, so it has no cycle:
  ``tracking, report < qa < analysis < release < relabel, experiments, callbacks`` (``tracking`` beside
  ``models``; ``report`` renders plain data and imports only ``dataset`` and ``metrics``).
* ``demo`` (pybullet) is imported only by ``commands``; nothing imports ``commands`` or ``cli``.
* ``errors`` and ``io`` are below everything (``io`` raises ``errors``' OutputError).

The README's "Code map" says what each package holds.
"""

__version__ = "0.1.0"

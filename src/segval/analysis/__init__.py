"""Why weak classes are weak: the diagnosis (:mod:`.diagnosis`, ``findings.json``), class statistics of the
training data (:mod:`.class_stats`) and the per-class domain gap between two evaluations (:mod:`.domain_gap`)."""

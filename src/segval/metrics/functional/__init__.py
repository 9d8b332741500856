"""Pure functions of the metrics (tensors or arrays in, figures out; no state): :mod:`.semantic`,
:mod:`.boundary`, :mod:`.panoptic`, :mod:`.instance`, :mod:`.label_quality`."""

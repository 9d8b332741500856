"""Lightning callbacks, one YAML each under ``conf/callbacks/``: the analysis files written at each validation
(:mod:`.analysis`: boundary IoU, ``per_image.csv``, the class table), the confusion-matrix files
(:mod:`.confusion`) and the progress bar over ``max_steps`` (:mod:`.progress`)."""

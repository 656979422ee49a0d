"""What every trial and command shares, whichever method it runs.

============== ===================================================================
module         what it holds
============== ===================================================================
``files``      atomic writes (temporary name, then rename) for every file we write
``seeds``      seeds derived from ``(seed, purpose, ...)``: no RNG state across cycles
``tensors``    state dicts as bytes (they travel to Ray workers), gradient averaging
``samples``    a dataset config -> an opened split -> one image with its target
``counting``   whole-image counting with a density network, MAE and RMSE
``execution``  one switch for "in this process or on Ray": Ray start, Train loops, Data maps
``skeleton``   the trial skeleton both methods use (resume, checkpoint, rows, report, failure)
``results``    the results schema: rows -> Parquet, the code version
``weights``    weight files: ImageNet VGG16, CSRNet-pytorch, CSS-CCNN reference, ours
``finite``     a NaN/inf training loss as one error naming trial, cycle/stage, epoch, lr
``cache``      results computed once per sweep and shared by its trials (pretraining)
============== ===================================================================

Nothing here knows AL-AC or CSS-CCNN; :mod:`orchestrator.alac` and :mod:`orchestrator.cssccnn`
build on it.
"""

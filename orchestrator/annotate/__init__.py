"""Annotation-team mode: propose the next images of a real collection to annotate, take the
team's point annotations back, continue (``python -m orchestrator.annotate``).

=============== ==========================================================================
module          what it holds
=============== ==========================================================================
``project``     the project folder: state file (atomic, locked), image hashes, orders
``formats``     annotation files in and out: LabelMe, CVAT XML, Label Studio, VIA, CSV/JSON
``ingest``      matching files to images, validating a batch, changing the state once
``propose``     one round: initial rule or one AL-AC cycle (the trials' code) on the project
``round_files`` the round's ranked table, task files and contact sheet
``crossval``    k-fold cross-validated MAE of a round's training on the annotated images
``tool_files``  Label Studio and CVAT import files, pre-annotated with the predicted heads
``report``      ``status`` and ``export`` (a ``folder`` dataset)
=============== ==========================================================================
"""

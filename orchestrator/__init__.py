"""The orchestrator: everything that touches disk, configs and Ray, one subpackage per concern.

================ ==========================================================================
subpackage       what it holds
================ ==========================================================================
``config``       typed experiment configs: the dataclasses (``schema``) and YAML -> them (``loading``)
``data``         dataset readers, count-exact density targets, patches, synthetic crowds; ``python
                 -m orchestrator.data``
``core``         what every trial shares: the trial skeleton, atomic files, seeds, the one
                 "in-process or on Ray" switch, whole-image counting and MAE/RMSE, weight files
``alac``         AL-AC trials: label state, one training phase, pool scoring, selection glue
``cssccnn``      CSS-CCNN trials: stages, losses, crops, label-free epoch choice, validation
``sweep``        ``python -m orchestrator.sweep``: trials as a Ray Tune sweep (plan, Tune wiring)
``report``       ``python -m orchestrator.report``: results -> the papers' tables, paired
                 comparisons, figures and report.md / report.html
``annotate``     ``python -m orchestrator.annotate``: annotation-team mode over the AL-AC trial's
                 own training, scoring and selection
``trial``        ``python -m orchestrator.trial``: one trial without Tune; the method registry
``evaluate``     ``python -m orchestrator.evaluate``: a weights file on a dataset split
================ ==========================================================================

Imports point one way: ``config`` <- ``data`` <- ``core`` <- ``alac`` / ``cssccnn`` <- ``trial``
<- ``sweep``; ``alac`` <- ``annotate``; ``report`` reads results only. The pure libraries (``models``, ``selection``,
``ot``) never import from here.
"""

"""CSS-CCNN (completely self-supervised counting, Babu Sam et al.) as trials.

============= ===========================================================================
module        what it holds
============= ===========================================================================
``trial``     :class:`CSSCCNNTrial`: one trial, its stages (rotation, Sinkhorn, baselines)
``stages``    one training stage, in-process or per Ray Train worker, with epoch checkpoints
``losses``    each stage's training and label-free validation losses
``crops``     seeded crop plans, rotation views, the fixed held-out list
``epochs``    choosing the epoch without labels (moving average + patience, the ++ rule)
``validate``  every check of a CSS-CCNN config before work, and the prior it implies
============= ===========================================================================
"""

"""AL-AC (active learning for crowd counting, Zhao et al.) as trials.

============= ===========================================================================
module        what it holds
============= ===========================================================================
``trial``     :class:`ALACTrial`: one trial, a short loop of cycles (train, evaluate, select)
``labels``    :class:`LabelState`: who is labeled and since which cycle (the one source of truth)
``train``     one training phase (eq. 4, or eq. 5 with distribution alignment), in-process or
              per Ray Train worker
``scoring``   :class:`PoolScorer`: predicted counts, signatures and classifier probabilities
              of images, in-process or on Ray Data
``strategy``  from pool scores to a :mod:`selection` strategy's choice
``validate``  every check of an AL-AC config before work
============= ===========================================================================
"""

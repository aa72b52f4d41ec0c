"""The reconciler: releases every deferred Job at its window and never after its deadline.

Pure parts: ``decide`` (the reconcile decision and the patches that carry it out), ``timers``
(one timer per Job), ``lease`` (leader election as state), ``accounting`` (actual emissions),
``history`` (bounded observed intensity), ``events`` (Kubernetes Events), ``report`` (the
sustainability report). Running parts: ``kube`` (the only module importing ``kubernetes``),
``feed`` (list + watch), ``controller`` (threads around the decision), ``service`` (wired from
settings). Kept light: importing this package imports neither ``kubernetes`` nor numpy.
"""

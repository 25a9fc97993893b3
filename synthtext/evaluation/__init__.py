"""Evaluation: measuring a generator, comparing it with the champion, and promoting it.

``runs`` (the metric table and running the evaluation on validation clips and held-out photos),
``evaluator`` (the independent landmark-based evaluator), ``face_metrics`` and ``sync_metrics``
(identity, image and lip-sync measures), ``liveliness`` (blinks, head motion, mouth), ``judge`` and
``outside`` (the outside emotion judge), ``report`` (the HTML report), ``promote`` (the gate and the
registry aliases), ``release`` (the model table of a release).
"""

"""Evaluation: measuring a generator, comparing it with the champion, and promoting it.

``table`` (the one metric table: which way is better, targets, summaries), ``measures`` (the measures
of one video), ``runs`` (the evaluation of validation clips and held-out photos), ``stage`` (the evaluate
stage: the champion, the gate, the report and the metrics files),
``evaluator`` (the independent landmark-based evaluator), ``face_metrics`` and ``sync_metrics``
(identity, image and lip-sync measures), ``liveliness`` (blinks, head motion, mouth), ``judge`` and
``outside`` (the outside emotion judge), ``report`` (the HTML report), ``promote`` (the gate and the
registry aliases), ``release`` (the model table of a release).
"""

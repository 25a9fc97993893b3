"""Data preparation: from raw clips to the aligned clip files the models train on.

``media`` (reading and writing audio and video), ``convert`` (25 fps video + 16 kHz speech),
``landmarks`` and ``ert`` (68-point face landmarks), ``template`` and ``geometry`` (the mean face and
similarity transforms), ``align`` (aligned face crops), ``clipfile`` (the HDF5 clip file),
``naming`` (CREMA-D clip names), ``split`` (train/validation by actor), ``frames`` and ``features``
(resizing, labels and contact sheets; speech features), ``preview`` (the align stage's contact sheet),
``corpus`` (the generated sample corpus).
"""

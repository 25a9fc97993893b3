"""Operations: what every stage relies on besides the maths.

``config`` (params.yaml as typed sections) on ``params`` (their pydantic base: one message for a
wrong key or value), ``tracking`` (MLflow runs and the model registry), ``lineage`` (from a model
version back to its data, params and code), ``retraining`` (whether a scheduled retrain is due; dvc
repro and push), ``codedeps`` (each stage's code dependencies, read from its imports), ``files``
(atomic writes), ``plots`` (the CSV files DVC plots), ``hashing`` (content hashes), ``prefect_server``
(a local Prefect server for one command's flows), ``errors`` (the project's exception types).
"""

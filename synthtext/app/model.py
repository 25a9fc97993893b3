"""The model a server uses: the reference (``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or a folder),
resolved again for each new job, so that when a retrain moves the ``champion`` alias new jobs use the new
version; and the loaded models by version, loaded once and shared by the workers."""

from __future__ import annotations

import threading
from pathlib import Path

from synthtext.app.uploads import json_file
from synthtext.inference.infer import REGISTRY_PREFIX, LoadedModel, check_model_ref, load_generator
from synthtext.inference.selfcheck import attach_evaluator
from synthtext.ops import lineage, tracking
from synthtext.ops.errors import SynthTextError


class ModelSource:
    """The model reference (``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or a folder), resolved to
    an exact version for each job, and the loaded models by version (loaded once, shared by the workers)."""

    def __init__(self, ref: str, repo: Path):
        self.ref, self.repo = check_model_ref(ref), repo
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()
        self._client = None

    def resolve(self) -> dict:
        """What the reference names now: ``uri`` (an exact version or the folder), ``version``, ``alias``."""
        if not self.ref.startswith(REGISTRY_PREFIX):
            return {"ref": self.ref, "uri": self.ref, "name": self.ref, "version": None, "alias": None}
        name, _, alias = self.ref[len(REGISTRY_PREFIX):].partition("@")
        if not alias:
            name, _, number = name.partition("/")
            return {"ref": self.ref, "uri": self.ref, "name": name, "version": number, "alias": None}
        version = self._mlflow_client().get_model_version_by_alias(name, alias)
        return {"ref": self.ref, "uri": f"{REGISTRY_PREFIX}{name}/{version.version}", "name": name,
                "version": version.version, "alias": alias, "run_id": version.run_id}

    def _mlflow_client(self):
        # mlflow is imported here, not at the top: it takes seconds, and only registry URIs need it.
        import mlflow
        from mlflow.tracking import MlflowClient

        if self._client is None:
            mlflow.set_tracking_uri(tracking.tracking_uri(self.repo))
            self._client = MlflowClient()
        return self._client

    def current(self) -> tuple[dict, LoadedModel]:
        """The version the reference names now, loaded (a registry error is the user's to fix)."""
        if self.ref.startswith(REGISTRY_PREFIX):  # a tracking server that is down: say so, not minutes of retries
            tracking.require_server(tracking.tracking_uri(self.repo))
        try:
            about = self.resolve()
        except Exception as exc:  # MlflowException and its causes: the alias or the store is missing
            raise SynthTextError(f"model {self.ref} cannot be resolved: {str(exc).splitlines()[0][:200]}") from exc
        return about, self.load(about["uri"])

    def load(self, uri: str) -> LoadedModel:
        with self._lock:
            if uri not in self._loaded:
                model = attach_evaluator(load_generator(uri, self.repo), None, self.repo)
                self._loaded = {**dict(list(self._loaded.items())[-1:]), uri: model}  # this one and the last
            return self._loaded[uri]

    def describe(self) -> dict:
        """Name, version, alias, hash, the run's metrics and the evaluation figures (``metrics/evaluate.json``)."""
        about, model = self.current()
        info = {**about, "md5": model.md5, "fps": model.cfg.fps, "preprocess": model.preprocess}
        if about.get("run_id"):
            run = self._mlflow_client().get_run(about["run_id"])
            info["run_metrics"] = {k: round(v, 4) for k, v in sorted(run.data.metrics.items())}
            info["stage"] = run.data.tags.get("stage")
        evaluation = self.repo / "metrics" / "evaluate.json"
        if about["version"] and evaluation.is_file():  # the last evaluation of the registry's candidate
            figures = json_file(evaluation)
            info["evaluation"] = {k: v for k, v in figures.items() if isinstance(v, dict) and k != "promotion"
                                  and all(isinstance(x, int | float) for x in v.values())}
            info["promotion"] = figures.get("promotion")
        return info

    def lineage(self) -> dict:
        """The ``synthtext lineage`` record of the version in use, summarised."""
        about = self.resolve()
        record, found = lineage.load_for(about["uri"], self.repo)
        return {"model": found, "stage": record["stage"], "commit": record["commit"], "dirty": record["dirty"],
                "params": record["params"].get(record["stage"]), "inputs": record["inputs"],
                "raw_source": record["raw_source"], "raw_md5": record["raw_md5"],
                "train_clips": len(record["train_clips"]),
                "upstream": {stage: {"mlflow_run_id": e.get("mlflow_run_id"), "outs": e["outs"]}
                             for stage, e in record["upstream"].items()}}

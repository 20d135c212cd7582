"""Index versions as MLflow runs: parameters to compare, the index folder as artifacts.

One experiment per index name (``rag-<name>``), one run per version; the run id goes into
the manifest, so a damaged local copy can be restored from the tracking store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..settings import artifact_root, tracking_uri


@dataclass
class IndexRun:
    client: Any
    run_id: str
    manifest: dict[str, Any]

    def finish(self, folder: Path) -> None:
        from mlflow.entities import Metric, Param

        m = self.manifest
        params = {"index": m["name"], "version": m["version"], "parent": m["parent"] or "",
                  "corpus_hash": m["corpus"]["hash"][:16],
                  "embedder": m["embedder"]["kind"],
                  "embedder_fingerprint": m["embedder"]["fingerprint"][:16],
                  "freshness_sla": m["freshness_sla"] or "",
                  **{f"chunker.{k}": v for k, v in m["chunker"].items()},
                  **{f"embedder.{k}": v for k, v in m["embedder"]["params"].items()}}
        metrics = {"documents": m["counts"]["documents"], "chunks": m["counts"]["chunks"],
                   "build_seconds": m["build_seconds"]}
        if m["incremental"]:
            metrics["reembedded_chunks"] = m["incremental"]["reembedded_chunks"]
            metrics["changed_documents"] = sum(len(m["incremental"][key])
                                               for key in ("changed", "added", "removed"))
        try:
            self.client.log_batch(self.run_id,
                                  metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()],
                                  params=[Param(k, str(v)) for k, v in params.items()])
            self.client.log_artifacts(self.run_id, str(folder), "index")
        except BaseException:
            self.client.set_terminated(self.run_id, "FAILED")
            raise
        self.client.set_terminated(self.run_id, "FINISHED")


def start_index_run(manifest: dict[str, Any], *, uri: str | None = None) -> IndexRun:
    from mlflow import MlflowClient

    uri = uri or tracking_uri()
    client = MlflowClient(tracking_uri=uri)
    experiment = f"rag-{manifest['name']}"
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        experiment_id = found.experiment_id
    else:
        location = None
        if uri.startswith("sqlite:") and not uri.startswith("sqlite:///:memory:"):
            # artifacts next to the database, under mlruns/, whatever the cwd
            location = (artifact_root() / experiment).as_uri()
        experiment_id = client.create_experiment(experiment, artifact_location=location)
    run = client.create_run(experiment_id, run_name=f"{manifest['name']}@{manifest['version']}",
                            tags={"workbench.rag.index": manifest["name"],
                                  "workbench.rag.version": manifest["version"]})
    return IndexRun(client, run.info.run_id, manifest)

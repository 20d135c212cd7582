"""Process-wide defaults that keep the workbench offline and quiet.

mlflow, litellm, datasets and evaluate all reach for the internet at import or first use
(telemetry, price lists, model catalogs, hub look-ups). On a locked-down machine those calls
hang or fail with misleading errors, so they are off unless the user has set the variable.
"""

from __future__ import annotations

import os

OFFLINE_DEFAULTS: dict[str, str] = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_MODEL_CATALOG_URI": "",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_EVALUATE_OFFLINE": "1",
    "HF_UPDATE_DOWNLOAD_COUNTS": "0",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    # MLflow's INFO lines (engine pools, table migrations) drown a notebook cell's output.
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    # The SQLite store's connection pool is small; several writers exhaust it.
    "MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "NullPool",
}


def apply_offline_defaults() -> None:
    """Set each default unless the user chose a value; must run before the libraries import."""
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)

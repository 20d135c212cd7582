"""ipywidgets panels over the Python API, for JupyterLab.

``Workbench(experiment)`` puts every panel in tabs over one shared ``Session``; each panel
also works alone (``ResultsPanel(results)``, ``ABPanel(report)``, ...). The panels only call
the public API (``Experiment``, ``Results``, ``promote``, ``workbench.feedback``), so
anything done here can be done, and tested, in plain Python.
"""

from .._optional import optional_import

# Fail once, with the extra to install, before the panels import ipywidgets.
optional_import("ipywidgets", "lab", "the JupyterLab panels")
# ruff: noqa: E402

from ._session import Session
from .ab import ABPanel
from .annotate import AnnotatePanel
from .cost import CostPanel
from .models import ModelsPanel
from .monitor import MonitorPanel
from .promote import PromotePanel
from .prompts import PromptsPanel
from .rag import RagPanel
from .results import ResultsPanel
from .run import RunPanel
from .workbench import Workbench

__all__ = [
    "ABPanel",
    "AnnotatePanel",
    "CostPanel",
    "ModelsPanel",
    "MonitorPanel",
    "PromotePanel",
    "PromptsPanel",
    "RagPanel",
    "ResultsPanel",
    "RunPanel",
    "Session",
    "Workbench",
]

"""Models panel: which litellm models the prompts run on, and their sampling parameters."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from workbench.gateway.config import ModelConfig

from ._common import esc, note, panel_box, shows_errors
from ._session import Session, as_session

EMBEDDED = "local/smollm2"  # runs in-process: no key, no network


class _ModelRow(widgets.HBox):
    def __init__(self, name: str, config: ModelConfig | None, choices: list[str]) -> None:
        self.origin = config
        params = config.params if config else {}
        self.name = widgets.Text(value=name, placeholder="variant name",
                                 layout=widgets.Layout(width="140px"))
        self.model = widgets.Combobox(value=config.model if config else EMBEDDED,
                                      options=choices, ensure_option=False,
                                      placeholder="any litellm model string",
                                      layout=widgets.Layout(width="230px"))
        self.temperature = widgets.BoundedFloatText(
            value=float(params.get("temperature", 0.0)), min=0.0, max=2.0, step=0.1,
            layout=widgets.Layout(width="90px"))
        self.max_tokens = widgets.BoundedIntText(
            value=int(params.get("max_tokens", 64)), min=1, max=32768,
            layout=widgets.Layout(width="90px"))
        self.remove = widgets.Button(icon="trash", tooltip="remove this model variant",
                                     layout=widgets.Layout(width="40px"))
        super().__init__([self.name, self.model, self.temperature, self.max_tokens,
                          self.remove])

    def config(self) -> ModelConfig:
        base = self.origin.model_dump() if self.origin else {}
        params = {**base.get("params", {}), "temperature": self.temperature.value,
                  "max_tokens": self.max_tokens.value}
        return ModelConfig.model_validate({**base, "model": self.model.value.strip(),
                                           "params": params})


class ModelsPanel(widgets.VBox):
    """Choose the model variants; Apply makes a new Experiment (the YAML stays as it is)."""

    def __init__(self, source: Any, **kwargs: Any) -> None:
        self.session: Session = as_session(source)
        self.rows = widgets.VBox()
        self.add_button = widgets.Button(description="Add a model", icon="plus",
                                         layout=widgets.Layout(width="auto"))
        self.apply_button = widgets.Button(description="Use these models",
                                           button_style="primary", icon="check",
                                           layout=widgets.Layout(width="auto"))
        self.current = widgets.HTML()
        self.status = widgets.HTML()
        header = widgets.HTML(
            "<div class='wb-muted' style='display:flex;gap:8px'>"
            "<span style='width:140px'>variant name</span>"
            "<span style='width:230px'>litellm model</span>"
            "<span style='width:90px'>temperature</span>"
            "<span style='width:90px'>max tokens</span></div>")
        super().__init__(panel_box([
            widgets.HTML(note(
                f"<code>{EMBEDDED}</code> is the embedded model: it runs on this machine "
                "with no API key. Other providers take any litellm model string; their key "
                "comes from the environment variable the experiment names.", "info",
                raw=True)),
            header, self.rows, widgets.HBox([self.add_button, self.apply_button]),
            self.current, self.status], "Models"), **kwargs)
        self.add_class("wb-panel")
        self.add_button.on_click(lambda _: self.add_model())
        self.apply_button.on_click(lambda _: self.apply())
        self.session.observe(lambda _: self._rebuild(), "experiment")
        self._rebuild()

    # ---- public actions -------------------------------------------------------------------
    def add_model(self, name: str = "", model: str = EMBEDDED) -> None:
        row = self._row(name or f"model{len(self.rows.children) + 1}", None)
        row.model.value = model
        self.rows.children = [*self.rows.children, row]

    @shows_errors("status", "use these models")
    def apply(self) -> None:
        """Replace the experiment's model variants with the rows as they stand."""
        models: dict[str, ModelConfig] = {}
        for row in self.rows.children:
            name = row.name.value.strip()
            if name in models:
                self.status.value = note(f"Two rows are named {name!r}; rename one.", "warn")
                return
            models[name] = row.config()
        exp = self.session.experiment.with_models(models)
        self.session.experiment = exp
        self.status.value = note(
            f"The experiment now runs {len(exp.variants)} variants: "
            f"{', '.join(v.name for v in exp.variants)} (baseline {exp.spec.baseline}).", "ok")

    # ---- building -------------------------------------------------------------------------
    def _row(self, name: str, config: ModelConfig | None) -> _ModelRow:
        exp = self.session.experiment
        choices = sorted({EMBEDDED, *(m.model for m in exp.spec.models.values())})
        row = _ModelRow(name, config, choices)
        row.remove.on_click(lambda _: self._remove(row))
        return row

    def _remove(self, row: _ModelRow) -> None:
        if len(self.rows.children) == 1:
            self.status.value = note("An experiment needs at least one model.", "warn")
            return
        self.rows.children = [r for r in self.rows.children if r is not row]

    def _rebuild(self) -> None:
        exp = self.session.experiment
        if exp is None:
            self.current.value = note("Load an experiment to choose its models.", "info")
            return
        self.rows.children = [self._row(name, config)
                              for name, config in exp.spec.models.items()]
        self.current.value = (
            f"<div class='wb-muted'>Now running {len(exp.variants)} variants: "
            f"{esc(', '.join(v.name for v in exp.variants))}.</div>")

"""Prompts panel: the variants side by side, a live preview, token counts and cost, updating
or reverting a variant, saving a new one and a word-level diff between variants or
registered versions. ``unsaved`` names the variants whose editor differs from their file:
a run uses the files, and the Workbench warns above the Run tab while any differ."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
from traitlets import List, Unicode

from workbench.prompts.templates import PromptTemplate

from ._common import error_note, esc, messages_html, note, panel_box, shows_errors
from ._session import Session, as_session
from ._text import template_to_text, text_to_template, word_diff_html

_EDITOR = "editor:"
_VERSION = "version:"


class PromptsPanel(widgets.VBox):
    """Edit prompt variants next to each other and see what each sends for one example."""

    unsaved = List(Unicode())  # prompt names with edits not written to their file

    def __init__(self, source: Any, **kwargs: Any) -> None:
        self.session: Session = as_session(source)
        self.example = widgets.Dropdown(description="Example", layout=widgets.Layout(
            width="100%"), style={"description_width": "70px"})
        self.editors: dict[str, widgets.Textarea] = {}
        self.previews: dict[str, widgets.HTML] = {}
        self.headers: dict[str, widgets.HTML] = {}
        self.update_buttons: dict[str, widgets.Button] = {}
        self.revert_buttons: dict[str, widgets.Button] = {}
        self.card_status: dict[str, widgets.HTML] = {}
        self.cards = widgets.GridBox(layout=widgets.Layout(
            grid_template_columns="repeat(auto-fit, minmax(300px, 1fr))", grid_gap="10px"))
        self.cost = widgets.HTML()
        self.new_name = widgets.Text(description="New variant", placeholder="e.g. guided_v2",
                                     style={"description_width": "80px"})
        self.save_from = widgets.Dropdown(description="from editor",
                                          style={"description_width": "80px"})
        self.save_button = widgets.Button(description="Save as new variant",
                                          button_style="primary", icon="save",
                                          layout=widgets.Layout(width="auto"))
        self.diff_a = widgets.Dropdown(description="Diff", style={"description_width": "80px"})
        self.diff_b = widgets.Dropdown(description="against",
                                       style={"description_width": "80px"})
        self.diff = widgets.HTML()
        self.status = widgets.HTML()
        self._texts: dict[str, str] = {}  # editor contents survive a rebuild
        self._quiet = False  # no refreshes while options are being replaced
        super().__init__(panel_box([
            widgets.HTML(), self.example, self.cards, self.cost,
            widgets.HTML("<h4>Save an edited prompt as a new variant</h4>"),
            widgets.HBox([self.new_name, self.save_from, self.save_button]),
            widgets.HTML("<h4>Word-level diff</h4>"),
            widgets.HBox([self.diff_a, self.diff_b]), self.diff, self.status,
        ], "Prompts"), **kwargs)
        self._intro = self.children[1]
        self.add_class("wb-panel")
        self.example.observe(lambda _: self._refresh_previews(), "value")
        self.diff_a.observe(lambda _: self._refresh_diff(), "value")
        self.diff_b.observe(lambda _: self._refresh_diff(), "value")
        self.save_button.on_click(lambda _: self.save())
        self.session.observe(lambda _: self._rebuild(), "experiment")
        self.session.observe(lambda _: self._refresh_diff_options(), "results")
        self._rebuild()

    # ---- public actions -------------------------------------------------------------------
    def template(self, prompt: str) -> PromptTemplate:
        """The template as it stands in ``prompt``'s editor (raises if it does not parse)."""
        return text_to_template(self.editors[prompt].value, name=prompt)

    def update(self, prompt: str) -> None:
        """Write ``prompt``'s editor over its prompt file; later runs use (and register) it."""
        from workbench.prompts.templates import update_prompt_file

        exp = self.session.experiment
        status = self.card_status[prompt]
        try:
            template = self.template(prompt)
            missing = sorted(template.variables - set(exp.evalset.columns))
            if missing:
                raise ValueError(f"the template uses {missing} but the eval set has only "
                                 f"{sorted(exp.evalset.columns)}")
            file = update_prompt_file(exp.spec.directory, exp.spec.prompts[prompt], template)
            saved = exp.reloaded()  # the notebook's scorers and eval set come along
            if saved.spec.models != exp.spec.models:
                saved = saved.with_models(exp.spec.models)
        except Exception as exc:
            status.value = error_note(exc, f"update {prompt}")
            return
        self._texts[prompt] = template_to_text(saved.spec.templates[prompt].template)
        self.session.experiment = saved
        self.card_status[prompt].value = note(
            f"Updated {file.relative_to(saved.spec.directory)}: the next run uses it (and "
            "registers it as a new version when tracked).", "ok")

    def revert(self, prompt: str) -> None:
        """Put ``prompt``'s editor back to its saved file, dropping the edits."""
        exp = self.session.experiment
        self.editors[prompt].value = template_to_text(exp.spec.templates[prompt].template)
        self.card_status[prompt].value = note("Reverted to the saved prompt.", "info")

    @shows_errors("status", "save the variant")
    def save(self) -> None:
        """Write the chosen editor's text as a new variant of the experiment."""
        exp = self.session.experiment
        name = self.new_name.value.strip()
        if not name:
            self.status.value = note("Give the new variant a name first.", "warn")
            return
        source = self.save_from.value
        saved = exp.save_prompt(name, self.template(source),
                                description=f"edited from {source} in the notebook")
        self._texts[source] = template_to_text(exp.spec.templates[source].template)
        self.editors[source].value = self._texts[source]
        self.new_name.value = ""
        self.session.experiment = saved
        self.status.value = note(
            f"Saved prompts/{name}.yaml and added it to experiment.yaml: the experiment now "
            f"has {len(saved.variants)} variants ({', '.join(v.name for v in saved.variants)}).",
            "ok")

    # ---- building -------------------------------------------------------------------------
    def _rebuild(self) -> None:
        exp = self.session.experiment
        if exp is None:
            self._intro.value = note("Load an experiment to edit its prompts.", "info")
            return
        variables = sorted({v for t in exp.spec.templates.values() for v in t.variables})
        self._intro.value = (
            f"<div class='wb-muted'>Experiment <b>{esc(exp.name)}</b> · prompt files in "
            f"<code>{esc(str(exp.spec.directory / 'prompts'))}</code> · variables: "
            + ", ".join(f"<code>{{{{{esc(v)}}}}}</code>" for v in variables)
            + ". Chat prompts are shown as <code>[role]</code> sections.</div>")
        ids = [e.id for e in exp.evalset.examples[:200]]
        first_field = next(iter(sorted(variables)), None)
        labels = []
        for e in exp.evalset.examples[:200]:
            text = str(e.inputs.get(first_field, "")) if first_field else ""
            labels.append((f"{e.id}: {text[:70]}", e.id))
        keep = self.example.value if self.example.value in ids else ids[0]
        self._quiet = True
        try:
            self.example.options = labels
            self.example.value = keep
        finally:
            self._quiet = False
        self.editors, self.previews, self.headers, cards = {}, {}, {}, []
        for name, template in exp.spec.templates.items():
            text = self._texts.get(name) or template_to_text(template.template)
            self._texts[name] = text
            editor = widgets.Textarea(value=text, rows=10, continuous_update=True,
                                      layout=widgets.Layout(width="100%"))
            editor.observe(self._on_edit(name), "value")
            self.editors[name], self.previews[name] = editor, widgets.HTML()
            self.headers[name] = widgets.HTML()
            cards.append(widgets.VBox([self.headers[name], editor, self._card_actions(name),
                                       widgets.HTML("<div class='wb-muted'>Preview for the "
                                                    "chosen example:</div>"),
                                       self.previews[name]], layout=widgets.Layout(
                border="1px solid var(--jp-border-color2, #ddd)", padding="6px",
                overflow="hidden")))
        self.cards.children = cards
        names = list(exp.spec.templates)
        keep = self.save_from.value if self.save_from.value in names else names[0]
        self.save_from.options = names
        self.save_from.value = keep
        self._refresh_diff_options()
        self._refresh_previews()

    def _card_actions(self, name: str) -> widgets.Widget:
        update = widgets.Button(description="Update variant", icon="save",
                                tooltip=f"write the editor over {name}'s prompt file",
                                layout=widgets.Layout(width="auto"))
        revert = widgets.Button(description="Revert", icon="undo",
                                tooltip="drop the edits: back to the saved prompt",
                                layout=widgets.Layout(width="auto"))
        update.on_click(lambda _: self.update(name))
        revert.on_click(lambda _: self.revert(name))
        self.update_buttons[name], self.revert_buttons[name] = update, revert
        self.card_status[name] = widgets.HTML()
        return widgets.VBox([widgets.HBox([update, revert]), self.card_status[name]])

    def _on_edit(self, name: str) -> Any:
        def changed(change: dict[str, Any]) -> None:
            self._texts[name] = change["new"]
            self._refresh_previews()
            self._refresh_diff()
        return changed

    def _refresh_unsaved(self) -> None:
        exp = self.session.experiment
        changed = []
        for name, editor in self.editors.items():
            saved = exp.spec.templates.get(name)
            if saved is None or editor.value != template_to_text(saved.template):
                changed.append(name)
        for name in self.editors:
            self.update_buttons[name].disabled = self.revert_buttons[name].disabled = \
                name not in changed
        if changed != list(self.unsaved):
            self.unsaved = changed

    def _refresh_previews(self) -> None:
        exp = self.session.experiment
        if self._quiet or exp is None or self.example.value is None:
            return
        self._refresh_unsaved()
        example = next(e for e in exp.evalset.examples if e.id == self.example.value)
        parsed: dict[str, PromptTemplate] = {}
        for name in self.editors:
            try:
                template = self.template(name)
                messages = template.render(**example.inputs)
            except Exception as exc:
                self.previews[name].value = error_note(exc)
                self.headers[name].value = f"<h4>{esc(name)}</h4>"
                continue
            parsed[name] = template
            kind = "chat" if template.is_chat else "text"
            edited = " · <i>edited, not saved</i>" if template.template != \
                exp.spec.templates[name].template else ""
            variables = ", ".join(sorted(template.variables)) or "none"
            self.headers[name].value = (
                f"<h4>{esc(name)} <span class='wb-muted'>({kind} prompt, "
                f"{len(messages)} message{'s' * (len(messages) != 1)}; variables: "
                f"{esc(variables)}){edited}</span></h4>")
            self.previews[name].value = (
                f"<div class='wb-scroll'>{messages_html(messages)}</div>")
        self._refresh_cost(parsed)

    def _refresh_cost(self, parsed: dict[str, PromptTemplate]) -> None:
        exp = self.session.experiment
        try:
            estimate = exp.estimate(prompts=parsed)
        except Exception as exc:
            self.cost.value = error_note(exc, "estimate tokens and cost")
            return
        per_call = ", ".join(f"{esc(v)} ≈{row.prompt_tokens_per_call:.0f}"
                             for v, row in estimate.iterrows())
        calls = int(estimate["calls"].sum())
        cost = estimate["cost_max"].sum(min_count=len(estimate))
        priced = (f"at most <b>${cost:.4f}</b>" if cost == cost
                  else "cost unknown (a model is missing from litellm's price table)")
        if cost == 0:
            priced = "<b>$0</b> (the models are free to call)"
        self.cost.value = note(
            f"Prompt tokens per call: {per_call}.<br>The whole matrix is <b>{calls}</b> calls "
            f"({len(exp.evalset)} examples × {len(estimate)} variants × "
            f"{exp.spec.run.repeats} repeat{'s' * (exp.spec.run.repeats != 1)}): "
            f"≈{int(estimate['prompt_tokens'].sum()):,} prompt tokens, up to "
            f"{int(estimate['max_completion_tokens'].sum()):,} completion tokens, {priced}.",
            "info", raw=True)

    # ---- diff -----------------------------------------------------------------------------
    def _refresh_diff_options(self) -> None:
        exp = self.session.experiment
        if exp is None:
            return
        options = [(f"{name} (editor)", _EDITOR + name) for name in exp.spec.templates]
        results = self.session.results
        versions = sorted(set((results.prompt_versions if results else {}).items()),
                          key=lambda item: item[1])
        options += [(f"registered v{version} ({variant})", f"{_VERSION}{version}")
                    for variant, version in versions]
        values = [value for _, value in options]
        a = self.diff_a.value if self.diff_a.value in values else values[0]
        b = self.diff_b.value if self.diff_b.value in values else values[min(1, len(values) - 1)]
        self._quiet = True
        try:
            self.diff_a.options, self.diff_b.options = options, options
            self.diff_a.value, self.diff_b.value = a, b
        finally:
            self._quiet = False
        self._refresh_diff()

    def _diff_text(self, value: str) -> str:
        if value.startswith(_EDITOR):
            return self.editors[value[len(_EDITOR):]].value
        from workbench.prompts.versions import load

        exp = self.session.experiment
        version = int(value[len(_VERSION):])
        return template_to_text(load(exp.spec.prompt_registry_name, version=version)
                                .template.template)

    def _refresh_diff(self) -> None:
        if self._quiet or not self.diff_a.value or not self.diff_b.value:
            return
        try:
            old, new = self._diff_text(self.diff_a.value), self._diff_text(self.diff_b.value)
        except Exception as exc:
            self.diff.value = error_note(exc, "load the version")
            return
        if old == new:
            self.diff.value = note("The two are identical.", "info")
            return
        self.diff.value = (
            "<div class='wb-muted'><del>removed</del> · <ins>added</ins></div>"
            f"<div class='wb-msg wb-scroll'>{word_diff_html(old, new)}</div>")

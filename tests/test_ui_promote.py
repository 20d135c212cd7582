"""The Promote tab: where each alias points, confirmation before production moves, pending
requests approved or rejected from the panel, rollback, and each version's full text."""

from __future__ import annotations

import pytest

from workbench import Experiment
from workbench.prompts.registry import alias_version, history, pending_requests

ui = pytest.importorskip("workbench.ui")


@pytest.fixture
def bench(make_experiment):
    bench = ui.Workbench(Experiment.from_yaml(make_experiment()), approver="alice",
                         annotator="alice")
    bench.run.run_button.click()
    bench.run.wait(timeout=60)
    assert bench.session.results is not None, bench.run.status.value
    return bench


@pytest.fixture
def protected(project):
    (project / "workbench.yaml").write_text("registry:\n  protected: [production]\n")


def test_the_chosen_version_shows_its_full_text_and_model(bench):
    promote = bench.promote
    promote.variant.value = "guided"
    text = promote.version_text.value
    assert "[system]" in text and "Answer with one word: positive or negative." in text
    assert "[user]" in text and "{{ticket}}" in text and "openai/test-model" in text
    promote.variant.value = "bare"
    assert "Sentiment of: {{ticket}}" in promote.version_text.value


def test_moving_production_asks_first_and_cancel_leaves_it(bench):
    promote = bench.promote
    versions = bench.session.results.prompt_versions
    promote.promote_button.click()
    assert promote.confirm.layout.display is None
    assert f"to v{versions['guided']}" in promote.confirm.question.value
    promote.confirm.no.click()
    assert alias_version("triage", "production") is None
    assert promote.confirm.layout.display == "none"
    promote.promote_button.click()
    promote.confirm.yes.click()
    assert alias_version("triage", "production") == versions["guided"]
    assert "Promoted <b>guided</b>" in promote.status.value
    aliases = promote.registry.aliases.value
    assert f"v{versions['guided']}" in aliases and "guided" in aliases
    assert "alice (promotion)" in aliases


def test_staging_moves_without_a_confirmation(bench):
    promote = bench.promote
    promote.alias.value = "staging"
    promote.promote_button.click()
    assert promote.confirm.layout.display == "none"
    assert alias_version("triage", "staging") == bench.session.results.prompt_versions["guided"]


def test_a_refusal_shows_before_any_confirmation(bench):
    promote = bench.promote
    promote.variant.value = "bare"  # the verdict favours guided; no reason given
    promote.promote_button.click()
    assert promote.confirm.layout.display == "none"
    assert "wb-error" in promote.status.value and "reason" in promote.status.value


def test_a_request_is_approved_from_the_panel_by_someone_else(bench, protected):
    promote = bench.promote
    version = bench.session.results.prompt_versions["guided"]
    promote.promote_button.click()  # a request: nothing moves, so nothing to confirm
    assert "Request recorded, approval needed" in promote.status.value
    view = promote.registry
    assert list(view.approve_buttons) == [("production", version)]
    row = view.pending.children[0].children[0].value
    parent = bench.session.results.run_ids["parent"]
    assert "requested by <b>alice</b>" in row
    assert f'href="http://127.0.0.1:5000/#/runs/{parent}"' in row
    view.approve_buttons[("production", version)].click()
    view.review_confirm.yes.click()
    assert "a different person must approve it" in view.review_status.value
    assert alias_version("triage", "production") is None

    promote.approver.value = "bob"
    view.review_reason.value = "checked twenty outputs"
    view.approve_buttons[("production", version)].click()
    assert "Approve and move <b>@production</b>" in view.review_confirm.question.value
    view.review_confirm.yes.click()
    assert alias_version("triage", "production") == version
    assert "Approved: @production now points at" in view.review_status.value
    assert promote.status.value == ""  # the request note above is history now
    assert view.approve_buttons == {} and "No request is waiting" in view.pending.children[0].value
    assert list(history("triage")["action"]) == ["request", "approval", "promotion"]
    assert "<td>None</td>" not in view.history.value  # no reason given reads "-"
    assert "bob (promotion)" in view.aliases.value


def test_a_rejection_needs_a_reason_and_clears_the_request(bench, protected):
    promote = bench.promote
    promote.promote_button.click()
    view = promote.registry
    key = next(iter(view.reject_buttons))
    view.reject_buttons[key].click()
    assert "wb-error" in view.review_status.value and "needs a reason" in view.review_status.value
    view.review_reason.value = "CI too wide"
    view.reject_buttons[key].click()
    assert "Rejected" in view.review_status.value
    assert pending_requests("triage") == [] and view.reject_buttons == {}
    assert history("triage").iloc[-1]["reason"] == "CI too wide"


def test_rollback_says_where_the_alias_goes_and_moves_it_back(bench):
    promote = bench.promote
    versions = bench.session.results.prompt_versions
    view = promote.registry
    assert view.rollback_alias.value == "production"  # the alias people roll back
    view.ask_rollback()
    assert "no earlier recorded version" in view.rollback_status.value

    promote.promote_button.click()
    promote.confirm.yes.click()
    promote.variant.value = "bare"
    promote.reason.value = "shorter prompt"
    promote.promote_button.click()
    promote.confirm.yes.click()
    assert alias_version("triage", "production") == versions["bare"]
    view.rollback_button.click()
    assert (f"back from v{versions['bare']} to v{versions['guided']}"
            in view.rollback_confirm.question.value)
    view.rollback_confirm.yes.click()
    assert alias_version("triage", "production") == versions["guided"]
    assert "Rolled back" in view.rollback_status.value
    assert history("triage").iloc[-1]["action"] == "rollback"


def test_the_registry_shows_without_a_run_of_ones_own(bench, protected):
    bench.promote.promote_button.click()  # alice's request
    fresh = ui.PromotePanel(Experiment.from_yaml(bench.session.experiment.spec.directory),
                            approver="bob")
    assert fresh.promote_button.disabled  # nothing to promote from
    assert len(fresh.registry.approve_buttons) == 1
    assert "@production (protected)" in fresh.registry.aliases.value

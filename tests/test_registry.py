"""The registry: promotions under a policy, approval by someone else, rollback, the audit log."""

import mlflow
import pandas as pd
import pytest

import workbench as wb
from workbench import Experiment, ModelConfig, PromptTemplate
from workbench.cli import main
from workbench.errors import RegistryError
from workbench.prompts.registry import (
    HISTORY_COLUMNS,
    ApprovalRefused,
    ApprovalRequired,
    Policy,
    alias_version,
    approve,
    from_mlflow_model_config,
    history,
    load,
    load_policy,
    pending_requests,
    promote,
    promote_or_request,
    register_version,
    reject,
    request_promotion,
    rollback,
    to_mlflow_model_config,
)
from workbench.settings import tracking_uri

PROTECTED = Policy()  # production needs a request and a second person
OPEN = Policy.unprotected()


@pytest.fixture
def versions(project):
    model = ModelConfig(model="openai/test-model", params={"temperature": 0}, num_retries=0)
    return [register_version("triage", PromptTemplate(f"v{i}: {{{{ticket}}}}"), model)[0]
            for i in (1, 2, 3)]


def actions(name="triage"):
    return list(history(name)[["action", "version", "actor"]].itertuples(index=False, name=None))


def test_an_open_policy_moves_the_alias_in_one_recorded_step(versions):
    v1, *_ = versions
    promoted = promote("triage", v1, "production", approver="alice", reason="first",
                       evidence={"run_id": "r1"}, policy=OPEN)
    assert promoted.version == v1 and alias_version("triage", "production") == v1
    assert promoted.tags["workbench.promoted.production.by"] == "alice"
    assert promoted.tags["workbench.promoted.production.run_id"] == "r1"
    assert actions() == [("promotion", v1, "alice")]


def test_a_protected_alias_refuses_a_one_step_promotion(versions):
    with pytest.raises(ApprovalRequired, match="@production is protected"):
        promote("triage", versions[0], "production", approver="alice", policy=PROTECTED)
    assert alias_version("triage", "production") is None


def test_request_then_approval_by_someone_else_moves_the_alias(versions):
    v1, v2, _ = versions
    request = promote_or_request("triage", v2, "production", actor="alice", reason="wins",
                                 evidence={"run_id": "r9", "verdict": "v2 better"},
                                 policy=PROTECTED)
    assert not request.promoted and request.status == "pending"
    assert "has not moved" in str(request) and "workbench approve triage" in str(request)
    assert alias_version("triage", "production") is None
    assert [r.version for r in pending_requests("triage")] == [v2]
    assert load("triage", version=v2).tags["workbench.review.production"].startswith(
        "pending: requested by alice at ")

    promoted = approve("triage", "production", approver="bob", reason="looks right",
                       policy=PROTECTED)
    assert promoted.version == v2 and alias_version("triage", "production") == v2
    assert pending_requests("triage") == []
    assert actions() == [("request", v2, "alice"), ("approval", v2, "bob"),
                         ("promotion", v2, "bob")]
    moved = history("triage").iloc[-1]
    assert moved["evidence"] == {"run_id": "r9", "verdict": "v2 better", "requested_by": "alice"}
    assert moved["reason"] == "wins; looks right"
    assert load("triage", version=v2).tags["workbench.review.production"].startswith(
        "approved by bob at ")


def test_the_requester_cannot_approve_their_own_request(versions):
    request_promotion("triage", versions[0], "production", requester="alice", policy=PROTECTED)
    with pytest.raises(ApprovalRefused, match="a different person must approve"):
        approve("triage", "production", approver="alice", policy=PROTECTED)
    assert alias_version("triage", "production") is None
    assert len(pending_requests("triage")) == 1


def test_a_rejection_needs_a_reason_and_closes_the_request(versions):
    v1 = versions[0]
    request_promotion("triage", v1, "production", requester="alice", policy=PROTECTED)
    with pytest.raises(RegistryError, match="needs a reason"):
        reject("triage", "production", approver="bob", reason=" ")
    rejected = reject("triage", "production", approver="bob", reason="CI too wide")
    assert rejected.status == "rejected" and pending_requests("triage") == []
    assert load("triage", version=v1).tags["workbench.review.production"].endswith(
        ": CI too wide")
    with pytest.raises(RegistryError, match="no pending request"):
        approve("triage", "production", approver="bob", policy=PROTECTED)
    assert actions() == [("request", v1, "alice"), ("rejection", v1, "bob")]
    assert history("triage").iloc[-1]["reason"] == "CI too wide"


def test_several_pending_requests_need_the_version_named(versions):
    v1, v2, _ = versions
    for version in (v1, v2):
        request_promotion("triage", version, "production", requester="alice", policy=PROTECTED)
    with pytest.raises(RegistryError, match=r"versions \[1, 2\]"):
        approve("triage", "production", approver="bob", policy=PROTECTED)
    assert approve("triage", "production", approver="bob", version=v1,
                   policy=PROTECTED).version == v1
    assert [r.version for r in pending_requests("triage")] == [v2]


def test_rollback_steps_back_through_the_versions_the_alias_held(versions):
    v1, v2, v3 = versions
    for version in versions:
        promote("triage", version, "production", approver="alice", policy=OPEN)
    assert rollback("triage", "production", actor="ops", reason="v3 rude").version == v2
    assert alias_version("triage", "production") == v2
    assert rollback("triage", "production", actor="ops").version == v1
    with pytest.raises(RegistryError, match="no earlier recorded version"):
        rollback("triage", "production")
    assert actions()[-2:] == [("rollback", v2, "ops"), ("rollback", v1, "ops")]
    assert history("triage").iloc[-2]["evidence"] == {"from_version": str(v3)}
    assert load("triage", version=v2).tags["workbench.rolled_back.production.by"] == "ops"


def test_promoting_the_version_an_alias_holds_again_records_nothing(versions):
    v1, v2, _ = versions
    for version in (v1, v2, v2):
        promote("triage", version, "production", approver="alice", policy=OPEN)
    assert actions() == [("promotion", v1, "alice"), ("promotion", v2, "alice")]
    again = promote_or_request("triage", v2, "production", actor="bob", policy=PROTECTED)
    assert again.promoted and again.version == v2 and pending_requests("triage") == []
    assert len(actions()) == 2
    # so the alias's moves stay a true stack: one rollback returns to v1
    assert rollback("triage", "production", actor="ops").version == v1


def test_promoting_a_version_set_outside_the_workbench_puts_it_on_the_record(versions):
    v1, *_ = versions
    mlflow.genai.set_prompt_alias("triage", "staging", v1)
    promote("triage", v1, "staging", approver="alice", policy=OPEN)
    assert actions() == [("promotion", v1, "alice")]


def test_rollback_needs_no_approval_on_a_protected_alias(versions):
    v1, v2, _ = versions
    for version in (v1, v2):
        request_promotion("triage", version, "production", requester="alice", policy=PROTECTED)
        approve("triage", "production", approver="bob", policy=PROTECTED)
    assert rollback("triage", "production", actor="carol").version == v1


def test_history_is_a_frame_with_the_agreed_columns(versions):
    empty = history("triage")
    assert list(empty.columns) == HISTORY_COLUMNS and empty.empty
    promote("triage", versions[0], "staging", approver="alice", policy=OPEN)
    frame = history("triage")
    assert list(frame.columns) == HISTORY_COLUMNS
    assert str(frame["at"].dt.tz) == "UTC" and frame["version"].dtype == "int64"
    assert frame.iloc[0]["reason"] is None and frame.iloc[0]["evidence"] == {}
    with pytest.raises(RegistryError, match="no prompt named 'nope'"):
        history("nope")


@pytest.mark.parametrize("alias", ["prodution", "canary"])
def test_an_alias_outside_the_policy_is_refused(versions, alias):
    with pytest.raises(RegistryError, match=f"{alias!r} is not one of this project's aliases"):
        promote("triage", versions[0], alias, policy=OPEN)


@pytest.mark.parametrize(("uri", "protected"), [
    ("sqlite:///tmp/mlflow.db", ()),
    ("http://127.0.0.1:5000", ("production",)),
    ("postgresql+psycopg2://u@127.0.0.1/mlflow", ("production",)),
])
def test_without_a_policy_file_a_shared_store_protects_production(project, uri, protected):
    assert load_policy(uri=uri).protected == protected


def test_the_project_policy_comes_from_workbench_yaml(project, versions):
    (project / "workbench.yaml").write_text(
        "registry:\n  aliases: [staging, production, canary]\n  protected: [staging]\n")
    assert load_policy() == Policy(aliases=("staging", "production", "canary"),
                                   protected=("staging",))
    promote("triage", versions[0], "canary", approver="alice")
    with pytest.raises(ApprovalRequired):
        promote("triage", versions[0], "staging", approver="alice")


@pytest.mark.parametrize(("text", "error"), [
    ("registry:\n  protect: [production]\n", "unknown keys \\['protect'\\]"),
    ("registry:\n  protected: [live]\n", "protected aliases \\['live'\\] are not in aliases"),
    ("registry:\n  aliases: 3\n", "registry.aliases: a list of alias names"),
])
def test_a_bad_policy_file_names_the_file_and_the_field(project, text, error):
    (project / "workbench.yaml").write_text(text)
    with pytest.raises(RegistryError, match=error) as raised:
        load_policy()
    assert "workbench.yaml" in str(raised.value)


def test_a_repeated_key_in_the_policy_file_is_an_error_not_a_silent_override(project):
    from workbench.errors import SpecError

    (project / "workbench.yaml").write_text(
        "registry:\n  protected: [production]\n  protected: []\n")
    with pytest.raises(SpecError, match=r"workbench.yaml: line 3: key 'protected' appears "
                                        r"twice \(first on line 2\)"):
        load_policy()


def test_require_evidence_wants_a_run_id(versions):
    strict = Policy(require_evidence=True)
    with pytest.raises(RegistryError, match="need evidence"):
        request_promotion("triage", versions[0], "production", policy=strict)
    assert request_promotion("triage", versions[0], "production", evidence={"run_id": "r"},
                             policy=strict).status == "pending"


def test_promoting_a_report_under_protection_records_a_request_with_its_evidence(
        make_experiment):
    results = Experiment.from_yaml(make_experiment()).run(progress=False)
    report = results.compare("bare", "guided")
    outcome = wb.promote(report, alias="production", approver="alice", policy=PROTECTED)
    assert not outcome.promoted and outcome.version == results.prompt_versions["guided"]
    assert outcome.evidence["run_id"] == results.run_ids["parent"]
    assert outcome.evidence["variant"] == "guided" and outcome.evidence["verdict"]
    assert alias_version("triage", "production") is None
    approve("triage", "production", approver="bob", policy=PROTECTED)
    assert alias_version("triage", "production") == outcome.version
    staged = wb.promote(report, alias="staging", approver="alice", policy=PROTECTED)
    assert staged.promoted and alias_version("triage", "staging") == outcome.version


def test_what_is_promoted_loads_with_plain_mlflow_and_plain_prompts_can_be_promoted(project):
    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_registry_uri(tracking_uri())
    for text in ("Say: {{x}}", "Say it: {{x}}"):
        mlflow.genai.register_prompt("plain", text)
    promote("plain", 1, "production", approver="alice", policy=OPEN)
    promote("plain", 2, "production", approver="alice", policy=OPEN)
    assert mlflow.genai.load_prompt("prompts:/plain@production", cache_ttl_seconds=0).version == 2
    rollback("plain", "production")
    assert mlflow.genai.load_prompt("prompts:/plain@production", cache_ttl_seconds=0).version == 1


@pytest.mark.parametrize("model", [
    ModelConfig(model="openai/gpt-4o-mini", params={"temperature": 0.2, "max_tokens": 64,
                                                    "stop": ["\n"], "seed": 7}),
    ModelConfig(model="openai/test-model", api_base="http://127.0.0.1:9/v1",
                api_key_env="MY_KEY", timeout=5, num_retries=0),
    ModelConfig(model="local/smollm2"),
    ModelConfig(model="claude-3-haiku-20240307"),  # a bare name stays bare, not openai/...
    ModelConfig(model="gpt-4o-mini", params={"temperature": 0}),
    ModelConfig(model="openai/test-model", input_cost_per_token=1e-6, rpm=60,
                fallbacks=[ModelConfig(model="openai/test-model-2", num_retries=1)]),
])
def test_the_model_config_round_trips_through_mlflow(project, model):
    assert from_mlflow_model_config(to_mlflow_model_config(model)) == model
    version, _ = register_version("cfg", PromptTemplate("{{q}}"), model)
    assert load("cfg", version=version).model == model


def test_the_cli_requests_approves_rolls_back_and_lists(versions, project, capsys):
    (project / "workbench.yaml").write_text("registry:\n  protected: [production]\n")
    v1, v2, _ = versions
    assert main(["promote", "triage", "--version", str(v1), "--approver", "alice"]) == 0
    assert "not promoted yet" in capsys.readouterr().out
    assert main(["approve", "triage", "--approver", "alice"]) == 1
    assert "different person" in capsys.readouterr().err
    assert main(["approve", "triage", "--approver", "bob"]) == 0
    assert f"version {v1}" in capsys.readouterr().out
    assert main(["request", "triage", "--version", str(v2), "--requester", "alice",
                 "--run-id", "r2", "--verdict", "better"]) == 0
    assert main(["approve", "triage", "--approver", "bob"]) == 0
    assert main(["rollback", "triage", "--actor", "ops", "--reason", "bad"]) == 0
    assert f"version {v1}" in capsys.readouterr().out.splitlines()[-1]
    with pytest.raises(SystemExit):  # a rejection without --reason
        main(["reject", "triage", "--approver", "bob"])
    assert "--reason" in capsys.readouterr().err
    assert main(["history", "triage"]) == 0
    out = capsys.readouterr().out
    for word in ("request", "approval", "promotion", "rollback", "run_id=r2", "bad"):
        assert word in out
    assert isinstance(history("triage"), pd.DataFrame)

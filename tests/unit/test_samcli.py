"""The SAM tier's own logic, without Docker: REPORT lines, the env file and its checks, the template SAM reads,
the image recipe's inputs, the egress guard's route parsing, and the cost model's arithmetic.

The tier itself (tests/sam) runs all of it for real; these pin each rule where a mistake would be silent.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from infra import emulator as emu
from infra import stack as stk
from infra.samcli import SamError, cost, engine, environment, images, sam
from infra.samcli.stack import caller_of, function_credentials

COLD = (
    "REPORT RequestId: 08c335ad-569c-410e-a0df-826fb72a8c3c\tInit Duration: 0.12 ms\tDuration: 9184.28 ms\t"
    "Billed Duration: 9185 ms\tMemory Size: 3008 MB\tMax Memory Used: 3008 MB\t"
)
WARM = (
    "REPORT RequestId: 90c0107f-e8ce-4871-9b60-14546b8fc33b\tDuration: 49.40 ms\tBilled Duration: 50 ms\t"
    "Memory Size: 1024 MB\tMax Memory Used: 1024 MB\t"
)


def _stack(functions: dict[str, dict[str, str]]) -> stk.LocalStack:
    return stk.LocalStack(
        endpoint="http://127.0.0.1:5005",
        stack_name="nbaml-dev",
        template_path="template.yaml",
        parameters={"Stage": "dev"},
        resources={lid: f"nbaml-dev-{lid}" for lid in functions},
        resource_types={},
        function_environments=functions,
        function_dirs={lid: f"functions/{lid.removesuffix('Function').lower()}" for lid in functions},
        function_settings={lid: {"MemorySize": 512, "Timeout": 30, "Handler": "app.handler"} for lid in functions},
        api_id=None,
        admin_token_param=None,
        secure_parameters=[],
        outputs={},
    )


# ---------------------------------------------------------------- REPORT lines
def test_given_the_emulators_report_lines_when_parsed_then_duration_billing_memory_and_cold_start_are_read() -> None:
    cold, warm = sam.Report.parse("RetrainFunction", COLD), sam.Report.parse("PredictFunction", WARM)
    assert cold is not None and warm is not None
    assert (cold.billed_ms, cold.memory_mb, cold.init_ms) == (9185, 3008, 0.12)
    assert (warm.duration_ms, warm.billed_ms, warm.memory_mb, warm.init_ms) == (49.40, 50, 1024, None)
    assert sam.Report.parse("x", "END RequestId: 08c335ad") is None


# ---------------------------------------------------------------- the env file
def test_given_a_stack_when_the_env_file_is_made_then_every_function_points_at_the_container_with_its_own_key() -> None:
    stack = _stack({"CollectFunction": {"STAGE": "dev"}, "PredictFunction": {"STAGE": "dev", "SLATE_LIMIT": "20"}})
    envs = environment.function_environments(
        stack,
        "http://nbaml-moto:5000",
        credentials=function_credentials(stack),
        extra={"PredictFunction": {"MODEL_PARAM_MAX_AGE_SECONDS": "0"}},
    )
    assert set(envs) == {"CollectFunction", "PredictFunction"}
    for lid, env in envs.items():
        assert env["AWS_ENDPOINT_URL"] == "http://nbaml-moto:5000" and env["STAGE"] == "dev"
        assert caller_of(env["AWS_ACCESS_KEY_ID"]) == lid
        assert env["AWS_SECRET_ACCESS_KEY"] == emu.LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
    assert envs["PredictFunction"]["MODEL_PARAM_MAX_AGE_SECONDS"] == "0"
    assert caller_of("testing") is None


@pytest.mark.parametrize(
    ("environments", "named"),
    [
        (
            {"CollectFunction": {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "r"}},
            "AWS_ENDPOINT_URL",
        ),
        ({}, "CollectFunction has no entry"),
        ({"CollectFunction": {"AWS_ENDPOINT_URL": "", "AWS_ACCESS_KEY_ID": "k"}}, "AWS_ENDPOINT_URL"),
    ],
)
def test_given_a_function_without_the_emulator_when_checked_then_the_env_file_is_refused(
    environments: dict, named: str
) -> None:
    with pytest.raises(SamError, match="public endpoints") as refused:
        environment.check(_stack({"CollectFunction": {}}), environments)
    assert named in str(refused.value)


def test_given_the_built_template_when_the_local_one_is_written_then_only_the_missing_names_are_declared(
    tmp_path: Path,
) -> None:
    built = tmp_path / "template.yaml"
    built.write_text(
        yaml.safe_dump(
            {
                "Transform": "AWS::Serverless-2016-10-31",
                "Globals": {"Function": {"Runtime": "python3.12", "Environment": {"Variables": {"STAGE": "dev"}}}},
                "Resources": {
                    "CollectFunction": {
                        "Type": "AWS::Serverless::Function",
                        "Properties": {
                            "CodeUri": "CollectFunction",
                            "Environment": {"Variables": {"FEED_SOURCE": "x"}},
                        },
                    }
                },
            }
        )
    )
    envs = {"CollectFunction": {"STAGE": "dev", "FEED_SOURCE": "generator", "AWS_ENDPOINT_URL": "http://m:5000"}}
    local = environment.local_template(built, envs)
    written = yaml.safe_load(local.read_text())
    assert local.parent == built.parent and local.name.startswith("template.nbaml-local-")
    assert written["Globals"]["Function"]["Environment"]["Variables"] == {"STAGE": "dev", "AWS_ENDPOINT_URL": ""}
    assert written["Resources"]["CollectFunction"]["Properties"]["CodeUri"] == "CollectFunction"
    with pytest.raises(SamError, match="not a function"):
        environment.local_template(built, {"RetrainFunction": {}})


# ---------------------------------------------------------------- images and the engine
@pytest.mark.parametrize(
    ("path", "skipped"),
    [
        ("lib/python3.12/site-packages/_sandboxing_egress_ca.pth", True),  # the host's, never the image's
        ("lib/python3.12/test/test_os.py", True),
        ("lib/python3.12/tkinter/__init__.py", True),
        ("lib/python3.12/lib-dynload/_tkinter.cpython-312-x86_64-linux-gnu.so", True),
        ("include/python3.12/Python.h", True),
        ("bin/pip3", True),
        ("lib/python3.12/site-packages", False),
        ("lib/python3.12/json/__init__.py", False),
        ("lib/python3.12/lib-dynload/_ssl.cpython-312-x86_64-linux-gnu.so", False),
        ("lib/libpython3.12.so.1.0", False),
        ("bin/python3.12", False),
    ],
)
def test_given_the_interpreters_tree_then_the_image_leaves_out_tests_tk_headers_and_the_hosts_packages(
    path: str, skipped: bool
) -> None:
    assert bool(images._PYTHON_SKIP.search(path)) is skipped


def test_given_the_runtime_lock_changes_then_the_lambda_image_is_rebuilt_but_not_the_debian_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = tmp_path / "bin" / "python3.12"
    python.parent.mkdir()
    python.write_bytes(b"a python")
    lock = tmp_path / "lambda-runtime.txt"
    lock.write_text("boto3==1.0 --hash=sha256:aa\n")
    monkeypatch.setattr(images, "RUNTIME_LOCK", lock)
    plan = images.ImagePlan(images.Python312(python, tmp_path, "3.12.1"), images.DEFAULT_MIRROR)
    before = (plan.debian, plan.lambda_image, plan.emulator)
    lock.write_text("boto3==2.0 --hash=sha256:bb\n")
    after = images.ImagePlan(images.Python312(python, tmp_path, "3.12.1"), images.DEFAULT_MIRROR)
    assert after.debian == before[0]
    assert after.lambda_image != before[1] and after.emulator != before[2]
    assert before[1].startswith("nbaml-lambda-python3.12:") and before[2].startswith("nbaml-moto:")


def test_given_ip_route_output_then_the_guard_blocks_every_default_routes_device() -> None:
    routes = (
        "default via 192.0.2.1 dev eth0 proto dhcp\n10.0.0.0/8 dev wg0\ndefault via 10.0.0.1 dev wlan0 metric 600\n"
    )
    assert engine.default_route_devices(routes) == ["eth0", "wlan0"]
    assert engine.default_route_devices("10.0.0.0/8 dev wg0\n") == []


@pytest.mark.parametrize(
    ("setting", "image"), [("official", None), ("my-registry/lambda:3.12", "my-registry/lambda:3.12")]
)
def test_given_nbaml_lambda_image_when_sam_runs_then_it_picks_the_base_image(
    monkeypatch: pytest.MonkeyPatch, setting: str, image: str | None
) -> None:
    monkeypatch.setenv("NBAML_LAMBDA_IMAGE", setting)
    local = sam.SamLocal.for_environment(Path("t.yaml"), Path("env.json"))
    assert local.invoke_image == image
    args = local.args()
    assert ("--invoke-image" in args) is (image is not None) and ("--skip-pull-image" in args) is (image is not None)
    assert args[args.index("--docker-network") + 1] == "nbaml-local"


@pytest.mark.parametrize(("reachable", "picked"), [(True, "official"), (False, "nbaml")])
def test_given_no_setting_then_sam_keeps_its_default_image_where_aws_registry_answers_and_ours_elsewhere(
    monkeypatch: pytest.MonkeyPatch, reachable: bool, picked: str
) -> None:
    monkeypatch.delenv("NBAML_LAMBDA_IMAGE", raising=False)
    assert images.invoke_image_setting(lambda: reachable) == picked
    monkeypatch.setenv("NBAML_LAMBDA_IMAGE", "nbaml")
    assert images.invoke_image_setting(lambda: True) == "nbaml", "a setting is never second-guessed"


def test_given_no_route_to_a_registry_then_it_is_unreachable_at_once() -> None:
    port = emu.free_port()  # nothing listens there: the connection is refused
    assert images.registry_reachable(("127.0.0.1", port), timeout=1.0) is False


def test_given_an_operators_aws_profile_when_sam_runs_then_it_gets_only_the_emulators_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALKEY")
    env = sam.sam_environment()
    assert "AWS_PROFILE" not in env and env["AWS_ACCESS_KEY_ID"] == emu.LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"]
    assert env["SAM_CLI_TELEMETRY"] == "0"


# ---------------------------------------------------------------- the cost model
def _entry(key: str, service: str, target: str = "", body: object = None, method: str = "POST", url: str = "/") -> dict:
    headers = {"Authorization": f"AWS4-HMAC-SHA256 Credential={key}/20261201/us-east-1/{service}/aws4_request, x"}
    if target:
        headers["X-Amz-Target"] = target
    raw = base64.b64encode(json.dumps(body or {}).encode()).decode()
    return {"headers": headers, "method": method, "url": url, "body": raw, "body_encoded": True}


def test_given_recorded_requests_when_classified_then_each_names_its_function_service_and_billed_units() -> None:
    item = {"game_id": {"S": "g"}, "blob": {"S": "x" * 1500}}
    put = cost.classify(
        _entry("nbaml-local-PredictFunction", "dynamodb", "DynamoDB_20120810.PutItem", {"Item": item}), caller_of
    )
    query = cost.classify(_entry("nbaml-local-DriftCheckFunction", "dynamodb", "DynamoDB_20120810.Query"), caller_of)
    get = cost.classify(
        _entry("nbaml-local-PredictFunction", "s3", method="GET", url="http://m/b/models/v1/x"), caller_of
    )
    assert put == cost.Call("PredictFunction", "dynamodb", "PutItem", 2.0) and cost.is_write(put)
    assert query is not None and query.units == 0.5 and not cost.is_write(query)
    assert get is not None and get.operation == "GetObject"
    assert cost.classify(_entry("testing", "s3", method="GET"), caller_of) is None  # this process, not a function


def test_given_the_sam_replays_clock_reads_then_the_bill_leaves_them_out_and_keeps_the_roles_reads() -> None:
    from infra.samcli import replay as sam_replay

    def get_parameter(name: str) -> dict:
        return _entry("nbaml-local-PredictFunction", "ssm", "AmazonSSM.GetParameter", {"Name": name})

    # the replay's own seam (nbaml.serving.clock): AWS would never receive it, so it is no line of the bill
    assert sam_replay._reads_the_clock(get_parameter(sam_replay.CLOCK_PARAM))
    # the predict function reading its roles is the system's own work, billed as ever
    role = get_parameter("/nbaml/dev/model/active")
    assert not sam_replay._reads_the_clock(role)
    assert cost.classify(role, caller_of) == cost.Call("PredictFunction", "ssm", "GetParameter", 1.0)
    assert not sam_replay.CLOCK_PARAM.startswith("/nbaml/"), "no role of the template may reach the clock"


def test_given_function_logs_then_their_bytes_and_distinct_emf_metrics_are_counted_without_sams_own_lines() -> None:
    emf = {
        "_aws": {
            "CloudWatchMetrics": [
                {"Namespace": "nbaml-dev", "Dimensions": [["service"]], "Metrics": [{"Name": "A"}, {"Name": "B"}]}
            ]
        },
        "service": "nbaml",
    }
    sam_line = "Invoking app.handler (python3.12)\n"
    text = sam_line + "START RequestId: r\n" + json.dumps(emf) + "\nEND RequestId: r\n" + WARM + "\n"
    size, metrics = cost.log_volume(text)
    assert size == len(text.encode()) - len(sam_line)
    assert metrics == {("nbaml-dev", "A", ("service=nbaml",)), ("nbaml-dev", "B", ("service=nbaml",))}


def test_given_measured_usage_when_priced_then_predict_scales_by_prediction_and_jobs_by_calendar() -> None:
    predict = [
        sam.Report("PredictFunction", "a", 3000, 3000, 1024, 1024, init_ms=0.1),
        *[sam.Report("PredictFunction", str(i), 100, 100, 1024, 1024) for i in range(9)],
    ]
    collect = [sam.Report("CollectFunction", "c", 500, 500, 512, 512)]
    usage = cost.Usage(
        days=1,
        predict_function="PredictFunction",
        predict_requests=10,
        predictions=100,
        reports=[*predict, *collect],
        calls=[cost.Call("PredictFunction", "dynamodb", "PutItem", 1.0)] * 100,
        log_bytes={},
        metrics=set(),
        s3_bytes=0,
        alarms=9,
    )
    estimate = cost.estimate(usage, predictions_per_day=1000)
    lines = {line.item.split(" (")[0]: line for line in estimate.lines}
    month = 1000 * cost.DAYS_PER_MONTH
    # predict: every request at the warm 0.1 s and 1 GB, plus 24 cold starts a day at the 2.9 s extra;
    # collect: its 0.5 s at 0.5 GB, every day of the month
    expected_gb_s = (
        month * 0.1 + cost.PREDICT_COLD_STARTS_PER_DAY * cost.DAYS_PER_MONTH * 2.9 + 0.25 * cost.DAYS_PER_MONTH
    )
    assert lines["Lambda duration"].quantity == pytest.approx(expected_gb_s)
    assert lines["HTTP API requests"].quantity == pytest.approx(month)
    assert lines["DynamoDB on-demand writes"].quantity == pytest.approx(month)  # one item per prediction
    assert lines["CloudWatch alarms"].usd == pytest.approx(0.9)
    assert estimate.total == pytest.approx(sum(line.usd for line in estimate.lines))
    assert estimate.total_after_free_tier < estimate.total

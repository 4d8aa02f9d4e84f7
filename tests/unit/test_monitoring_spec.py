"""spec.monitoring: what reaches the engines' flags, the gateway's config and the replica's
egress, and what the API refuses (docs/observability.md)."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
import yaml

from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.builders.children import config_map
from llm_operator.builders.network import network_policy
from llm_operator.builders.pod import deployment
from llm_operator.config import OperatorConfig
from tests.cases import base

TRACING = {"endpoint": "http://otel-collector.observability:4318", "sampleRatio": 0.25}


def obj(**spec: Any) -> LLMDeployment:
    m = base("chat", **spec)
    m["metadata"].update({"namespace": "team", "uid": "0000-uid"})
    return LLMDeployment.model_validate(m)


def engine(o: LLMDeployment) -> dict[str, Any]:
    containers = deployment(o, OperatorConfig())["spec"]["template"]["spec"]["containers"]
    return {c["name"]: c for c in containers}["engine"]  # type: ignore[no-any-return]


def gateway_yaml(o: LLMDeployment) -> dict[str, Any]:
    return yaml.safe_load(config_map(o, OperatorConfig())["data"]["gateway.yaml"])  # type: ignore[no-any-return]


def test_vllm_exports_its_spans_over_otlp_http_to_the_same_collector() -> None:
    c = engine(obj(monitoring={"tracing": TRACING}))
    a = c["args"]
    assert a[a.index("--otlp-traces-endpoint") + 1] == (
        "http://otel-collector.observability:4318/v1/traces"
    )
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] == "http/protobuf"
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.25"
    off = engine(obj(monitoring={"tracing": {**TRACING, "engine": False}}))
    assert "--otlp-traces-endpoint" not in off["args"]
    assert not any(e["name"].startswith("OTEL_") for e in off["env"])
    assert "--otlp-traces-endpoint" not in engine(obj())["args"]


def test_tgi_exports_spans_only_to_a_grpc_endpoint() -> None:
    tgi = {"kind": "tgi"}
    a = engine(obj(engine=tgi, monitoring={"tracing": TRACING}))["args"]
    assert "--otlp-endpoint" not in a  # TGI's exporter speaks gRPC only
    grpc = {**TRACING, "grpcEndpoint": "http://otel-collector.observability:4317"}
    a = engine(obj(engine=tgi, monitoring={"tracing": grpc}))["args"]
    assert a[a.index("--otlp-endpoint") + 1] == "http://otel-collector.observability:4317"
    assert a[a.index("--otlp-service-name") + 1] == "tgi"


def test_the_gateway_config_carries_tracing_drift_and_prices() -> None:
    g = gateway_yaml(obj(monitoring={"tracing": {**TRACING, "recordPrompts": True}}))
    assert g["tracing"] == {
        "endpoint": TRACING["endpoint"],
        "sampleRatio": 0.25,
        "recordPrompts": True,
        "resource": {"service.namespace": "team", "llmops.deployment": "chat"},
    }
    assert g["drift"] == {"referenceRequests": 1000, "windowRequests": 500}
    # Without token prices: the replica's price (the H100 profile's $4.25 x 1 GPU) is split.
    assert g["cost"] == {"replicaPerHour": 4.25}
    priced = gateway_yaml(
        obj(monitoring={"tokenPrice": {"inputPerMillion": 0.5, "outputPerMillion": 1.5}})
    )
    assert priced["cost"] == {"inputPerMillion": 0.5, "outputPerMillion": 1.5}
    assert "drift" not in gateway_yaml(obj(monitoring={"drift": {"enabled": False}}))
    assert "tracing" not in gateway_yaml(obj())


def test_the_replica_may_reach_the_collectors_ports_and_no_more() -> None:
    def ports(o: LLMDeployment) -> list[set[int]]:
        egress = network_policy(o, OperatorConfig())["spec"]["egress"]
        return [{p["port"] for p in rule["ports"]} for rule in egress]

    grpc = {**TRACING, "grpcEndpoint": "http://otel-collector.observability:4317"}
    assert {4317, 4318} in ports(obj(monitoring={"tracing": grpc}))
    assert {443} in ports(obj(monitoring={"tracing": {"endpoint": "https://otel.example.com"}}))
    assert all(4318 not in p for p in ports(obj()))


@pytest.mark.parametrize(
    "monitoring",
    [
        {"tracing": {"endpoint": "ftp://collector:4318"}},
        {"tracing": {"endpoint": "http://collector:4318 --evil"}},
        {"tracing": {**TRACING, "sampleRatio": 1.5}},
        {"tracing": {"sampleRatio": 0.5}},
        {"drift": {"windowRequests": 5}},
        {"tokenPrice": {"inputPerMillion": -1, "outputPerMillion": 1}},
        {"tokenPrice": {"inputPerMillion": 1}},
        {"cost": {}},
    ],
)
def test_bad_monitoring_is_refused(monitoring: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        obj(monitoring=monitoring)

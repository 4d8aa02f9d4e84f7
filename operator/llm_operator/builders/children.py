"""The objects an LLMDeployment owns, as manifest dicts ready for server-side apply.

Every child has a fixed name derived from the LLMDeployment's name, so applying twice changes
nothing and a restarted operator finds what it made instead of making it again.
"""

from __future__ import annotations

import yaml

from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.builders.activator import activator_manifests, front_selector
from llm_operator.builders.cache import model_cache_job, persistent_volume_claim
from llm_operator.builders.common import (
    ENGINE_PORT,
    config_map_name,
    metadata,
    served_name,
)
from llm_operator.builders.kinds import CONFIG_MAP, Manifest, desired_replicas
from llm_operator.builders.network import (
    network_policy,
    pod_disruption_budget,
    service,
    service_monitor,
)
from llm_operator.builders.pod import deployment
from llm_operator.config import OperatorConfig
from llm_operator.gateway.config import (
    CONFIG_FILE,
    KEYS_DIR,
    CostConfig,
    DriftConfig,
    GatewayConfig,
    GenerationPolicy,
    RateLimitPolicy,
    TracingConfig,
)


def _monitoring(obj: LLMDeployment, config: OperatorConfig | None) -> dict[str, object]:
    mon = obj.spec.monitoring
    tr = mon.tracing
    price = mon.token_price
    gpu = obj.spec.resources.gpu
    # without token prices, the replica's own price is split over the keys
    replica = config.replica_price(gpu.profile, gpu.count) if config and not price else None
    return {
        "tracing": TracingConfig(
            endpoint=tr.endpoint,
            sample_ratio=tr.sample_ratio,
            record_prompts=tr.record_prompts,
            resource={
                "service.namespace": obj.metadata.namespace,
                "llmops.deployment": obj.metadata.name,
            },
        )
        if tr
        else None,
        "drift": DriftConfig(
            reference_requests=mon.drift.reference_requests,
            window_requests=mon.drift.window_requests,
        )
        if mon.drift.enabled
        else None,
        "cost": CostConfig(
            input_per_million=price.input_per_million if price else None,
            output_per_million=price.output_per_million if price else None,
            replica_per_hour=replica,
        ),
    }


def gateway_config(obj: LLMDeployment, config: OperatorConfig | None = None) -> GatewayConfig:
    spec = obj.spec
    g = spec.generation
    gw = spec.gateway
    return GatewayConfig(
        model=served_name(obj),
        engine=spec.engine.kind.value,
        engine_url=f"http://127.0.0.1:{ENGINE_PORT}",
        generation=GenerationPolicy(
            temperature=g.temperature,
            top_p=g.top_p,
            max_new_tokens=g.max_new_tokens,
            max_tokens=g.max_tokens,
            frequency_penalty=g.frequency_penalty,
            repetition_penalty=g.repetition_penalty,
            timeout_seconds=g.timeout_seconds,
            max_choices=g.max_choices,
            enforce=g.enforce.value,
        ),
        pii=gw.safety.pii.value,
        expected_language=gw.expected_language,
        rate_limit=RateLimitPolicy(**gw.rate_limit.model_dump()) if gw.rate_limit else None,
        # Split over the replicas the object asks for now (the autoscaler's /scale changes the
        # spec, and so this ConfigMap, which the gateways hot-reload): see docs/gateway.md.
        rate_limit_share=max(1, desired_replicas(spec)) if gw.rate_limit else 1,
        max_body_bytes=gw.max_body_bytes,
        api_keys_dir=KEYS_DIR if gw.api_key_secret_ref else None,
        **_monitoring(obj, config),
    )


def config_map(obj: LLMDeployment, config: OperatorConfig | None = None) -> Manifest:
    cfg = gateway_config(obj, config).model_dump(by_alias=True, exclude_none=True, mode="json")
    return {
        "apiVersion": CONFIG_MAP.api_version,
        "kind": CONFIG_MAP.kind,
        "metadata": metadata(obj, config_map_name(obj.metadata.name)),
        "data": {CONFIG_FILE: yaml.safe_dump(cfg, sort_keys=True)},
    }


def build_all(
    obj: LLMDeployment,
    config: OperatorConfig,
    *,
    service_monitor_available: bool = False,
    ready_replicas: int = 0,
) -> list[Manifest]:
    """Every child the object should have, in apply order (the ConfigMap before its pods, the
    activator before the replicas). ``ready_replicas`` decides what the Service selects while
    scale to zero is on (``front_selector``)."""
    out: list[Manifest] = []
    if obj.spec.gateway.enabled:
        out.append(config_map(obj, config))
    if obj.spec.model.cache is not None:
        if obj.spec.model.cache.existing_claim is None:
            out.append(persistent_volume_claim(obj))
        out.append(model_cache_job(obj, config))
    if obj.spec.autoscaling.scale_to_zero.enabled:
        out += activator_manifests(obj, config)
    out += [deployment(obj, config), service(obj, front_selector(obj, ready_replicas))]
    if desired_replicas(obj.spec) > 1 or (
        obj.spec.autoscaling.enabled and obj.spec.autoscaling.max_replicas > 1
    ):
        out.append(pod_disruption_budget(obj))
    out.append(network_policy(obj, config))
    if service_monitor_available:
        out.append(service_monitor(obj, config))
    return out

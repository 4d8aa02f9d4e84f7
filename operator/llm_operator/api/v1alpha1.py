"""LLMDeployment v1alpha1: the only definition of the API.

Fields are camelCase in YAML and snake_case in Python (pydantic aliases). The CRD's
openAPIV3Schema is generated from these models (``llm_operator.api.crd``), and the cross-field
rules are written twice on purpose: once as pydantic validators (the operator, the CLI and the
tests) and once as CEL ``x-kubernetes-validations`` (so ``kubectl apply`` refuses them before
anything reaches a GPU). ``tests/unit/test_api.py`` checks that both reject the same manifests.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator
from pydantic.alias_generators import to_camel

from llm_operator.api.quantization import FLAGS, QuantMode, unsupported_message

GROUP = "llmops.dev"
VERSION = "v1alpha1"
KIND = "LLMDeployment"
PLURAL = "llmdeployments"
SINGULAR = "llmdeployment"
SHORT_NAMES = ["llmd"]
API_VERSION = f"{GROUP}/{VERSION}"

MODEL_URI_PATTERN = r"^(hf://[A-Za-z0-9][\w.\-]*/[\w.\-]+|pvc://[a-z0-9][a-z0-9\-.]*/.*|s3://[a-z0-9][a-z0-9.\-]*/.+)$"
K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$"


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, JsonValue]:
    """One CEL rule for ``x-kubernetes-validations``."""
    out: dict[str, JsonValue] = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


class ApiModel(BaseModel):
    """Base: camelCase aliases, unknown fields refused, immutable once parsed."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    def dump(self) -> dict[str, Any]:
        """The YAML/JSON form: camelCase, without unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    def dump_set(self) -> dict[str, Any]:
        """Only the fields a writer set (a server-side apply owns exactly what it sends)."""
        return self.model_dump(by_alias=True, exclude_none=True, exclude_unset=True, mode="json")


# --------------------------------------------------------------------------- spec


class SecretKeyRef(ApiModel):
    name: Annotated[str, Field(pattern=K8S_NAME_PATTERN, max_length=253)]
    key: Annotated[str, Field(min_length=1, max_length=253)] = "token"


class SecretRef(ApiModel):
    name: Annotated[str, Field(pattern=K8S_NAME_PATTERN, max_length=253)]


DEFAULT_CONTEXT_LENGTH = 8192


class ModelCache(ApiModel):
    """A shared volume holding the weights: filled once by a Job, mounted read-only by every
    replica, so a new replica loads instead of downloading (the cold start the autoscaler
    plans for)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.existingClaim) || has(self.size)",
                    "model.cache needs size (to create a claim) or existingClaim",
                )
            ]
        }
    )

    existing_claim: Annotated[
        str | None,
        Field(
            pattern=K8S_NAME_PATTERN,
            max_length=253,
            description="A ReadWriteMany PersistentVolumeClaim to use; none is created",
        ),
    ] = None
    storage_class_name: Annotated[
        str | None,
        Field(
            pattern=K8S_NAME_PATTERN,
            max_length=253,
            description="Storage class of the claim the operator creates (ReadWriteMany)",
        ),
    ] = None
    size: Annotated[
        str | None, Field(pattern=QUANTITY_PATTERN, description="Size of the claim, e.g. 40Gi")
    ] = None

    @model_validator(mode="after")
    def _claim_or_size(self) -> ModelCache:
        if self.existing_claim is None and self.size is None:
            raise ValueError("model.cache needs size (to create a claim) or existingClaim")
        return self


class ModelSource(ApiModel):
    uri: Annotated[
        str,
        Field(
            pattern=MODEL_URI_PATTERN,
            max_length=512,
            description="hf://org/name, pvc://claim/path or s3://bucket/path",
        ),
    ]
    revision: Annotated[str | None, Field(max_length=128)] = None
    served_name: Annotated[
        str | None,
        Field(max_length=128, description="Model name clients send; defaults to the object's name"),
    ] = None
    parameters_billions: Annotated[
        float | None,
        Field(gt=0, le=10000, description="Model size, used to check that it fits the GPUs"),
    ] = None
    context_length: Annotated[
        int | None,
        Field(
            ge=128,
            le=2_097_152,
            description="Maximum tokens per sequence (prompt + answer); 8192 when not given",
        ),
    ] = None
    kv_cache_bytes_per_token: Annotated[
        int | None,
        Field(
            ge=1024,
            le=16 * 1024 * 1024,
            description="KV-cache bytes one token takes (2 x layers x KV heads x head size x "
            "dtype bytes); estimated from parametersBillions when not given",
        ),
    ] = None
    credentials_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret holding the hub or object-store token"
    )
    cache: ModelCache | None = Field(
        default=None, description="Download hf:// weights once into a shared volume"
    )

    @property
    def scheme(self) -> str:
        return self.uri.split("://", 1)[0]

    @property
    def max_context(self) -> int:
        """The context the engine is started with: always explicit, because an engine's own
        default is the model's (131,072 for Llama-3.1), which rarely fits next to the weights."""
        return self.context_length or DEFAULT_CONTEXT_LENGTH

    @property
    def location(self) -> str:
        return self.uri.split("://", 1)[1]


class EngineKind(StrEnum):
    VLLM = "vllm"
    TGI = "tgi"


class EnvVar(ApiModel):
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
    value: Annotated[str, Field(max_length=4096)] = ""


class Engine(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.env) || self.env.all(e, !(e.name in "
                    "['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'AWS_SECRET_ACCESS_KEY']))",
                    "engine.env must not carry credentials; use model.credentialsSecretRef",
                )
            ]
        }
    )

    kind: EngineKind = EngineKind.VLLM
    image: Annotated[str | None, Field(max_length=512)] = None
    extra_args: Annotated[list[Annotated[str, Field(max_length=1024)]], Field(max_length=64)] = []
    env: Annotated[list[EnvVar], Field(max_length=64)] = []

    @model_validator(mode="after")
    def _no_credentials_in_env(self) -> Engine:
        for e in self.env:
            if e.name in {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "AWS_SECRET_ACCESS_KEY"}:
                raise ValueError(
                    "engine.env must not carry credentials; use model.credentialsSecretRef"
                )
        return self


class GPU(ApiModel):
    profile: Annotated[
        str, Field(pattern=K8S_NAME_PATTERN, max_length=63, description="A GPU profile name")
    ] = "nvidia-h100-80gb"
    # Tensor parallelism splits the attention heads, so it needs a divisor of their number
    # (a power of two for every common model), and one pod cannot span nodes (8 GPUs a node).
    count: Annotated[
        Literal[1, 2, 4, 8], Field(description="GPUs per replica (tensor parallel): 1, 2, 4 or 8")
    ] = 1


class Resources(ApiModel):
    gpu: GPU = GPU()
    cpu: Annotated[str | None, Field(pattern=QUANTITY_PATTERN)] = None
    memory: Annotated[str | None, Field(pattern=QUANTITY_PATTERN)] = None


class Quantization(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!self.loadIn8bit || self.mode in ['none', 'int8']",
                    "loadIn8bit: true is shorthand for mode: int8 and cannot be combined "
                    "with another mode",
                )
            ]
        }
    )

    load_in_8bit: bool = Field(default=False, alias="loadIn8bit")
    mode: QuantMode = QuantMode.NONE

    @model_validator(mode="after")
    def _shorthand(self) -> Quantization:
        if self.load_in_8bit and self.mode not in (QuantMode.NONE, QuantMode.INT8):
            raise ValueError(
                "loadIn8bit: true is shorthand for mode: int8 and cannot be combined with "
                f"mode: {self.mode.value}"
            )
        return self

    @property
    def effective(self) -> QuantMode:
        return QuantMode.INT8 if self.load_in_8bit else self.mode


class Enforce(StrEnum):
    CLAMP = "clamp"
    REJECT = "reject"


class Generation(ApiModel):
    """Defaults for missing request fields, and caps the gateway enforces."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.maxNewTokens) || !has(self.maxTokens) || "
                    "self.maxNewTokens <= self.maxTokens",
                    "maxNewTokens (the default) must not exceed maxTokens (the cap)",
                )
            ]
        }
    )

    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    top_p: Annotated[float | None, Field(gt=0, le=1)] = None
    max_new_tokens: Annotated[
        int | None, Field(ge=1, le=1_048_576, description="Default completion length")
    ] = None
    max_tokens: Annotated[
        int | None, Field(ge=1, le=1_048_576, description="Cap on completion length")
    ] = None
    frequency_penalty: Annotated[float | None, Field(ge=-2, le=2)] = None
    repetition_penalty: Annotated[float | None, Field(gt=0, le=10)] = None
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 120.0
    enforce: Enforce = Enforce.CLAMP

    @model_validator(mode="after")
    def _default_within_cap(self) -> Generation:
        if (
            self.max_new_tokens is not None
            and self.max_tokens is not None
            and self.max_new_tokens > self.max_tokens
        ):
            raise ValueError(
                f"maxNewTokens {self.max_new_tokens} (the default) must not exceed "
                f"maxTokens {self.max_tokens} (the cap)"
            )
        return self


class PiiMode(StrEnum):
    OFF = "off"
    FLAG = "flag"
    REDACT = "redact"
    BLOCK = "block"


class Safety(ApiModel):
    pii: PiiMode = PiiMode.OFF


class RateLimit(ApiModel):
    requests_per_minute: Annotated[int | None, Field(ge=1)] = None
    tokens_per_minute: Annotated[int | None, Field(ge=1)] = None


class Gateway(ApiModel):
    enabled: bool = True
    image: Annotated[str | None, Field(max_length=512)] = None
    api_key_secret_ref: SecretRef | None = Field(
        default=None, description="Secret whose keys are key ids and values are API keys"
    )
    expected_language: Annotated[
        str | None, Field(pattern=r"^[a-z]{2}$", description="ISO 639-1 code of the answers")
    ] = None
    safety: Safety = Safety()
    rate_limit: RateLimit | None = Field(default=None, description="Per API key")
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024


class Targets(ApiModel):
    ttft_p95_seconds: Annotated[float | None, Field(gt=0)] = 0.5
    itl_p95_seconds: Annotated[float | None, Field(gt=0)] = 0.05
    e2e_p95_seconds: Annotated[float | None, Field(gt=0, alias="e2eP95Seconds")] = None
    queue_per_replica: Annotated[float | None, Field(gt=0)] = 5.0
    tokens_per_second_per_replica: Annotated[float | None, Field(gt=0)] = None


class Cost(ApiModel):
    max_hourly_cost: Annotated[float | None, Field(gt=0)] = None
    target_cost_per_million_tokens: Annotated[float | None, Field(gt=0)] = None


class Behavior(ApiModel):
    scale_up_stabilization_seconds: Annotated[int, Field(ge=0, le=3600)] = 0
    scale_down_stabilization_seconds: Annotated[int, Field(ge=0, le=86400)] = 300
    max_scale_up_step: Annotated[int, Field(ge=1, le=100)] = 4
    max_scale_down_step: Annotated[int, Field(ge=1, le=100)] = 1
    burst_memory_seconds: Annotated[
        int,
        Field(
            ge=0,
            le=86400,
            description="How long the fleet keeps what recent bursts needed when traffic comes "
            "in bursts (the burst reserve, and its cost); 0 turns it off",
        ),
    ] = 1200


class Autoscaling(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.minReplicas <= self.maxReplicas",
                    "minReplicas must not exceed maxReplicas",
                )
            ]
        }
    )

    enabled: bool = False
    min_replicas: Annotated[int, Field(ge=0, le=1000)] = 1
    max_replicas: Annotated[int, Field(ge=1, le=1000)] = 4
    dry_run: bool = False
    targets: Targets = Targets()
    cost: Cost = Cost()
    behavior: Behavior = Behavior()

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas {self.min_replicas} must not exceed maxReplicas {self.max_replicas}"
            )
        return self


class Access(ApiModel):
    allowed_namespaces: Annotated[
        list[Annotated[str, Field(pattern=K8S_NAME_PATTERN)]],
        Field(description="Namespaces whose pods may call the gateway; empty means own only"),
    ] = []
    allowed_pod_selector: Annotated[
        dict[str, str], Field(description="Labels of pods allowed to call the gateway")
    ] = {}


def _engine_quant_rules() -> list[JsonValue]:
    """CEL rules generated from the engine x quantization matrix (one source of truth)."""
    rules: list[JsonValue] = []
    for engine, modes in FLAGS.items():
        allowed = ", ".join(f"'{m.value}'" for m in modes)
        rules.append(
            cel(
                f"self.engine.kind != '{engine}' || "
                f"((self.quantization.loadIn8bit ? 'int8' : self.quantization.mode) "
                f"in [{allowed}])",
                unsupported_message(engine),
                ".quantization",
            )
        )
    return rules


# vLLM forces its bitsandbytes loader for --quantization bitsandbytes (EngineArgs
# .create_load_config), which reads local or hub weights, never a Run:ai stream from s3://.
S3_INT4_MESSAGE = (
    "int4 (bitsandbytes, quantized while loading) needs vLLM's bitsandbytes loader, which cannot "
    "stream s3:// weights; use a pre-quantized awq/gptq checkpoint, or hf:// or pvc://"
)


CACHE_SOURCE_MESSAGE = (
    "model.cache is for hf:// models (pvc:// already is a volume; s3:// is streamed)"
)


class LLMDeploymentSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                *_engine_quant_rules(),
                cel(
                    "self.engine.kind != 'tgi' || !self.model.uri.startsWith('s3://')",
                    "TGI cannot load s3:// models; use hf:// or pvc://, or engine vllm",
                    ".model.uri",
                ),
                cel(
                    "!has(self.model.cache) || self.model.uri.startsWith('hf://')",
                    CACHE_SOURCE_MESSAGE,
                    ".model.cache",
                ),
                cel(
                    "self.engine.kind != 'vllm' || !self.model.uri.startsWith('s3://') || "
                    "(self.quantization.loadIn8bit ? 'int8' : self.quantization.mode) != 'int4'",
                    S3_INT4_MESSAGE,
                    ".quantization.mode",
                ),
            ]
        }
    )

    model: ModelSource
    engine: Engine = Engine()
    resources: Resources = Resources()
    quantization: Quantization = Quantization()
    generation: Generation = Generation()
    gateway: Gateway = Gateway()
    autoscaling: Autoscaling = Autoscaling()
    access: Access = Access()
    replicas: Annotated[
        int, Field(ge=0, le=1000, description="Replicas when autoscaling is off (/scale)")
    ] = 1

    @model_validator(mode="after")
    def _engine_supports_quantization(self) -> LLMDeploymentSpec:
        mode = self.quantization.effective
        if mode not in FLAGS[self.engine.kind.value]:
            raise ValueError(unsupported_message(self.engine.kind.value, mode.value))
        if self.engine.kind is EngineKind.TGI and self.model.scheme == "s3":
            raise ValueError("TGI cannot load s3:// models; use hf:// or pvc://, or engine vllm")
        if (
            self.engine.kind is EngineKind.VLLM
            and self.model.scheme == "s3"
            and mode is QuantMode.INT4
        ):
            raise ValueError(S3_INT4_MESSAGE)
        if self.model.cache is not None and self.model.scheme != "hf":
            raise ValueError(CACHE_SOURCE_MESSAGE)
        return self

    @property
    def served_name(self) -> str | None:
        return self.model.served_name


# --------------------------------------------------------------------------- status


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    type: Literal[
        "Valid", "Ready", "Progressing", "MetricsAvailable", "ScalingLimited", "ModelCached"
    ]
    status: ConditionStatus
    reason: Annotated[str, Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")]
    message: Annotated[str, Field(max_length=32768)] = ""
    last_transition_time: str
    observed_generation: int | None = None


class Metrics(ApiModel):
    ttft_p95_seconds: float | None = None
    itl_p95_seconds: float | None = None
    e2e_p95_seconds: float | None = Field(default=None, alias="e2eP95Seconds")
    tokens_per_second: float | None = None
    queue_depth: float | None = None
    hourly_cost: float | None = None
    cost_per_million_tokens: float | None = None
    observed_at: str | None = None


# status.autoscaling.lastDecision (a comment, not a docstring: the CRD stays as it was).
class ScalingDecision(ApiModel):
    from_: int = Field(alias="from")
    to: int
    reason: str
    limit: str | None = None


class AutoscalingStatus(ApiModel):
    last_scale_time: str | None = None
    last_decision: ScalingDecision | None = None
    recommendation: int | None = None


class Phase(StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    READY = "Ready"
    DEGRADED = "Degraded"
    INVALID = "Invalid"


class LLMDeploymentStatus(ApiModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    phase: Phase | None = None
    replicas: int | None = None
    ready_replicas: int | None = None
    desired_replicas: int | None = None
    selector: str | None = None
    observed_generation: int | None = None
    endpoint: str | None = None
    conditions: Annotated[
        list[Condition],
        Field(
            json_schema_extra={
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            }
        ),
    ] = []
    metrics: Metrics | None = None
    autoscaling: AutoscalingStatus | None = None


class ObjectMeta(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    namespace: str = "default"
    uid: str = ""
    generation: int = 0


class LLMDeployment(BaseModel):
    """A whole object as the API server returns it; parsed once at the edge."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = KIND
    metadata: ObjectMeta
    spec: LLMDeploymentSpec
    status: LLMDeploymentStatus = LLMDeploymentStatus()

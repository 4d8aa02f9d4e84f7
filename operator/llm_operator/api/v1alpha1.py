"""LLMDeployment v1alpha1: the only definition of the API.

Fields are camelCase in YAML and snake_case in Python (pydantic aliases). The CRD's
openAPIV3Schema is generated from these models (``llm_operator.api.crd``), and the cross-field
rules are written twice on purpose: once as pydantic validators (the operator, the CLI and the
tests) and once as CEL ``x-kubernetes-validations`` (so ``kubectl apply`` refuses them before
anything reaches a GPU). ``tests/unit/test_api.py`` checks that both reject the same manifests.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from llm_operator.api.autoscaling import Autoscaling as Autoscaling
from llm_operator.api.autoscaling import Behavior as Behavior
from llm_operator.api.autoscaling import Cost as Cost
from llm_operator.api.autoscaling import ScaleToZero as ScaleToZero
from llm_operator.api.autoscaling import Targets as Targets
from llm_operator.api.base import API_VERSION as API_VERSION

# The API's face: every model and name, wherever it is defined, is importable from here.
from llm_operator.api.base import GROUP as GROUP
from llm_operator.api.base import K8S_NAME_PATTERN as K8S_NAME_PATTERN
from llm_operator.api.base import KIND as KIND
from llm_operator.api.base import MODEL_URI_PATTERN as MODEL_URI_PATTERN
from llm_operator.api.base import PLURAL as PLURAL
from llm_operator.api.base import QUANTITY_PATTERN as QUANTITY_PATTERN
from llm_operator.api.base import SHORT_NAMES as SHORT_NAMES
from llm_operator.api.base import SINGULAR as SINGULAR
from llm_operator.api.base import VERSION as VERSION
from llm_operator.api.base import ApiModel as ApiModel
from llm_operator.api.base import SecretKeyRef as SecretKeyRef
from llm_operator.api.base import SecretRef as SecretRef
from llm_operator.api.base import cel as cel
from llm_operator.api.engine import Engine as Engine
from llm_operator.api.engine import EngineKind as EngineKind
from llm_operator.api.engine import EnvVar as EnvVar
from llm_operator.api.gateway import Enforce as Enforce
from llm_operator.api.gateway import Gateway as Gateway
from llm_operator.api.gateway import Generation as Generation
from llm_operator.api.gateway import PiiMode as PiiMode
from llm_operator.api.gateway import RateLimit as RateLimit
from llm_operator.api.gateway import Safety as Safety
from llm_operator.api.monitoring import Drift as Drift
from llm_operator.api.monitoring import Monitoring as Monitoring
from llm_operator.api.monitoring import TokenPrice as TokenPrice
from llm_operator.api.monitoring import Tracing as Tracing
from llm_operator.api.quantization import FLAGS, QuantMode, unsupported_message
from llm_operator.api.status import AutoscalingStatus as AutoscalingStatus
from llm_operator.api.status import Condition as Condition
from llm_operator.api.status import ConditionStatus as ConditionStatus
from llm_operator.api.status import LLMDeploymentStatus as LLMDeploymentStatus
from llm_operator.api.status import Metrics as Metrics
from llm_operator.api.status import Phase as Phase
from llm_operator.api.status import ScalingDecision as ScalingDecision

# --------------------------------------------------------------------------- spec


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
        str | None,
        Field(pattern=QUANTITY_PATTERN, max_length=64, description="Size of the claim, e.g. 40Gi"),
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
    cpu: Annotated[str | None, Field(pattern=QUANTITY_PATTERN, max_length=64)] = None
    memory: Annotated[str | None, Field(pattern=QUANTITY_PATTERN, max_length=64)] = None


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


class Access(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.allowedPodSelector) || "
                    "self.allowedPodSelector.all(k, size(k) <= 317)",
                    "allowedPodSelector keys are label keys: at most 317 characters",
                )
            ]
        }
    )

    allowed_namespaces: Annotated[
        list[Annotated[str, Field(pattern=K8S_NAME_PATTERN, max_length=63)]],
        Field(
            max_length=64,
            description="Namespaces whose pods may call the gateway; empty means own only",
        ),
    ] = []
    # Label keys are at most 253 (prefix) + 1 + 63 characters, values 63.
    allowed_pod_selector: Annotated[
        dict[str, Annotated[str, Field(max_length=63)]],
        Field(max_length=16, description="Labels of pods allowed to call the gateway"),
    ] = {}

    @model_validator(mode="after")
    def _label_keys(self) -> Access:
        if any(len(k) > 317 for k in self.allowed_pod_selector):
            raise ValueError("allowedPodSelector keys are label keys: at most 317 characters")
        return self


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


SCALE_TO_ZERO_MESSAGE = (
    "autoscaling.scaleToZero needs autoscaling.enabled and gateway.enabled (the activator "
    "authenticates and forwards like the gateway)"
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
                cel(
                    "!self.autoscaling.scaleToZero.enabled || "
                    "(self.autoscaling.enabled && self.gateway.enabled)",
                    SCALE_TO_ZERO_MESSAGE,
                    ".autoscaling.scaleToZero.enabled",
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
    monitoring: Monitoring = Monitoring()
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
        if self.autoscaling.scale_to_zero.enabled and not (
            self.autoscaling.enabled and self.gateway.enabled
        ):
            raise ValueError(SCALE_TO_ZERO_MESSAGE)
        return self

    @property
    def served_name(self) -> str | None:
        return self.model.served_name


# --------------------------------------------------------------------------- status


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

"""Engine x quantization matrix: which modes each engine supports, with the exact flags.

One table, read by the API validation (pydantic and the generated CEL rules) and by the engine
builders. Sources (file and version in docs/engines.md):
- vLLM: ``--quantization bitsandbytes`` is 4-bit in-flight quantization, and vLLM sets the
  bitsandbytes load format itself (``EngineArgs.create_load_config``; an explicit
  ``--load-format`` is not needed and would fight ``runai_streamer``). 8-bit needs a
  pre-quantized checkpoint, so in-flight int8 is not offered for vLLM. AWQ and GPTQ checkpoints
  carry their ``quantization_config``: with no ``--quantization`` flag vLLM detects it and picks
  the fast Marlin kernels (``awq_marlin``/``gptq_marlin``) where the GPU supports them, while an
  explicit ``--quantization awq|gptq`` forces the slow kernels
  (``AWQMarlinConfig.override_quantization_method``), so those modes add no flag.
- TGI: ``--quantize {eetq,bitsandbytes-nf4,fp8,awq,gptq}``; 8-bit in flight is ``eetq``, which
  TGI recommends over the deprecated LLM.int8() ``bitsandbytes`` (that one also turns CUDA
  graphs off); ``bitsandbytes-nf4`` is 4-bit on the fly.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class QuantMode(StrEnum):
    NONE = "none"
    INT8 = "int8"
    INT4 = "int4"
    FP8 = "fp8"
    AWQ = "awq"
    GPTQ = "gptq"


# engine kind (string, to stay independent of the API enum) -> mode -> engine arguments
FLAGS: Final[dict[str, dict[QuantMode, tuple[str, ...]]]] = {
    "vllm": {
        QuantMode.NONE: (),
        QuantMode.INT4: ("--quantization", "bitsandbytes"),
        QuantMode.FP8: ("--quantization", "fp8"),
        QuantMode.AWQ: (),  # detected from the checkpoint: Marlin kernels where supported
        QuantMode.GPTQ: (),
    },
    "tgi": {
        QuantMode.NONE: (),
        QuantMode.INT8: ("--quantize", "eetq"),
        QuantMode.INT4: ("--quantize", "bitsandbytes-nf4"),
        QuantMode.FP8: ("--quantize", "fp8"),
        QuantMode.AWQ: ("--quantize", "awq"),
        QuantMode.GPTQ: ("--quantize", "gptq"),
    },
}

ENGINE_NAMES: Final = {"vllm": "vLLM", "tgi": "TGI"}

# Bytes per weight for the GPU memory fit check.
BYTES_PER_PARAMETER: Final[dict[QuantMode, float]] = {
    QuantMode.NONE: 2.0,
    QuantMode.INT8: 1.0,
    QuantMode.FP8: 1.0,
    QuantMode.INT4: 0.5,
    QuantMode.AWQ: 0.5,
    QuantMode.GPTQ: 0.5,
}


def supported(engine: str) -> list[QuantMode]:
    return list(FLAGS[engine])


def unsupported_message(engine: str, mode: str | None = None) -> str:
    modes = ", ".join(m.value for m in FLAGS[engine])
    name = ENGINE_NAMES[engine]
    head = (
        f"quantization {mode} is not supported by {name}"
        if mode
        else (f"this quantization is not supported by {name}")
    )
    return f"{head}; {name} supports: {modes}"

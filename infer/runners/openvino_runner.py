"""OpenVINO's CPU runtime: the artifact's ONNX model (or the IR export wrote beside it) compiled for this CPU.

Precisions: fp32 and bf16 are OpenVINO's inference precision hint on the fp32 model (bf16 only
where the CPU has it: detected from the plugin's capabilities and checked on the compiled model,
because OpenVINO would silently run f32 instead); int8 is the QDQ model, whose quantized ops run
in int8 and the rest in f32. Compiled models are cached on disk (OpenVINO's CACHE_DIR, keyed by
the model and its settings), so a second start reads the compiled blob instead of compiling.

The performance hint "latency" runs one inference stream with every thread; "throughput" runs
OpenVINO's optimal number of streams, and a batch is split across them (one request per stream).
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ganrt.errors import BackendUnavailable, UsageError
from infer.runners.base import Runner

if TYPE_CHECKING:
    import openvino as ov

HINTS = ("latency", "throughput")
# OpenVINO's INFERENCE_PRECISION_HINT for each precision the ov-cpu target runs.
_INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def import_openvino() -> Any:
    """The openvino module, or BackendUnavailable saying what to install."""
    try:
        import openvino
    except ImportError:
        raise BackendUnavailable("the ov-cpu backend needs OpenVINO's runtime: pip install openvino "
                                 "(or pip install ganrt[openvino])") from None
    return openvino


@functools.lru_cache(maxsize=1)
def bf16_supported() -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 here (AVX512-BF16 or AMX), as the plugin reports it."""
    ov = import_openvino()
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def compile_config(precision: str, hint: str = "latency", threads: int | None = None,
                   cache_dir: Path | None = None) -> dict[str, Any]:
    """The compile_model properties for one precision, hint, thread count and cache folder."""
    if hint not in HINTS:
        raise UsageError(f"unknown OpenVINO performance hint {hint!r}; choose one of: {', '.join(HINTS)}")
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": _INFERENCE_PRECISION[precision],
                              "PERFORMANCE_HINT": hint.upper()}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    if cache_dir is not None:
        config["CACHE_DIR"] = str(cache_dir)
    return config


def compiled_loader(model: Path, precision: str, *, hint: str = "latency", threads: int | None = None,
                    cache_dir: Path | None = None) -> Callable[[], "ov.CompiledModel"]:
    """A loader that compiles `model` (.onnx or IR .xml) for the CPU (nothing is imported until it is called)."""
    config = compile_config(precision, hint, threads, cache_dir)

    def load() -> "ov.CompiledModel":
        ov = import_openvino()
        if precision == "bf16" and not bf16_supported():
            raise BackendUnavailable("ov-cpu bf16 needs a CPU with AVX512-BF16 or AMX; OpenVINO reports only "
                                     f"{', '.join(ov.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES'))} "
                                     "here: use fp32 or int8")
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
        # A path (not a read model) lets a cache hit skip reading the ONNX file too.
        compiled = ov.Core().compile_model(str(model), "CPU", config)
        got = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
        wanted = {"f32": "float32", "bf16": "bfloat16"}[config["INFERENCE_PRECISION_HINT"]]
        if wanted not in got:
            raise BackendUnavailable(f"OpenVINO compiled {model.name} for {got}, not the {wanted} asked for")
        return compiled

    return load


class OpenVinoRunner(Runner):
    """An OpenVINO compiled model with one infer request per stream (one with the latency hint)."""

    def __init__(self, load: Callable[[], "ov.CompiledModel"], *args: Any, **kwargs: Any) -> None:
        super().__init__(load, *args, backend="ov-cpu", **kwargs)
        self._compiled: Any = None
        self._requests: list[Any] = []
        self._outputs_at: dict[str, int] = {}

    def _activate(self, compiled: Any) -> None:
        def index_of(ports: Any, specs: list[Any], what: str) -> dict[str, int]:
            names = [port.get_names() for port in ports]
            found = {s.name: next((i for i, n in enumerate(names) if s.name in n), None) for s in specs}
            if None in found.values() or len(ports) != len(specs):
                raise RuntimeError(f"model {what} {sorted(set().union(*names))} do not match the manifest's "
                                   f"{sorted(found)}")
            return found  # type: ignore[return-value]

        index_of(compiled.inputs, self._inputs, "inputs")
        self._outputs_at = index_of(compiled.outputs, self._outputs, "outputs")
        self._compiled = compiled
        streams = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._requests = [compiled.create_infer_request() for _ in range(max(1, streams))]

    def _infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = {name: np.ascontiguousarray(a) for name, a in feeds.items()}
        batch = len(next(iter(arrays.values())))
        parts = min(batch, len(self._requests))
        if parts == 1:
            # share_inputs: OpenVINO reads the numpy buffers in place (the call is synchronous);
            # outputs are copied out of the request (share_outputs is off), so reuse cannot alias them.
            results = self._requests[0].infer(arrays, share_inputs=True)
            return {name: results[i] for name, i in self._outputs_at.items()}
        # Throughput hint: one slice of the batch per stream, all in flight at once.
        bounds = np.linspace(0, batch, parts + 1).astype(int)
        slices = [{k: a[lo:hi] for k, a in arrays.items()} for lo, hi in zip(bounds[:-1], bounds[1:])]
        for request, part in zip(self._requests, slices):
            request.start_async(part, share_inputs=True)
        outputs: dict[str, list[np.ndarray]] = {name: [] for name in self._outputs_at}
        for request in self._requests[:parts]:
            request.wait()
            for name, i in self._outputs_at.items():
                outputs[name].append(request.get_output_tensor(i).data.copy())
        return {name: np.concatenate(chunks) for name, chunks in outputs.items()}

    def _deactivate(self) -> None:
        self._requests = []
        self._compiled = None

"""Native TensorRT (10.x Python API): a serialized engine, one execution context, preallocated buffers.

Device memory is torch CUDA tensors (simplest and real: torch owns the allocations, TensorRT
gets their addresses); host copies go through pinned buffers on one CUDA stream. Buffers are
sized once for the engine's largest profile shapes and reused for every call.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ganrt.errors import BackendUnavailable, FeedError
from infer.runners.base import Runner
from infer.runners.devices import cuda_device_count

_REBUILD = "rebuild it on this machine: python -m export {artifact} --trt"


def import_tensorrt() -> Any:
    """The tensorrt module, or BackendUnavailable saying what to install."""
    try:
        import tensorrt
    except ImportError:
        raise BackendUnavailable("the trt backend needs TensorRT's Python package: pip install tensorrt "
                                 "(NVIDIA GPU with a recent driver required)") from None
    return tensorrt


def cuda_torch() -> Any:
    """torch with CUDA (its tensors are this runner's device buffers), or BackendUnavailable."""
    if cuda_device_count() == 0:
        raise BackendUnavailable("the trt backend needs an NVIDIA GPU and its driver; none is visible here")
    try:
        import torch
    except ImportError:
        raise BackendUnavailable("the trt backend uses torch CUDA tensors as device memory: pip install torch "
                                 "(a CUDA build)") from None
    if not torch.cuda.is_available():
        raise BackendUnavailable(f"the trt backend uses torch CUDA tensors as device memory, but this torch "
                                 f"{torch.__version__} has no CUDA: install a CUDA build of torch")
    return torch


@dataclass
class LoadedEngine:
    """A deserialized engine with the runtime that must outlive it."""

    runtime: Any
    engine: Any


def engine_loader(plan: Path, built_for: Mapping[str, Any], artifact: str) -> Callable[[], LoadedEngine]:
    """A loader that checks the engine was built for this GPU and TensorRT version, then deserializes it."""
    def load() -> LoadedEngine:
        trt = import_tensorrt()
        torch = cuda_torch()
        here_gpu = torch.cuda.get_device_name()
        # Engines are not portable across GPU models or TensorRT versions (TensorRT developer guide).
        if built_for.get("tensorrt") and built_for["tensorrt"] != trt.__version__:
            raise BackendUnavailable(f"{plan.name} was built with TensorRT {built_for['tensorrt']}, this machine has "
                                     f"{trt.__version__}: " + _REBUILD.format(artifact=artifact))
        if built_for.get("gpu") and built_for["gpu"] != here_gpu:
            raise BackendUnavailable(f"{plan.name} was built for {built_for['gpu']}, this GPU is {here_gpu}: "
                                     + _REBUILD.format(artifact=artifact))
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        engine = runtime.deserialize_cuda_engine(plan.read_bytes())
        if engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {plan} (see its log above)")
        return LoadedEngine(runtime, engine)

    return load


class TrtRunner(Runner):
    """A TensorRT engine run with execute_async_v3 on a private CUDA stream."""

    def __init__(self, load: Callable[[], LoadedEngine], *args: Any, **kwargs: Any) -> None:
        super().__init__(load, *args, backend="trt", **kwargs)
        self._loaded: LoadedEngine | None = None
        self._context: Any = None
        self._stream: Any = None
        self._device: dict[str, Any] = {}
        self._host: dict[str, Any] = {}
        self._dtype: dict[str, np.dtype] = {}
        self._profile: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self._input_names: list[str] = []
        self._output_names: list[str] = []

    def _activate(self, loaded: LoadedEngine) -> None:
        trt = import_tensorrt()
        torch = cuda_torch()
        engine = loaded.engine
        context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._input_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._output_names = [n for n in names if n not in self._input_names]
        for name in self._input_names:
            shape = tuple(engine.get_tensor_shape(name))
            if -1 in shape:
                lo, _, hi = engine.get_tensor_profile_shape(name, 0)
                self._profile[name] = (tuple(lo), tuple(hi))
                shape = tuple(hi)
            else:
                self._profile[name] = (shape, shape)
            # Set the largest shapes so the context reports the largest output shapes.
            context.set_input_shape(name, shape)
        self.max_batch = min(hi[0] for _, hi in self._profile.values())
        for name in names:
            shape = tuple(context.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            torch_dtype = torch.from_numpy(np.empty(0, dtype)).dtype
            numel = int(np.prod(shape))
            self._dtype[name] = dtype
            self._device[name] = torch.empty(numel, dtype=torch_dtype, device="cuda")
            # Pinned (page-locked) host memory makes the copies truly asynchronous on the stream.
            self._host[name] = torch.empty(numel, dtype=torch_dtype, pin_memory=True)
        self._stream = torch.cuda.Stream()
        self._context = context
        self._loaded = loaded

    def _infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        context = self._context
        shapes: dict[str, tuple[int, ...]] = {}
        with torch.cuda.stream(self._stream):
            for name in self._input_names:
                a = np.ascontiguousarray(feeds[name], dtype=self._dtype[name])
                lo, hi = self._profile[name]
                if any(d < low or d > high for d, low, high in zip(a.shape, lo, hi)):
                    raise FeedError(f"input {name!r}: shape {a.shape} is outside the engine's profile {lo}..{hi} "
                                    f"(rebuild with a wider --batch/--size)")
                host = self._host[name][:a.size]
                host.copy_(torch.from_numpy(a).reshape(-1))
                device = self._device[name][:a.size]
                device.copy_(host, non_blocking=True)
                context.set_input_shape(name, a.shape)
                context.set_tensor_address(name, device.data_ptr())
            for name in self._output_names:
                shapes[name] = tuple(context.get_tensor_shape(name))
                context.set_tensor_address(name, self._device[name].data_ptr())
            if not context.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")
            for name in self._output_names:
                n = int(np.prod(shapes[name]))
                self._host[name][:n].copy_(self._device[name][:n], non_blocking=True)
        self._stream.synchronize()
        outputs = {}
        for name, shape in shapes.items():
            values = self._host[name][:int(np.prod(shape))].numpy().reshape(shape)
            # Copy out of the reused pinned buffer; fp16 engine outputs come back as fp32 like every runner's.
            outputs[name] = values.astype(np.float32) if values.dtype.kind == "f" else values.copy()
        return outputs

    def _deactivate(self) -> None:
        self._context = None
        self._loaded = None
        self._device.clear()
        self._host.clear()
        self._stream = None

"""ONNX Runtime: one runner for ort-cpu, ort-cuda and ort-trt, which differ only in their providers list."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ganrt.artifact import check_model_file
from ganrt.errors import ArtifactError, BackendUnavailable
from infer.runners.base import Runner
from infer.runners.devices import cuda_device_count

if TYPE_CHECKING:
    import onnxruntime as ort

# The execution provider each backend needs first in its providers list.
PROVIDER = {
    "ort-cpu": "CPUExecutionProvider",
    "ort-cuda": "CUDAExecutionProvider",
    "ort-trt": "TensorrtExecutionProvider",
}
_GPU_PACKAGE = ("install onnxruntime-gpu (pip uninstall onnxruntime && pip install onnxruntime-gpu: "
                "the CPU and GPU packages must not both be installed) on a machine with an NVIDIA GPU")


def import_onnxruntime() -> Any:
    """The onnxruntime module, or BackendUnavailable saying what to install."""
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailable("ONNX Runtime is not installed: pip install onnxruntime (CPU), or onnxruntime-gpu "
                                 "for NVIDIA GPUs (only one of the two)") from None
    return onnxruntime


# ONNX Runtime's load errors that mean the file is not a usable model (others are the runtime's).
_BAD_MODEL_ERRORS = ("InvalidProtobuf", "InvalidArgument", "InvalidGraph", "NoSuchFile", "NoModel", "Fail")


def providers_for(backend: str, *, device_id: int = 0, trt_fp16: bool = False, trt_int8: bool = False,
                  cache_dir: Path | None = None) -> list[Any]:
    """The providers list for a backend, each GPU provider with its options (ONNX Runtime EP docs)."""
    if backend == "ort-cpu":
        return ["CPUExecutionProvider"]
    cuda = ("CUDAExecutionProvider", {"device_id": device_id})
    if backend == "ort-cuda":
        return [cuda, "CPUExecutionProvider"]
    if backend != "ort-trt":
        raise ValueError(f"not an ONNX Runtime backend: {backend!r}")
    # TensorRT EP options (onnxruntime.ai/docs/execution-providers/TensorRT-ExecutionProvider.html):
    # engines and tactic timings are cached on disk, or every session start rebuilds them (minutes).
    trt_options: dict[str, Any] = {"device_id": device_id, "trt_fp16_enable": trt_fp16, "trt_int8_enable": trt_int8}
    if cache_dir is not None:
        trt_options.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir),
                           trt_timing_cache_enable=True, trt_timing_cache_path=str(cache_dir))
    # Nodes TensorRT cannot take fall back to CUDA, then to the CPU.
    return [("TensorrtExecutionProvider", trt_options), cuda, "CPUExecutionProvider"]


def session_loader(model_path: Path, backend: str, *, threads: int | None = None, device_id: int = 0,
                   trt_fp16: bool = False, trt_int8: bool = False, cache_dir: Path | None = None,
                   sha256: str | None = None, size: int | None = None) -> Callable[[], "ort.InferenceSession"]:
    """A loader that builds an InferenceSession for `backend` (nothing is imported until it is called).

    The file is checked first against the `size` and `sha256` its manifest recorded, when given;
    a file ONNX Runtime cannot parse is an ArtifactError naming it.
    """
    def load() -> "ort.InferenceSession":
        ort = import_onnxruntime()
        wanted = PROVIDER[backend]
        if wanted not in ort.get_available_providers():
            raise BackendUnavailable(f"{backend} needs ONNX Runtime's {wanted}, which this onnxruntime "
                                     f"{ort.__version__} lacks: {_GPU_PACKAGE}")
        if backend != "ort-cpu" and cuda_device_count() == 0:
            raise BackendUnavailable(f"{backend} needs an NVIDIA GPU and its driver; none is visible here")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        providers = providers_for(backend, device_id=device_id, trt_fp16=trt_fp16, trt_int8=trt_int8, cache_dir=cache_dir)
        check_model_file(Path(model_path), sha256, size)
        errors = ort.capi.onnxruntime_pybind11_state
        bad_model = tuple(getattr(errors, name) for name in _BAD_MODEL_ERRORS if hasattr(errors, name))
        try:
            session = ort.InferenceSession(str(model_path), sess_options=options, providers=providers)
        except bad_model as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ArtifactError(f"{model_path} is not a usable ONNX model: {reason}") from None
        # ORT falls back to the next provider when one fails to initialise (e.g. CUDA or cuDNN
        # libraries missing): that would silently run on the CPU, so refuse it.
        if wanted not in session.get_providers():
            raise BackendUnavailable(f"{wanted} did not initialise (check the CUDA/cuDNN/TensorRT libraries that "
                                     f"onnxruntime-gpu {ort.__version__} needs); session providers: "
                                     f"{session.get_providers()}")
        return session

    return load


class OrtRunner(Runner):
    """An ONNX Runtime session; on a GPU, `keep_on_device` binds inputs/outputs on the device (IO binding)."""

    def __init__(self, load: Callable[[], "ort.InferenceSession"], *args: Any, keep_on_device: bool = False,
                 device_id: int = 0, **kwargs: Any) -> None:
        super().__init__(load, *args, **kwargs)
        self.keep_on_device = keep_on_device and self.backend != "ort-cpu"
        self.device_id = device_id
        self._session: Any = None
        self._binding: Any = None
        self._output_names: list[str] = []

    def _activate(self, session: Any) -> None:
        model_inputs = {i.name for i in session.get_inputs()}
        wanted = {s.name for s in self._inputs}
        if model_inputs != wanted:
            raise RuntimeError(f"model inputs {sorted(model_inputs)} do not match the manifest's {sorted(wanted)}")
        self._session = session
        self._output_names = [o.name for o in session.get_outputs()]
        if self.keep_on_device:
            self._binding = session.io_binding()

    def _infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._binding is None:
            return dict(zip(self._output_names, self._session.run(self._output_names, dict(feeds))))
        ort = import_onnxruntime()
        device_feeds = {name: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(a), "cuda", self.device_id)
                        for name, a in feeds.items()}
        return {name: value.numpy() for name, value in self.run_on_device(device_feeds).items()}

    def run_on_device(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """Run OrtValues already on the GPU; outputs stay there as OrtValues (for chaining without copies).

        Feeds are not validated here: this is the fast path for callers that already did.
        """
        if self._binding is None:
            raise RuntimeError("run_on_device needs an active ort-cuda/ort-trt runner opened with keep_on_device=True")
        # ONNX Runtime I/O binding (onnxruntime.ai/docs/performance/tune-performance/iobinding.html):
        # inputs bound as device OrtValues, outputs allocated by ORT on the same device.
        self._binding.clear_binding_inputs()
        self._binding.clear_binding_outputs()
        for name, value in feeds.items():
            self._binding.bind_ortvalue_input(name, value)
        for name in self._output_names:
            self._binding.bind_output(name, "cuda", self.device_id)
        self._session.run_with_iobinding(self._binding)
        return dict(zip(self._output_names, self._binding.get_outputs()))

    def _deactivate(self) -> None:
        self._binding = None
        self._session = None

"""`model.py` of an artifact's `<name>_python` Triton model: its ONNX model on ONNX Runtime, batched.

Triton's Python backend runs this file (export copies it into `triton/<name>_python/1/`); it
needs numpy and onnxruntime in the Python that Triton's stub runs, and nothing of ganrt. That
Python is the first `python3` on tritonserver's PATH (or the model's EXECUTION_ENV_PATH):
`python -m infer triton` puts its own interpreter first, so the environment that runs ganrt
serves the model; in NVIDIA's containers `pip install onnxruntime` into the container's Python.

The ONNX file is the config's `onnx_model` parameter, relative to this model's folder (the fp32
model's `../<name>_fp32/1/model.onnx`: not a second copy). Input and output names, dtypes and
dims come from the config Triton hands over. Requests of one dynamic batch that share their
per-item shapes run as one ONNX Runtime call; each request gets its own rows back, and a
request that fails gets its own error, never its batch-mates'.
"""
import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils


def _numpy_dtype(triton_type: str) -> np.dtype:
    # "TYPE_FP32" in the config -> numpy.float32.
    return np.dtype(pb_utils.triton_string_to_numpy(triton_type))


class TritonPythonModel:
    """One ONNX Runtime session; `execute` runs each dynamic batch Triton forms."""

    def initialize(self, args: dict) -> None:
        """Open the session named by the `onnx_model` parameter and check it matches the config."""
        try:
            import onnxruntime
        except ImportError as e:
            import sys

            raise pb_utils.TritonModelException(
                f"onnxruntime is not importable in Triton's Python ({sys.executable}): pip install onnxruntime "
                f"there, or start Triton with a python3 that has it first on PATH ({e})") from None
        config = json.loads(args["model_config"])
        parameters = config.get("parameters", {})
        relative = parameters.get("onnx_model", {}).get("string_value")
        if not relative:
            raise pb_utils.TritonModelException("config.pbtxt lacks the parameter onnx_model (the ONNX file to run)")
        path = os.path.normpath(os.path.join(args["model_repository"], relative))
        if not os.path.isfile(path):
            raise pb_utils.TritonModelException(f"onnx_model {relative!r}: {path} is not a file")
        options = onnxruntime.SessionOptions()
        threads = int(parameters.get("intra_op_threads", {}).get("string_value", "0"))
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        # name -> (dtype, per-item shape the model takes: the config's reshape, else its dims).
        self.inputs = {t["name"]: (_numpy_dtype(t["data_type"]), t.get("reshape", {}).get("shape"))
                       for t in config["input"]}
        self.outputs = [t["name"] for t in config["output"]]
        model_inputs = {i.name for i in self.session.get_inputs()}
        model_outputs = {o.name for o in self.session.get_outputs()}
        if set(self.inputs) != model_inputs or not set(self.outputs) <= model_outputs:
            raise pb_utils.TritonModelException(
                f"config tensors {sorted(self.inputs)} -> {self.outputs} do not match {path}: "
                f"{sorted(model_inputs)} -> {sorted(model_outputs)}")

    def _feeds(self, request: "pb_utils.InferenceRequest") -> dict:
        feeds = {}
        for name, (dtype, reshape) in self.inputs.items():
            x = pb_utils.get_input_tensor_by_name(request, name).as_numpy()
            if reshape is not None:
                x = x.reshape((x.shape[0], *[int(d) for d in reshape]))
            feeds[name] = np.ascontiguousarray(x, dtype=dtype)
        return feeds

    def execute(self, requests: list) -> list:
        """One response per request, in order: same-shape requests share one session call."""
        responses: list = [None] * len(requests)
        groups: dict = {}
        for i, request in enumerate(requests):
            try:
                feeds = self._feeds(request)
            except Exception as e:  # noqa: BLE001 - a bad request answers its own error
                responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(f"bad input: {e}"))
                continue
            key = tuple((name, x.shape[1:]) for name, x in sorted(feeds.items()))
            groups.setdefault(key, []).append((i, feeds))
        for members in groups.values():
            rows = [len(next(iter(feeds.values()))) for _, feeds in members]
            batch = {name: np.concatenate([feeds[name] for _, feeds in members]) for name in self.inputs}
            try:
                results = dict(zip(self.outputs, self.session.run(self.outputs, batch)))
            except Exception as e:  # noqa: BLE001 - ONNX Runtime's message goes to these callers
                for i, _ in members:
                    responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(f"inference failed: {e}"))
                continue
            start = 0
            for (i, _), n in zip(members, rows):
                tensors = [pb_utils.Tensor(name, np.ascontiguousarray(y[start:start + n])) for name, y in results.items()]
                responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
                start += n
        return responses

    def finalize(self) -> None:
        """Release the session."""
        self.session = None

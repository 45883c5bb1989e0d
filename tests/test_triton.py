"""A real Triton Inference Server (the nvidia-pytriton wheel's tritonserver, Python backend) on the tiny artifacts'
triton/ repositories, on 127.0.0.1, driven with tritonclient over HTTP and gRPC.

Skipped, with the reason, only where no Triton environment is installed or its binary cannot
start (a model that fails to load is a failure). Install one with infer.tritonserver.TRITON_ENV_HINT.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from ganrt.compare import assert_within
from ganrt.errors import BackendUnavailable
from ganrt.targets import target
from infer.api import load
from infer.server.process import free_port
from infer.tritonserver import TritonFailed, TritonInstall, TritonServer, repository_of

http = pytest.importorskip("tritonclient.http")
grpc = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

# The Python model runs the fp32 ONNX file: the gate export applies to that file.
TOLERANCE = target("ort-cpu", "fp32").tolerance
REPO = Path(__file__).resolve().parents[1]


def _install() -> TritonInstall:
    try:
        return TritonInstall.find()
    except BackendUnavailable as e:
        pytest.skip(f"no Triton here: {e}")


def _start(server: TritonServer, log: Path) -> TritonServer:
    try:
        return server.start()
    except TritonFailed as e:
        text = log.read_text(errors="replace")
        if "model_lifecycle" in text or "Started HTTPService" in text:  # it ran: what failed is ours
            pytest.fail(f"{e}\n{text[-4000:]}")
        pytest.skip(f"the tritonserver binary cannot start here: {e}: {text[-600:]}")


@pytest.fixture(scope="module")
def triton(cyclegan_artifact: Path, cgan_artifact: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[dict[str, Any]]:
    """One server with both tiny repositories, each artifact's Python-backend model loaded."""
    install = _install()
    log = tmp_path_factory.mktemp("triton") / "tritonserver.log"
    models = {"translate": "tiny-cyclegan_python", "noise": "tiny-cgan_python"}
    with log.open("wb") as log_file:
        server = TritonServer([cyclegan_artifact / "triton", cgan_artifact / "triton"], list(models.values()),
                              http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(), log=log_file,
                              install=install)
        _start(server, log)
        try:
            yield {"server": server, "models": models, "log": log}
        finally:
            code = server.stop()
    assert code == 0, f"tritonserver did not stop cleanly (exit {code}):\n{log.read_text()[-3000:]}"


@pytest.fixture(scope="module")
def references(cyclegan_artifact: Path, cgan_artifact: Path) -> Iterator[dict[str, Any]]:
    """The torch generators (the export's parity reference) of both artifacts."""
    with load(cyclegan_artifact, backend="torch") as translate, load(cgan_artifact, backend="torch") as noise:
        yield {"translate": translate, "noise": noise}


def _image(seed: int, side: int = 32, batch: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (batch, 3, side, side)).astype(np.float32)


def _inputs(module: Any, feeds: dict[str, np.ndarray]) -> list[Any]:
    """tritonclient inputs for feeds; a label of shape (n,) is sent as Triton's (n, 1) (config dims [1])."""
    inputs = []
    for name, x in feeds.items():
        x = x.reshape(-1, 1) if x.ndim == 1 else x
        tensor = module.InferInput(name, list(x.shape), {np.float32: "FP32", np.int64: "INT64"}[x.dtype.type])
        tensor.set_data_from_numpy(x)
        inputs.append(tensor)
    return inputs


@pytest.fixture
def http_client(triton: dict[str, Any]) -> Iterator[Any]:
    client = http.InferenceServerClient(triton["server"].url.split("://")[1], concurrency=16, network_timeout=60)
    yield client
    client.close()  # an open keep-alive connection would hold up Triton's graceful shutdown


@pytest.fixture
def grpc_client(triton: dict[str, Any]) -> Iterator[Any]:
    client = grpc.InferenceServerClient(triton["server"].grpc_url)
    yield client
    client.close()


def _noise_feeds(seed: int, n: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"z": rng.standard_normal((n, 100)).astype(np.float32), "label": rng.integers(0, 10, n).astype(np.int64)}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_batch_1_matches_the_torch_generator(protocol: str, triton: dict[str, Any], references: dict[str, Any],
                                             request: pytest.FixtureRequest) -> None:
    client = request.getfixturevalue(f"{protocol}_client")
    module = http if protocol == "http" else grpc
    for kind, feeds, output in (("translate", {"image": _image(1)}, "image_out"), ("noise", _noise_feeds(2), "image")):
        result = client.infer(triton["models"][kind], _inputs(module, feeds))
        served = result.as_numpy(output)
        expected = references[kind].run(feeds)[output]
        assert served.shape == expected.shape
        assert_within(expected, served, TOLERANCE, name=f"Triton {protocol} {kind} vs torch")


def _stats(triton: dict[str, Any], kind: str) -> tuple[int, int]:
    stats = triton["server"].statistics(triton["models"][kind])
    return int(stats["inference_count"]), int(stats["execution_count"])


def test_concurrent_http_clients_are_batched_and_each_gets_its_own_rows(
        triton: dict[str, Any], references: dict[str, Any], http_client: Any) -> None:
    before = _stats(triton, "translate")
    images = [_image(100 + i) for i in range(32)]
    pending = [http_client.async_infer(triton["models"]["translate"], _inputs(http, {"image": x})) for x in images]
    results = [p.get_result().as_numpy("image_out") for p in pending]
    inferences, executions = (a - b for a, b in zip(_stats(triton, "translate"), before))
    assert inferences == 32
    # Dynamic batching: 32 requests in flight at once ran in fewer model executions.
    assert executions < inferences, f"no batching: {executions} executions for {inferences} requests"
    expected = references["translate"].run({"image": np.concatenate(images)})["image_out"]
    assert_within(expected, np.concatenate(results), TOLERANCE, name="batched Triton answers vs torch")


def test_concurrent_grpc_clients_are_batched(triton: dict[str, Any], references: dict[str, Any]) -> None:
    before = _stats(triton, "noise")
    feeds = [_noise_feeds(200 + i) for i in range(24)]

    def one(f: dict[str, np.ndarray]) -> np.ndarray:
        with grpc.InferenceServerClient(triton["server"].grpc_url) as client:
            return client.infer(triton["models"]["noise"], _inputs(grpc, f)).as_numpy("image")

    with ThreadPoolExecutor(8) as pool:  # eight clients, three requests each
        results = list(pool.map(one, feeds))
    inferences, executions = (a - b for a, b in zip(_stats(triton, "noise"), before))
    assert inferences == 24 and executions < inferences, (inferences, executions)
    batch = {k: np.concatenate([f[k] for f in feeds]) for k in ("z", "label")}
    assert_within(references["noise"].run(batch)["image"], np.concatenate(results), TOLERANCE,
                  name="concurrent gRPC answers vs torch")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_malformed_requests_get_errors_and_the_server_stays_up(protocol: str, triton: dict[str, Any],
                                                               references: dict[str, Any],
                                                               request: pytest.FixtureRequest) -> None:
    client = request.getfixturevalue(f"{protocol}_client")
    module = http if protocol == "http" else grpc
    model = triton["models"]["translate"]
    wrong_dtype = module.InferInput("image", [1, 3, 32, 32], "INT32")
    wrong_dtype.set_data_from_numpy(np.zeros((1, 3, 32, 32), np.int32))
    cases = {
        "wrong shape": (_inputs(module, {"image": np.zeros((1, 2, 32, 32), np.float32)}), "shape"),
        "wrong dtype": ([wrong_dtype], "data-type"),
        "batch over max_batch_size": (_inputs(module, {"image": np.zeros((17, 3, 8, 8), np.float32)}), "batch"),
        # Triton accepts any H, W (dims -1): ONNX Runtime's refusal comes back through model.py.
        "image too small for the net": (_inputs(module, {"image": np.zeros((1, 3, 4, 4), np.float32)}),
                                        "inference failed"),
    }
    for case, (inputs, words) in cases.items():
        with pytest.raises(InferenceServerException) as error:
            client.infer(model, inputs)
        assert words in str(error.value).lower(), f"{case}: {error.value}"
    assert client.is_server_live() and client.is_model_ready(model)
    good = client.infer(model, _inputs(module, {"image": _image(7)})).as_numpy("image_out")
    assert_within(references["translate"].run({"image": _image(7)})["image_out"], good, TOLERANCE,
                  name="a good request after the bad ones")


def test_an_artifact_without_a_python_model_gets_a_temporary_repository(cyclegan_artifact: Path,
                                                                        tmp_path: Path) -> None:
    import shutil

    from ganrt.artifact import Artifact

    copy = tmp_path / "art"
    shutil.copytree(cyclegan_artifact, copy, ignore=shutil.ignore_patterns("triton"))
    with repository_of(Artifact.load(copy)) as (repository, model):
        assert model == "tiny-cyclegan_python" and repository.parent != copy
        assert sorted(p.name for p in repository.iterdir()) == ["tiny-cyclegan_fp32", "tiny-cyclegan_python"]
    assert not repository.exists()
    with repository_of(Artifact.load(cyclegan_artifact)) as (repository, _):
        assert repository == cyclegan_artifact / "triton"


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_cli_serves_the_shipped_artifact_and_stops_on_ctrl_c(stop: int, tmp_path: Path) -> None:
    install = _install()
    ports = {"--http-port": free_port(), "--grpc-port": free_port(), "--metrics-port": free_port()}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env["GANRT_TRITON_ENV"] = str(install.python.parent.parent)  # the command runs in an empty folder
    command = [sys.executable, "-m", "infer", "triton", *(str(x) for kv in ports.items() for x in kv)]
    log = tmp_path / "cli.log"
    with log.open("wb") as out:
        # No ARTIFACT and no ./artifacts: the shipped model, whose artifact has no triton/ of its own.
        proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            with http.InferenceServerClient(f"127.0.0.1:{ports['--http-port']}") as client:
                deadline = time.monotonic() + 120
                while not _ready(client) and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.3)
                assert _ready(client), log.read_text()[-3000:]
                model = "cyclegan-photo2sketch_python"
                y = client.infer(model, _inputs(http, {"image": _image(3, side=64)})).as_numpy("image_out")
                assert y.shape == (1, 3, 64, 64) and np.isfinite(y).all()
            # Triton answers before the CLI's own readiness poll sees it: Ctrl-C once it says it serves.
            while "Triton serves" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            proc.send_signal(stop)
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "Triton serves cyclegan-photo2sketch_python" in text and "Triton stopped" in text
    with http.InferenceServerClient(f"127.0.0.1:{ports['--http-port']}") as client:
        assert not _ready(client)  # tritonserver went with the CLI, not orphaned in its own session


def test_tritonserver_stops_when_the_cli_is_killed(tmp_path: Path) -> None:
    install = _install()
    ports = {"--http-port": free_port(), "--grpc-port": free_port(), "--metrics-port": free_port()}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env["GANRT_TRITON_ENV"] = str(install.python.parent.parent)
    command = [sys.executable, "-m", "infer", "triton", *(str(x) for kv in ports.items() for x in kv)]
    with (tmp_path / "cli.log").open("wb") as out:
        proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    with http.InferenceServerClient(f"127.0.0.1:{ports['--http-port']}") as client:
        try:
            deadline = time.monotonic() + 120
            while not _ready(client) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.3)
            assert _ready(client), (tmp_path / "cli.log").read_text()[-3000:]
        finally:
            proc.kill()  # no time for a clean stop: the kernel's parent-death signal must end Triton
            proc.wait(30)
        deadline = time.monotonic() + 60
        while _ready(client) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _ready(client), "tritonserver outlived the killed CLI"


def _ready(client: Any) -> bool:
    try:
        return bool(client.is_server_ready())
    except Exception:  # noqa: BLE001 - not listening yet
        return False


def test_cli_without_a_triton_environment_is_a_one_line_error(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "infer", "triton", "--triton-env", str(tmp_path / "nothing")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: no Triton environment") and "nvidia-pytriton" in proc.stderr

"""A real Triton Inference Server on an artifact's `triton/` repository: found, started, waited for, stopped.

The server is the `tritonserver` binary (2.51, Python backend only) of the `nvidia-pytriton`
wheel, installed with its own requirements in a Python environment of its own, the Triton
environment (`TRITON_ENV_HINT`): the wheel pins numpy<2, and its Python-backend stub (built
with numpy 1 headers) misreads numpy 2 arrays (output tensors come back with wrong sizes or
data), while ganrt's environment has numpy 2 (OpenCV 5 needs it). How the server runs here:

- its bundled libraries (`site-packages/nvidia_pytriton.libs`) on LD_LIBRARY_PATH;
- a backend directory whose `python/` has the backend library and the stub built for the
  Triton environment's Python version (the wheel ships one per version): links in a temp folder;
- the stub runs the first `python3` on PATH, whose site-packages become the model's sys.path
  (PYTHONPATH is ignored): the Triton environment's bin directory goes first on PATH, and its
  libpython first on LD_LIBRARY_PATH, so model.py finds numpy and onnxruntime there.

`TritonServer` binds 127.0.0.1 by default, loads only the models it is given (explicit model
control: the repository's onnxruntime_onnx / tensorrt_plan models need backends this build lacks)
and stops on SIGINT as Triton does on Ctrl-C.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

from ganrt.artifact import Artifact
from ganrt.errors import ArtifactError, BackendUnavailable
from ganrt.targets import target

log = logging.getLogger("ganrt.infer.triton")

# Where the Triton environment is looked for: this variable, then ./.venv-triton, then the running environment.
ENV_VARIABLE = "GANRT_TRITON_ENV"
DEFAULT_ENV = Path(".venv-triton")
TRITON_ENV_HINT = ("python -m venv .venv-triton && .venv-triton/bin/pip install nvidia-pytriton==0.7.0 onnxruntime "
                   f"(or point {ENV_VARIABLE} at such an environment)")
# Triton's own wait for in-flight requests on SIGINT; we wait a little longer before killing it.
EXIT_TIMEOUT_S = 10
# Run by the environment's python3: where pytriton is (found, not imported), its version, libpython, numpy.
_PROBE = """
import importlib.metadata as md, importlib.util, json, sys, sysconfig
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None
spec = importlib.util.find_spec("pytriton")
print(json.dumps({"pytriton": list(spec.submodule_search_locations) if spec else None,
                  "python": "%d.%d" % sys.version_info[:2],
                  "libdir": sysconfig.get_config_var("LIBDIR") if sysconfig.get_config_var("Py_ENABLE_SHARED") else None,
                  "numpy": version("numpy"), "onnxruntime": version("onnxruntime")}))
"""


def _environments(env: Path | None) -> list[Path]:
    if env is not None:
        return [Path(env)]
    named = os.environ.get(ENV_VARIABLE)
    return [Path(named)] if named else [DEFAULT_ENV, Path(sys.prefix)]


def _probe(python: Path) -> dict | None:
    try:
        out = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True)
        return json.loads(out.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


@dataclass(frozen=True)
class TritonInstall:
    """A Triton environment: its python3 (the stub's Python), the server, its libraries, backend and stub."""

    python: Path
    binary: Path
    libs: Path
    python_backend: Path
    stub: Path
    libpython_dir: Path | None

    @classmethod
    def find(cls, env: Path | None = None) -> "TritonInstall":
        """The first Triton environment found (`env`, else $GANRT_TRITON_ENV, ./.venv-triton, this one)."""
        problems = []
        for folder in _environments(env):
            python = folder / "bin" / "python3"
            facts = _probe(python) if python.is_file() else None
            if facts is None or not facts["pytriton"]:
                problems.append(f"{folder}: no nvidia-pytriton" if python.is_file() else f"{folder}: no Python")
                continue
            major = int((facts["numpy"] or "0").split(".")[0])
            if facts["numpy"] is None or major >= 2 or facts["onnxruntime"] is None:
                problems.append(f"{folder}: needs numpy<2 (has {facts['numpy']}) and onnxruntime "
                                f"(has {facts['onnxruntime']}) for Triton's Python stub")
                continue
            return cls._at(python.absolute(), Path(facts["pytriton"][0]), facts["python"], facts["libdir"])
        raise BackendUnavailable(f"no Triton environment ({'; '.join(problems)}): {TRITON_ENV_HINT}")

    @classmethod
    def _at(cls, python: Path, package: Path, version: str, libdir: str | None) -> "TritonInstall":
        dist = package / "tritonserver"
        install = cls(python=python, binary=dist / "bin" / "tritonserver", libs=package.parent / "nvidia_pytriton.libs",
                      python_backend=dist / "backends" / "python",
                      stub=dist / "python_backend_stubs" / version / "triton_python_backend_stub",
                      libpython_dir=Path(libdir) if libdir else None)
        for what, path in (("server", install.binary), ("libraries", install.libs),
                           ("Python backend", install.python_backend / "libtriton_python.so")):
            if not path.exists():
                raise BackendUnavailable(f"the nvidia-pytriton install at {package} lacks its {what} ({path})")
        if not install.stub.is_file():
            shipped = sorted(p.name for p in (dist / "python_backend_stubs").iterdir())
            raise BackendUnavailable(f"nvidia-pytriton has Python-backend stubs for {', '.join(shipped)}, "
                                     f"not for Python {version} ({python})")
        return install

    def stage_backends(self, folder: Path) -> Path:
        """A backend directory in `folder` (links, no copies): python/ with the stub for this environment."""
        python = folder / "backends" / "python"
        python.mkdir(parents=True, exist_ok=True)
        for source in (self.python_backend / "libtriton_python.so",
                       self.python_backend / "triton_python_backend_utils.py", self.stub):
            (python / source.name).symlink_to(source)
        return python.parent

    def environment(self) -> dict[str, str]:
        """The server's environment: its libraries, and the Triton environment's python3 as the stub's Python."""
        env = dict(os.environ)
        libs = [str(p) for p in (self.libpython_dir, self.libs) if p is not None]
        env["LD_LIBRARY_PATH"] = os.pathsep.join([*libs, *filter(None, [env.get("LD_LIBRARY_PATH")])])
        env["PATH"] = os.pathsep.join([str(self.python.parent), env.get("PATH", "")])
        env.pop("VIRTUAL_ENV", None)
        return env


def _terminate_with_parent() -> None:
    """In the child before exec: ask Linux for SIGTERM when the parent dies (prctl PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class TritonFailed(BackendUnavailable):
    """The server exited before it was ready, or did not become ready in time (its log says why)."""


class TritonServer:
    """`with TritonServer([repo], ["m_python"], http_port=8000, grpc_port=8001, metrics_port=8002) as s: ...`.

    Entering starts tritonserver and waits until /v2/health/ready answers 200 (every model
    loaded); leaving sends SIGINT and waits for Triton's graceful shutdown (killed after that).
    `log` receives the server's output (default: this process's stdout/stderr).
    """

    def __init__(self, repositories: list[Path], models: list[str], http_port: int, grpc_port: int,
                 metrics_port: int, host: str = "127.0.0.1", log: IO[bytes] | None = None,
                 ready_timeout_s: float = 120.0, install: TritonInstall | None = None):
        self.install = install or TritonInstall.find()
        self.repositories, self.models, self.host = [Path(r).resolve() for r in repositories], models, host
        self.http_port, self.grpc_port, self.metrics_port = http_port, grpc_port, metrics_port
        self.log, self.ready_timeout_s = log, ready_timeout_s
        self.proc: subprocess.Popen | None = None
        self._staging: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        """The HTTP (KServe v2) endpoint."""
        return f"http://{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        """The gRPC endpoint, as tritonclient.grpc takes it (host:port)."""
        return f"{self.host}:{self.grpc_port}"

    def command(self, backends: Path) -> list[str]:
        """The tritonserver command line."""
        cmd = [str(self.install.binary), *(f"--model-repository={r}" for r in self.repositories),
               f"--backend-directory={backends}", "--model-control-mode=explicit",
               *(f"--load-model={m}" for m in self.models), "--strict-readiness=true", "--exit-on-error=true",
               "--disable-auto-complete-config", f"--exit-timeout-secs={EXIT_TIMEOUT_S}"]
        for protocol, port in (("http", self.http_port), ("grpc", self.grpc_port), ("metrics", self.metrics_port)):
            cmd += [f"--{protocol}-address={self.host}", f"--{protocol}-port={port}"]
        return cmd

    def start(self) -> "TritonServer":
        """Start the server and wait until it and its models are ready; TritonFailed otherwise."""
        self._staging = tempfile.TemporaryDirectory(prefix="ganrt-triton-")
        command = self.command(self.install.stage_backends(Path(self._staging.name)))
        log.debug("starting %s", " ".join(command))
        # Its own session: a terminal's Ctrl-C reaches us, and we stop it once (stop()). Killed
        # with us (SIGKILL leaves no time for stop()) it gets SIGTERM from the kernel, not an orphan's life.
        self.proc = subprocess.Popen(command, env=self.install.environment(), stdout=self.log, stderr=self.log,
                                     start_new_session=True, preexec_fn=_terminate_with_parent)
        try:
            self._wait_ready()
        except BaseException:  # not ready, or Ctrl-C while waiting: never leave it running
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TritonFailed(f"tritonserver exited with code {self.proc.returncode} before it was ready "
                                   "(see its log)")
            if self._ready():
                return
            time.sleep(0.2)
        raise TritonFailed(f"tritonserver was not ready after {self.ready_timeout_s:g} s")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def statistics(self, model: str) -> dict:
        """Triton's statistics of one model (GET /v2/models/<model>/stats): counts and cumulative ns."""
        with urllib.request.urlopen(f"{self.url}/v2/models/{model}/stats", timeout=10) as r:
            return json.loads(r.read())["model_stats"][0]

    def wait(self) -> int:
        """Block until the server exits; its exit code."""
        assert self.proc is not None, "not started"
        return self.proc.wait()

    def stop(self) -> int | None:
        """SIGINT (Triton's graceful shutdown), then kill if it lingers; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(EXIT_TIMEOUT_S + 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._cleanup()
        return self.proc.returncode

    def _cleanup(self) -> None:
        if self._staging is not None:
            self._staging.cleanup()
            self._staging = None

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def repository_of(artifact: Artifact) -> Iterator[tuple[Path, str]]:
    """(repository, Python-backend model name) for `artifact`: its own triton/, else one written to a temp folder.

    The Python-backend model is the one of the manifest's `triton.models` with a `1/model.py`.
    Artifacts exported before it existed, and the shipped one (which leaves triton/ out), get a
    fresh repository with that model and the fp32 ONNX model it runs, written by export's writer.
    """
    own = artifact.root / "triton"
    listed = (artifact.manifest.triton or {}).get("models", [])
    found = [m for m in listed if (own / m / "config.pbtxt").is_file() and (own / m / "1" / "model.py").is_file()]
    if found:
        yield own, found[0]
        return
    try:
        from export.triton import PYTHON_RUNS, python_model_name, write_repository
    except ImportError:
        raise ArtifactError(f"artifact {artifact.name} has no Python-backend model in its triton/, and writing one "
                            "needs ganrt's export package: re-export the artifact with python -m export") from None
    onnx = artifact.model_path(target("ort-cpu", PYTHON_RUNS))
    with tempfile.TemporaryDirectory(prefix="ganrt-triton-repo-") as tmp:
        repo = Path(tmp) / "triton"
        name = python_model_name(artifact.name)
        log.info("%s has no %s in its triton/: serving a repository written to %s", artifact.name, name, repo)
        write_repository(repo, artifact.name, {PYTHON_RUNS: onnx}, artifact.inputs, artifact.outputs,
                         artifact.manifest.batch.max)
        yield repo, name

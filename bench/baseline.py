"""The plain FastAPI baseline of the fleet bench: what a minimal model server does.

One route, ``POST /predict``, whose body is a JSON list of floats: the feature values of one row
for every scikit-learn estimator inside a service's artifact, one after the other (each takes
its ``n_features_in_`` values). Each estimator is called on that one row with ``predict_proba``
(``predict`` for regressors and isolation forests). No auth, no Redis, no validation beyond the
list of floats, no logging. Served by gunicorn with 2 uvicorn workers (as the services are),
loading the same joblib artifact as the service::

    VIGIE_BENCH_ARTIFACT=models/turbine-nox/<version>/model.joblib \\
        gunicorn -k uvicorn_worker.UvicornWorker -w 2 'bench.baseline:create_app()'

:func:`estimators_of` finds the estimators (the harness uses it too, to build the rows).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
from fastapi import FastAPI
from sklearn.base import BaseEstimator

ARTIFACT_ENV = "VIGIE_BENCH_ARTIFACT"
REPO_ROOT = Path(__file__).resolve().parents[1]
_MAX_DEPTH = 3


def _children(obj: Any) -> list[Any]:
    if isinstance(obj, dict):
        return list(obj.values())
    if isinstance(obj, list | tuple):
        return list(obj)
    # The services' own model classes (vigie_services.*), not numpy arrays, strings, ...
    if type(obj).__module__.startswith("vigie_services") and hasattr(obj, "__dict__"):
        return list(vars(obj).values())
    return []


def estimators_of(model: Any, _depth: int = 0) -> list[Any]:
    """The scikit-learn estimators of an artifact, outermost first, in attribute order (an
    estimator's own members, e.g. a voting classifier's, are not listed separately)."""
    if isinstance(model, BaseEstimator):
        return [model]
    if _depth >= _MAX_DEPTH:
        return []
    found: list[Any] = []
    for child in _children(model):
        for est in estimators_of(child, _depth + 1):
            if not any(est is seen for seen in found):
                found.append(est)
    return found


def method_of(estimator: Any) -> str:
    return "predict_proba" if hasattr(estimator, "predict_proba") else "predict"


def width_of(estimator: Any) -> int:
    return int(estimator.n_features_in_)


def create_app(artifact: Path | None = None) -> FastAPI:
    """The baseline app for the artifact at ``artifact`` (default: ``$VIGIE_BENCH_ARTIFACT``)."""
    path = artifact or Path(os.environ[ARTIFACT_ENV])
    estimators = [e for e in estimators_of(joblib.load(path)) if hasattr(e, "n_features_in_")]
    if not estimators:
        raise RuntimeError(f"{path}: no scikit-learn estimator found")
    calls: list[tuple[Callable[[Any], Any], int]] = [
        (getattr(e, method_of(e)), width_of(e)) for e in estimators
    ]
    # Estimators fitted on DataFrames warn on every numpy row; a plain server silences that.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    app = FastAPI(title="bench baseline")

    @app.post("/predict")
    def predict(row: list[float]) -> dict[str, Any]:
        outputs = []
        start = 0
        for call, width in calls:
            x = np.asarray(row[start : start + width], dtype=float).reshape(1, -1)
            outputs.append(np.asarray(call(x))[0].tolist())
            start += width
        return {"outputs": outputs}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


class BaselineServer:
    """The baseline under gunicorn (2 uvicorn workers) on ``port``, for the harness and tests."""

    def __init__(self, artifact: Path, port: int, log_path: Path, workers: int = 2) -> None:
        self.artifact = artifact
        self.port = port
        self.log_path = log_path
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> BaselineServer:
        env = {
            **os.environ,
            ARTIFACT_ENV: str(self.artifact),
            # One OpenMP thread per worker, like turbine-nox's runtime: on a small machine the
            # default (one per core, in each worker) would make the baseline look worse than it is.
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "-k",
            "uvicorn_worker.UvicornWorker",
            "-w",
            str(self.workers),
            "-b",
            f"127.0.0.1:{self.port}",
            "--log-level",
            "warning",
            "--timeout",
            "60",
            "bench.baseline:create_app()",
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 (our own argv)
                argv,
                env=env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"baseline exited early:\n{self.log()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"baseline not ready after {timeout:.0f} s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()  # gunicorn: SIGTERM is a graceful stop of master and workers
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):  # master and workers: its group
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> BaselineServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

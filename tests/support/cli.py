"""``vigie train`` / ``vigie evaluate`` / ``vigie models show`` as the services' CLI tests run
them (design.md section 7): a subprocess each, as a user would, with its exit code checked."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import real_data_dir
from tests.support.serving import vigie


def cli_env(models: Path, var: Path, **extra: str) -> dict[str, str]:
    """The environment of a command reading and writing ``models``, its state under ``var``."""
    return {**os.environ, "VIGIE_MODELS_DIR": str(models), "VIGIE_VAR_DIR": str(var), **extra}


def evaluate(env: dict[str, str], service: str, csv: Path, *args: str) -> dict[str, Any]:
    """``vigie evaluate SERVICE --data CSV [ARGS]``: it succeeds and prints one JSON object."""
    done = vigie(env, "evaluate", service, "--data", str(csv), *args)
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def assert_evaluate_refuses(env: dict[str, str], service: str, csv: Path, says: str) -> None:
    """``vigie evaluate`` of an unusable CSV exits 1 and its message names ``says``."""
    done = vigie(env, "evaluate", service, "--data", str(csv))
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert says in done.stderr, done.stderr


def real_data_file(relative: str) -> Path:
    """A file of the real data directory; the test skips, saying where it looked, without it."""
    path = real_data_dir() / relative
    if not path.is_file():
        pytest.skip(f"real data not found: {path} (set VIGIE_DATA_DIR)")
    return path


@dataclass(frozen=True)
class RealTraining:
    """What ``vigie train`` made of the real data: the environment it ran in and the card."""

    env: dict[str, str]
    card: dict[str, Any]


def train_on_real_data(tmp_path: Path, service: str, needs: str) -> RealTraining:
    """``vigie train SERVICE`` on the real data (skips without the file ``needs``), then the
    card ``vigie models show`` prints."""
    real_data_file(needs)
    env = cli_env(tmp_path / "models", tmp_path / "var", VIGIE_DATA_DIR=str(real_data_dir()))
    trained = vigie(env, "train", service)
    assert trained.returncode == 0, trained.stderr
    shown = vigie(env, "models", "show", service)
    assert shown.returncode == 0, shown.stderr
    return RealTraining(env, json.loads(shown.stdout))

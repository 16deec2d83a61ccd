"""Test configuration: Hypothesis profiles (`ci` by default, `thorough` via HYPOTHESIS_PROFILE),
Triton's interpreter on machines without a GPU (it is read when kernels are defined, so it is
set here, before any test module imports triton), and `torchrun` for multi-process tests."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

settings.register_profile(
    "ci", derandomize=True, max_examples=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough", max_examples=1000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=20, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# torchrun picks a free port for the workers' store, then binds it; another torchrun started in
# between (pytest-xdist runs two) can take it. Only that clash is retried, never a failed check.
PORT_CLASH = re.compile(r"EADDRINUSE|address already in use", re.IGNORECASE)


@pytest.fixture(scope="session")
def torchrun():
    """torchrun(script, *args, nproc=2): run `script` under `torchrun --standalone` on CPU (gloo),
    with this checkout on the path; raises with the workers' output if it fails."""

    def run(script: Path, *args: str, nproc: int = 2, timeout: float = 300) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", str(script), *args]
        for _ in range(3):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
            if done.returncode == 0:
                return
            if not PORT_CLASH.search(done.stdout + done.stderr):
                break
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")

    return run

"""examples/notebook/penguins.ipynb, executed cell by cell (nbclient) against a real local platform.

The notebook asserts its own outcomes: a pipeline fitted in the notebook is registered with one
call, rolled out through gate, approval and deployment, served over HTTP with predictions equal to
its ``predict_proba`` (within 1e-5), and after new data is retrained by the user's own trainer.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port, run_cli, stop_platform

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "notebook"

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("notebook")]


def test_notebook_runs_end_to_end_on_the_local_platform(tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    from driftline import config
    from driftline.local.state import read_state
    from driftline.platform import build_platform
    from tests.e2e.conftest import LocalPlatformHandle

    state_dir = tmp_path / "state"
    up = run_cli(
        "up",
        "--detach",
        "--port",
        str(free_port()),
        "--api-port",
        str(free_port()),
        "--config",
        str(EXAMPLE / "cdk.json"),
        state_dir=state_dir,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    state = read_state(state_dir)
    assert state is not None
    handle = LocalPlatformHandle(
        state_dir,
        state.endpoint,
        state.api_url,
        state.pid,
        state.pgid,
        build_platform(config.load(EXAMPLE / "cdk.json")),
        state.account,
        state.region,
    )
    env = {
        "AWS_ENDPOINT_URL": state.endpoint,
        "DRIFTLINE_API_URL": state.api_url,
        "DRIFTLINE_CONFIG": str(EXAMPLE / "cdk.json"),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        nb = nbformat.read(EXAMPLE / "penguins.ipynb", as_version=4)
        client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLE)}})
        client.execute()
        outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
        assert "max |served - notebook|" in outputs
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        stop_platform(handle)

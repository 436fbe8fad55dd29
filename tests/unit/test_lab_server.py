"""`fedcloud lab`: the JupyterLab command line (loopback, token out of argv, the runbooks,
the fedcloud kernel, outputs dropped on save) and the CLI wiring."""
from __future__ import annotations

import nbformat
import pytest

from fedcloud_lib import cli
from fedcloud_lib.errors import ConfigError
from fedcloud_lib.lab.server import Lab, command, strip_outputs

pytestmark = pytest.mark.unit


def test_command_binds_loopback_serves_the_runbooks_and_keeps_the_token_off_argv(tmp_path):
    cmd = command(tmp_path, 8123)
    assert "--ServerApp.ip=127.0.0.1" in cmd and "--ServerApp.port=8123" in cmd
    assert f"--ServerApp.root_dir={tmp_path}" in cmd
    assert "--MultiKernelManager.default_kernel_name=fedcloud" in cmd
    assert "--FileContentsManager.pre_save_hook=fedcloud_lib.lab.server.strip_outputs" in cmd
    assert not any("token" in a.lower() for a in cmd)  # JUPYTER_TOKEN, in the environment
    assert not any("pre_save_hook" in a for a in command(tmp_path, 1, strip=False))
    lab = Lab(root=tmp_path, port=8123, token="t0k")
    assert lab.url == "http://127.0.0.1:8123/lab?token=t0k"


def test_saving_drops_outputs_counts_and_widget_state():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1 + 1", execution_count=3)
    cell.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"},
                                           execution_count=3)]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    model = {"type": "notebook", "content": nb}
    strip_outputs(model, path="x.ipynb", contents_manager=None)
    assert cell.outputs == [] and cell.execution_count is None
    assert "widgets" not in nb.metadata and nb.cells[0].source == "# t"
    text = {"type": "file", "content": "keep me"}
    strip_outputs(text)
    assert text["content"] == "keep me"


def test_a_missing_directory_is_refused_before_anything_starts(tmp_path):
    lab = Lab(root=tmp_path / "nope")
    with pytest.raises(ConfigError, match="not a directory"):
        lab.start()
    assert lab.process is None


def test_lab_is_a_cli_plugin(capsys):
    assert cli.PLUGINS["lab"] == "fedcloud_lib.lab.cli"
    with pytest.raises(SystemExit) as exc:
        cli.build_parser(["lab", "--help"]).parse_args(["lab", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--dir" in out and "--port" in out and "--operator" in out and "127.0.0.1" in out

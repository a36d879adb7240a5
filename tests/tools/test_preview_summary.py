"""The review summary rendered from recorded previews of the shipped gpu-pair stack (offline, no host):

- `previews/gpu-pair-new.json`: `pulumi preview --json --diff --show-sames` of a fresh stack;
- `previews/gpu-pair-changed.json`: the same stack after a recorded `up` (`tests.support.recorded_state`),
  with `max_model_len` 16384, a third host `gpu16b` (pipeline size 3) and a new `api_key`: the scenario
  of `tests/program/test_review_engine.py`, saved with stack traces dropped and the scratch paths renamed.
"""

import json
from pathlib import Path

from tools.preview_summary import Preview, render, rotated_secrets, unit_changes
from tools.review import main

PREVIEWS = Path(__file__).with_name("previews")


def recorded(name: str) -> dict:
    return json.loads((PREVIEWS / name).read_text())


def test_a_new_stack_shows_the_plan_every_host_and_every_unit_starting():
    summary = render(recorded("gpu-pair-new.json"), "gpu-pair")
    assert "| pipeline x tensor | - | 2 x 1 |" in summary
    assert "| layer split | - | 40, 24 |" in summary
    assert "| context length (max_model_len) | - | 32768 |" in summary
    assert "| gpu24 | RTX 4090 | 0 | 40 | 21.17 | 21.17 | 24 |" in summary  # needed vs budget per GPU
    assert "**gpu24** (new: 192.168.50.11, head, RTX 4090 24 GB): every step runs:" in summary
    assert "| api-front | gpu24 | 192.168.50.11:8000 | no |" in summary
    assert "| vllm | gpu24 | 127.0.0.1:8001 | no |" in summary
    assert "Set for the first time: `api_key`, `ray_token`." in summary
    starts = {(c.host, c.unit, c.action) for c in unit_changes(Preview.from_json(recorded("gpu-pair-new.json")), [])}
    assert starts == {("gpu24", "rvs-ray-head.service", "start"), ("gpu16", "rvs-ray-worker.service", "start"),
                      ("gpu24", "rvs-vllm.service", "start"), ("gpu24", "rvs-api.service", "start")}  # fmt: skip


def test_a_change_shows_the_new_context_length_the_added_host_and_what_restarts():
    document = recorded("gpu-pair-changed.json")
    summary = render(document, "gpu-pair")
    assert "| context length (max_model_len) | 32768 | **16384** |" in summary
    assert "| layer split | 40, 24 | **28, 19, 17** |" in summary
    assert "**gpu16b** (new: 192.168.50.13, worker, RTX 4080 16 GB): every step runs:" in summary
    # The old hosts change only their firewall (a new member), and say so.
    assert summary.count("`firewall` (firewall rules), update: `spec.rules`: +`192.168.50.13`") == 2
    assert "**gpu24** (192.168.50.11, head, RTX 4090 24 GB):\n- `firewall`" in summary
    changes = {(c.host, c.unit): (c.action, c.why) for c in unit_changes(Preview.from_json(document), ["api_key"])}
    assert changes[("gpu16b", "rvs-ray-worker.service")] == ("start", "new")
    assert changes[("gpu24", "rvs-vllm.service")][0] == "restart"
    assert "+`--max-model-len=16384`" in changes[("gpu24", "rvs-vllm.service")][1]
    assert changes[("gpu24", "rvs-api.service")] == ("restart", "`api_key` rotates")
    assert changes[("gpu24", "rvs-ray-head.service")][0] == "keep"
    assert "Keep running: gpu24 rvs-ray-head.service, gpu16 rvs-ray-worker.service." in summary
    assert "Rotate: `api_key`." in summary


def test_rotation_is_named_from_the_secret_versions_and_no_secret_is_shown():
    document = recorded("gpu-pair-changed.json")
    assert rotated_secrets(Preview.from_json(document)) == ["api_key"]
    summary = render(document)
    assert "[secret]" not in summary and "VLLM_API_KEY=" not in summary
    # Control: the recorded preview does hold secret inputs, which the summary left out.
    assert '"secrets": "[secret]"' in (PREVIEWS / "gpu-pair-changed.json").read_text()


def test_secret_fields_never_print_their_values():
    from tools.preview_summary import _field_changes

    assert _field_changes("spec", {"secrets": "a"}, {"secrets": "b"}) == ["`spec.secrets` changes"]
    assert _field_changes("spec", {"port": 1}, {"port": 2}) == ["`spec.port`: `1` -> `2`"]  # control


def test_the_cli_renders_a_saved_preview(tmp_path, capsys):
    out = tmp_path / "comment.md"
    assert main(["--preview-json", str(PREVIEWS / "gpu-pair-changed.json"), "--stack", "gpu-pair", "--out", str(out)]) == 0
    assert out.read_text().startswith("### `pulumi preview` of gpu-pair\n\n10 create, 5 update, 24 same")


def test_the_readme_example_is_the_renderers_output():
    from artifacts.paths import REPO_ROOT

    readme = (REPO_ROOT / "README.md").read_text()
    example = readme.split("<!-- review-example -->\n")[1]
    assert example == render(recorded("gpu-pair-changed.json"), "gpu-pair")

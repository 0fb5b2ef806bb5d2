"""The manual in docs/ against the code it documents, so it cannot drift unnoticed."""

import dataclasses
import re
from pathlib import Path

import pytest

from hourglass_w2v2.models.config import ModelConfig
from hourglass_w2v2.training.config import ExperimentConfig

DOCS = Path(__file__).resolve().parents[1] / "docs"


def sections(text: str) -> dict[str, str]:
    """The text under each ``## `name` `` heading of a markdown page."""
    parts = re.split(r"^## `([a-z_]+)`.*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_configs_md_documents_every_key_in_its_section():
    by_section = sections((DOCS / "configs.md").read_text())
    expected = {"model": ModelConfig}
    for f in dataclasses.fields(ExperimentConfig):
        default = f.default_factory() if callable(f.default_factory) else None
        if dataclasses.is_dataclass(default):
            expected[f.name] = type(default)
    missing = []
    for section, cls in expected.items():
        text = by_section.get(section, "")
        missing += [
            f"{section}.{field.name}"
            for field in dataclasses.fields(cls)
            if f"| `{field.name}` |" not in text
        ]
    assert not missing, f"docs/configs.md has no table row for: {', '.join(missing)}"


@pytest.mark.parametrize("section", ["data", "optim", "schedule", "trainer", "health", "ctc"])
def test_configs_md_defaults_are_the_code_defaults(section):
    text = sections((DOCS / "configs.md").read_text())[section]
    cls = type(getattr(ExperimentConfig(), section))
    for field in dataclasses.fields(cls):
        value = getattr(cls(), field.name)
        row = re.search(rf"^\| `{field.name}` \| `([^`]*)` \|", text, flags=re.M)
        assert row, f"{section}.{field.name}: no row with a default"
        shown = row.group(1)
        if value is None:
            assert shown == "null", (section, field.name, shown)
        elif isinstance(value, bool):
            assert shown == str(value).lower(), (section, field.name, shown)
        elif isinstance(value, (list, tuple)):
            assert shown.strip("[]").replace(" ", "").split(",") == [str(v) for v in value], (
                section, field.name, shown)
        elif isinstance(value, (int, float)):
            assert float(shown) == value, (section, field.name, shown)
        else:
            assert shown == value, (section, field.name, shown)


def python_blocks(text: str) -> list[str]:
    """The fenced ```python blocks of a markdown page, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)


def test_api_md_examples_run(tmp_path, monkeypatch):
    blocks = python_blocks((DOCS / "api.md").read_text())
    assert len(blocks) >= 5, "docs/api.md lost its examples"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, block in enumerate(blocks, 1):
        try:
            exec(compile(block, f"docs/api.md block {i}", "exec"), namespace)
        except Exception as e:
            raise AssertionError(f"docs/api.md block {i} fails: {type(e).__name__}: {e}") from e

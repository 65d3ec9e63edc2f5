"""The deploy's linter verdict is remembered for exactly the inputs it was given (infra.stack.lint)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import stack as stk


def test_given_a_clean_template_then_its_verdict_is_kept_on_disk_and_any_change_lints_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    linted: list[str] = []

    def fake_lint(path: Path, parameters: object = None) -> list[str]:
        linted.append(path.read_text())
        return ["E0000 broken (t.yaml:1:1)"] if "broken" in path.read_text() else []

    monkeypatch.setattr(stk.tpl, "lint", fake_lint)
    monkeypatch.setattr(stk, "_LINTED", {})
    template, cache = tmp_path / "t.yaml", tmp_path / "cache"
    template.write_text("Resources: {}\n")
    stk.lint(template, {"Stage": "dev"}, cache=cache)
    monkeypatch.setattr(stk, "_LINTED", {})  # a new process: only the disk remembers
    stk.lint(template, {"Stage": "dev"}, cache=cache)
    assert len(linted) == 1 and len(list(cache.iterdir())) == 1
    stk.lint(template, {"Stage": "prod"}, cache=cache)  # other parameters: linted again
    template.write_text("Resources: {A: 1}\n")
    stk.lint(template, {"Stage": "dev"}, cache=cache)  # another template: linted again
    assert len(linted) == 3
    # a failing verdict is never stored: the next process prints the findings fresh
    template.write_text("broken\n")
    for _ in range(2):
        monkeypatch.setattr(stk, "_LINTED", {})
        with pytest.raises(stk.StackError, match="E0000 broken"):
            stk.lint(template, {"Stage": "dev"}, cache=cache)
    assert len(linted) == 5 and len(list(cache.iterdir())) == 3

"""The command registry: every `segval X Y` has its module function, Hydra app and config where the layout says."""

from __future__ import annotations

from importlib import resources

import pytest

from segval.commands import COMMANDS, command_for_config, find_command


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: c.name)
def test_each_command_has_its_function_app_and_config(cmd) -> None:
    assert cmd.module == f"segval.commands.{cmd.words[0].replace('-', '_')}"
    assert callable(cmd.load()) and cmd.load().__name__ == cmd.function
    assert callable(cmd.load_main())
    assert resources.files("segval.conf").joinpath(f"{cmd.config}.yaml").is_file(), f"conf/{cmd.config}.yaml"
    assert command_for_config(cmd.config) is cmd


def test_the_longest_words_win() -> None:
    assert find_command(["qa", "sample", "split=train"]).name == "qa sample"
    assert find_command(["qa", "data.root=x"]).name == "qa"
    assert find_command(["domain-gap"]).function == "run"
    assert find_command(["qa", "sam-audit"]).function == "run_sam_audit"
    assert find_command(["nope"]) is None


def test_every_command_config_belongs_to_a_command() -> None:
    configs = {p.name[:-5] for p in resources.files("segval.conf").iterdir() if p.name.endswith(".yaml")}
    assert configs == {c.config for c in COMMANDS}

"""Every command's help: an example, the files detect writes, exit codes, SITEWATCH_AOI_DIR, completion."""

from __future__ import annotations

import click
import pytest
from click.shell_completion import ShellComplete
from click.testing import CliRunner

from sitewatch.cli import main
from sitewatch.pipeline import DETECT_OUTPUTS


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((*prefix, name))
        if isinstance(cmd, click.Group):
            out += _commands(cmd, (*prefix, name))
    return out


@pytest.mark.parametrize("path", _commands(main), ids=" ".join)
def test_every_command_help_has_an_example(path):
    res = CliRunner().invoke(main, [*path, "--help"])
    assert res.exit_code == 0, res.output
    examples = res.output.split("Examples:", 1)
    assert len(examples) == 2, f"sitewatch {' '.join(path)} --help has no example"
    assert f"sitewatch {' '.join(path)}" in examples[1]


def test_top_level_help_lists_whole_sentences_exit_codes_environment_and_completion():
    text = CliRunner().invoke(main, ["--help"]).output
    listing = text.split("Commands:", 1)[1].split("Examples:", 1)[0]
    lines = [line.strip() for line in listing.splitlines() if line.strip()]
    assert len(lines) == len(main.commands)
    assert all(line.endswith(".") and not line.endswith("...") for line in lines), lines
    assert "Exit codes: 0 success; 2 " in text
    assert "SITEWATCH_AOI_DIR" in text
    assert "_SITEWATCH_COMPLETE=bash_source sitewatch" in text


def test_detect_help_lists_the_files_it_writes():
    text = CliRunner().invoke(main, ["detect", "--help"]).output
    listed = text.split("Writes into -o", 1)[1]
    for name in DETECT_OUTPUTS:
        assert f"  {name}\n" in listed, name


def _complete(args: list[str], incomplete: str) -> list[str]:
    return [
        c.value for c in ShellComplete(main, {}, "sitewatch", "_SITEWATCH_COMPLETE").get_completions(args, incomplete)
    ]


def test_shell_completion_offers_site_ids():
    assert _complete(["aoi", "show"], "ham") == ["hamhung-feb11-plant", "hamhung-feb8-vinalon"]
    assert _complete(["detect", "a.tif", "b.tif", "--aoi"], "tum") == ["tumangang-rail-crossing"]
    assert _complete(["timeline", "a.tif", "--aoi"], "sin") == ["sinuiju-instrument-factory"]
    assert _complete(["synth"], "hamhung-feb8") == ["hamhung-feb8-vinalon"]
    # a path is left to the shell's file completion
    got = ShellComplete(main, {}, "sitewatch", "_SITEWATCH_COMPLETE").get_completions(["aoi", "show"], "aoi/ha")
    assert [(c.value, c.type) for c in got] == [("aoi/ha", "file")]

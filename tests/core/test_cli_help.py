"""Help that teaches: one line per command, an example that parses at the end of every command's
help, and the nearest command or flag suggested for an unknown one."""

from __future__ import annotations

import shlex

import pytest

from convscope.cli import COMMANDS, build_parser, main
from convscope.cli_help import EXAMPLES, subparser


def test_every_command_ends_its_help_with_examples_that_parse():
    parser = build_parser()
    assert set(EXAMPLES) == set(COMMANDS)
    for command, examples in EXAMPLES.items():
        text = subparser(parser, command).format_help().rstrip()
        assert text.endswith(examples[-1]), command
        for example in examples:
            words = shlex.split(example)
            assert words[:2] == ["convscope", command]
            args = build_parser().parse_args(words[1:])  # exits on a flag the command does not have
            assert args.command == command


def test_the_command_list_has_one_line_per_command(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    lines = build_parser().format_help().splitlines()
    for command in COMMANDS:
        (line,) = [line for line in lines if line.split()[:1] == [command]]
        i = lines.index(line)
        assert len(line.split()) > 1, f"{command}'s help starts on the next line"
        assert not lines[i + 1].startswith(" " * 10) or lines[i + 1].split()[0] in COMMANDS, f"{command}'s help wraps"


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["atlass", "m", "p"], "did you mean 'atlas'?"),
        (["explian"], "did you mean 'explain'?"),
        (["atlas", "m", "p", "--out", "x", "--wieghts", "w.pt"], "did you mean --weights?"),
        (["layers", "m", "--input-szie", "32"], "did you mean --input-size?"),
    ],
)
def test_an_unknown_command_or_flag_names_the_nearest(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert expected in err
    if argv[0] in COMMANDS:  # the usage shown is the command's own
        assert f"usage: convscope {argv[0]}" in err


def test_a_flag_with_no_near_name_gets_no_guess(capsys):
    with pytest.raises(SystemExit):
        main(["layers", "m", "--zzzzzz"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: --zzzzzz" in err and "did you mean" not in err

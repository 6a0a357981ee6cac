"""The command line's parser (agent/cli.py) makes a command's parser only
when that command is parsed, and asks the terminal's width only when it
formats text (start-up: docs/benchmarks.md). Both must answer exactly as
argparse built the usual way: every command's parser made at once, with
argparse's own help formatter."""

import argparse
import contextlib
import io

import pytest

from agent import cli

ARGVS = [
    [], ["--help"], ["--version"], ["bogus"], ["ru"], ["run"], ["run", "--once"], ["run", "--help"], ["run", "--bogus"],
    ["run", "--on"], ["--ro", "/r", "status"], ["--root"], ["--config", "c", "run", "--once"], ["plan", "--json"],
    ["plan", "-h"], ["status", "--json", "x"], ["health", "--timeout", "3", "--first-pass"],
    ["health", "--timeout", "x"], ["health", "-h"], ["config"], ["config", "get", "k"], ["config", "set", "k", "v"],
    ["config", "bad"], ["config", "-h"], ["watch", "add", "/p"], ["watch"], ["watch", "-h"], ["daemon-json"],
    ["daemon-json", "-h"], ["doctor"], ["doctor", "x"], ["kvp"], ["kvp", "-h"], ["kvp", "dump"],
    ["kvp", "dump", "--pool", "1", "--json", "--show-secrets"], ["kvp", "dump", "--po", "3"], ["kvp", "dump", "-h"],
    ["kvp", "get"], ["kvp", "get", "k"], ["kvp", "set", "k", "v", "--pool", "2"], ["kvp", "delete", "k"],
    ["kvp", "delete", "-h"], ["kvp", "zz"], ["--root", "/x", "kvp", "set", "-h"],
]


def answer(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result = sorted(vars(cli._parser().parse_args(argv)).items())
        except SystemExit as e:
            result = e.code
    return result, out.getvalue(), err.getvalue()


def eager(fill=lambda parser: None, **kwargs):
    parser = argparse.ArgumentParser(**kwargs)
    fill(parser)
    return parser


@pytest.mark.parametrize("columns", ["24", "80", "150"])
def test_the_parser_answers_as_argparse_made_the_usual_way(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    lazy = [answer(argv) for argv in ARGVS]
    monkeypatch.setattr(cli, "_Later", eager)
    monkeypatch.setattr(cli, "_Formatter", argparse.HelpFormatter)
    usual = [answer(argv) for argv in ARGVS]
    for argv, got, want in zip(ARGVS, lazy, usual):
        assert got == want, argv
    assert any("usage: moby-agent kvp dump" in out for _, out, _ in usual)  # the help texts were compared


def test_only_the_command_parsed_has_its_parser_made():
    p = cli._parser()
    commands = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices
    p.parse_args(["run", "--once"])
    assert [name for name, later in commands.items() if later._parser is not None] == ["run"]
    p.parse_args(["kvp", "get", "k"])
    assert [name for name, later in commands.items() if later._parser is not None] == ["run", "kvp"]

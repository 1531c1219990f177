"""The package CLI: --help lists every command without importing TensorFlow; each command has its own --help."""
import subprocess
import sys

import pytest

from keras_tinyloc.cli import COMMANDS, main


def test_top_level_help_lists_commands_and_stays_light():
    code = ("import sys; from keras_tinyloc.cli import main; rc = main(['--help']); "
            "assert 'tensorflow' not in sys.modules; sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for name in COMMANDS:
        assert name in out.stdout


def test_unknown_command_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bogus"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_its_own_help(name):
    out = subprocess.run([sys.executable, "-m", "keras_tinyloc", name, "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    assert "usage:" in out.stdout and "--help" in out.stdout


def test_no_arguments_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "commands:" in capsys.readouterr().out


def test_every_option_of_every_command_has_help_text():
    """A newcomer reads --help, not the source: no option without a sentence (sub-commands included)."""
    import argparse
    import importlib

    missing = []

    def walk(parser, where):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, sub_parser in action.choices.items():
                    walk(sub_parser, f"{where} {sub}")
            elif not action.help:
                missing.append(f"{where} {action.option_strings or action.dest}")

    for name, (module, _) in COMMANDS.items():
        walk(importlib.import_module(module).build_parser(), name)
    assert missing == []

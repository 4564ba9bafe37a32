"""Help that teaches: an example at the end of every command's help, and the nearest command or
flag suggested for an unknown one (Python 3.11's argparse does neither)."""

from __future__ import annotations

import argparse
import difflib
import re
import textwrap
from collections.abc import Iterable

#: One runnable example per command, shown at the end of its ``--help`` (each parses: a test checks).
EXAMPLES: dict[str, tuple[str, ...]] = {
    "atlas": (
        "convscope atlas torchvision:squeezenet1_0 photos/ --weights squeezenet1_0.pth --out atlas",
        "convscope atlas model.py:make photos/ --weights model.pt --layers 'layer*.conv2' --out atlas",
    ),
    "layers": ("convscope layers torchvision:resnet18",),
    "demo": ("convscope demo",),
    "occlude": ("convscope occlude torchvision:squeezenet1_0 dog.jpg --weights squeezenet1_0.pth --unit features.12:97",),
    "style": ("convscope style photo.jpg starry_night.jpg --size 192 --steps 200 --out result.png",),
    "featurevis": ("convscope featurevis torchvision:squeezenet1_0 --weights squeezenet1_0.pth --unit features.12:0-7",),
    "evolve": ("convscope evolve model.py:make photos/ --checkpoints step1.pt step2.pt final.pt --out evolve",),
    "invariance": ("convscope invariance torchvision:squeezenet1_0 photos/ --weights squeezenet1_0.pth --out invariance",),
    "serve": ("convscope serve atlas/",),
    "explain": (
        "convscope explain atlas/ dog.jpg --top 10 --out explain",
        "convscope explain torchvision:squeezenet1_0 dog.jpg --weights squeezenet1_0.pth --class beagle",
        "convscope explain atlas/ photos/ --top 10 --class-by label",
    ),
    "circuits": (
        "convscope circuits atlas/",
        "convscope circuits atlas/ --layers features.12 --ablation 500 --labels-from-name '^n\\d+_(.+)\\.'",
    ),
}


class Formatter(argparse.HelpFormatter):
    """Wraps paragraphs as argparse does, but keeps indented lines (the examples) as they are; a
    subcommand's help starts on its name's line when ``max_help_position`` leaves room."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        subactions = getattr(action, "_choices_actions", None)
        if action.help is not argparse.SUPPRESS and subactions:  # argparse measures them one indent short of where it prints them
            longest = max(len(self._format_action_invocation(a)) for a in subactions)
            self._action_max_length = max(self._action_max_length, longest + self._current_indent + self._indent_increment)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for line in text.splitlines():
            out.append(indent + line if line.startswith(" ") or not line else textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent))
        return "\n".join(out)


class Parser(argparse.ArgumentParser):
    """An argument parser whose error for an unknown command or flag names the nearest ones."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        super().error(message + suggestion(self, message))

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        found, extras = self.parse_known_args(args, namespace)
        if extras:
            command = getattr(found, "command", None)
            where = subparser(self, command) if command else None
            (where or self).error(f"unrecognized arguments: {' '.join(extras)}")
        return found


def subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    """The parser of subcommand ``name`` of ``parser``, or ``None``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(name)
    return None


def suggestion(parser: argparse.ArgumentParser, message: str) -> str:
    """``" (did you mean ...?)"`` for an invalid choice or an unrecognized flag in ``message``, else ``""``.

    Example:
        >>> p = Parser(prog="x")
        >>> _ = p.add_argument("--weights")
        >>> suggestion(p, "unrecognized arguments: --wieghts w.pt")
        '; did you mean --weights?'
    """
    choice = re.match(r"argument \S+: invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if choice:
        options = re.findall(r"'([^']*)'", choice.group(2))
        return _did_you_mean(choice.group(1), options, quote=True)
    unknown = re.match(r"unrecognized arguments: (.*)", message)
    if unknown:
        flags = [word.split("=")[0] for word in unknown.group(1).split() if word.startswith("-")]
        known = [s for action in parser._actions for s in action.option_strings]
        hints = [_did_you_mean(flag, known) for flag in flags]
        return "".join(h for h in hints if h)
    return ""


def _did_you_mean(word: str, options: Iterable[str], quote: bool = False) -> str:
    close = difflib.get_close_matches(word, list(options), n=2, cutoff=0.7)
    if not close:
        return ""
    shown = [f"'{c}'" if quote else c for c in close]
    return f"; did you mean {' or '.join(shown)}?"


def add_examples(parser: argparse.ArgumentParser) -> None:
    """End every subcommand's help with its :data:`EXAMPLES`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                lines = EXAMPLES.get(name)
                if lines:
                    sub.epilog = ("example:" if len(lines) == 1 else "examples:") + "\n" + "\n".join(f"  {line}" for line in lines)

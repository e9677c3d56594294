"""MkDocs hooks for tfvae's site: tables from docs/results.yml, the command-line flags from the
parsers themselves, the API reference from the package's modules; the course's notebooks and
lesson map from notebooks/ (where the test suite runs them) and the pictures from gifs/ (where
the README shows them), without copying them.

A page asks for generated text with an HTML comment on a line of its own:

    <!-- results: recipes -->      a table of docs/results.yml (see TABLES below)
    <!-- cli: train -->            every flag of `python -m tfvae.train`, in its --help groups
    <!-- api: modules -->          one mkdocstrings block per module of the tfvae package

Run as a script it writes the README's results table from the same file
(`python docs/_hooks/tfvae_docs.py`), or fails when the README's copy differs (`--check`,
which .ci/run runs), so a number the README and the site both give cannot disagree.
"""

import argparse
import importlib
import os
import pkgutil
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS = os.path.join(ROOT, "docs", "results.yml")
README = os.path.join(ROOT, "README.md")
MARKER = re.compile(r"^<!-- (results|cli|api): ([\w-]+) -->$", re.MULTILINE)
README_BLOCK = re.compile(r"(<!-- results: readme -->\n).*?(<!-- /results -->)", re.DOTALL)

def load_results():
    with open(RESULTS, encoding="utf-8") as file:
        return yaml.safe_load(file)


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _machine(results, row):
    return f"{results['machines'][row['machine']]['name']}, {row['date']}"


def _host(results, row):
    return f"host {row['machine'].upper()}, {row['date']}"


def _shell_lines(command, width=88):
    """A long command as shell lines joined by backslashes, each at most about `width` long."""
    lines, line = [], ""
    for word in re.split(r" (?=--)", command.strip()):
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = "    " + word
        else:
            line = f"{line} {word}" if line else word
    return " \\\n".join(lines + [line])


def recipes_table(results, readme=False):
    """The recipes' test NLL, ELBO and times; the README's short form keeps the named recipes."""
    recipes = results["recipes"]
    if readme:
        rows = [(f"`{r['recipe']}`", r["nll"], r["train_time"], _machine(results, r),
                 f"`{r['command']}`")
                for r in recipes if r.get("recipe")]
        return _table(["recipe", "test NLL, nats", "training", "CPU, date", "command"], rows)
    rows = [(f"{number}. " + (f"**{r['recipe']}**: " if r.get("recipe") else "") + r["what"],
             r["nll"], r["elbo"], r["train_time"], r.get("eval_time", ""), _host(results, r))
            for number, r in enumerate(recipes, 1)]
    table = _table(["recipe", "test NLL, nats (k = 5000)", "test ELBO", "training",
                    "evaluation", "host, date"], rows)
    commands = []
    for number, r in enumerate(recipes, 1):
        today = f" (today `{r['command']}`)" if r.get("command") else ""
        commands.append(f"{number}.{today}\n\n    ```bash\n    "
                        + _shell_lines(r["run"]).replace("\n", "\n    ") + "\n    ```")
    return (table + "\n\nThe commands that made them, as tfvae 0.1.0 spelled them:\n\n"
            + "\n".join(commands))


def machines_table(results):
    rows = [(f"**{m['name']}**", m["cpu"], m["notes"]) for m in results["machines"].values()]
    return _table(["machine", "CPU (lscpu's model name), cores", "what else is known"], rows)


def published_table(results):
    rows = [(p["model"], p["nll"], p["estimator"], p["source"]) for p in results["published"]]
    return _table(["model", "test NLL, nats", "estimator", "source"], rows)


TABLES = {"recipes": recipes_table, "machines": machines_table, "published": published_table}


class _Parsed(BaseException):
    """Raised by parse_args to hand the parser back instead of running the command."""

    def __init__(self, parser):
        super().__init__()
        self.parser = parser


def command_parser(command):
    """The argparse parser that `python -m tfvae.COMMAND` builds, without running it."""
    module = importlib.import_module(f"tfvae.{command}")

    def hand_back(self, *args, **kwargs):
        raise _Parsed(self)

    saved = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args
    argparse.ArgumentParser.parse_args = argparse.ArgumentParser.parse_known_args = hand_back
    try:
        module.main([])
    except _Parsed as parsed:
        return parsed.parser
    finally:
        argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args = saved
    raise RuntimeError(f"tfvae.{command}.main never parsed its arguments")


def _flag_values(action):
    if action.choices:
        return ", ".join(f"`{choice}`" for choice in action.choices)
    if action.nargs == 0:
        return ""
    metavar = action.metavar or {int: "N", float: "X"}.get(action.type, "TEXT")
    if isinstance(metavar, tuple):
        return " ".join(metavar)
    return f"{metavar} ..." if action.nargs in ("+", "*") else metavar


def _flag_names(action):
    if isinstance(action, argparse.BooleanOptionalAction):
        return f"`--[no-]{action.option_strings[0][2:]}`"
    if action.option_strings:
        return ", ".join(f"`{name}`" for name in action.option_strings)
    return f"`{action.metavar or action.dest}`"  # a positional argument, such as RUN_DIR


def flags_markdown(command):
    """Every flag of one command, a table per --help group, in --help's order."""
    parser = command_parser(command)
    parts = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if not isinstance(a, argparse._HelpAction)]
        if not actions:
            continue
        rows = [(_flag_names(action), _flag_values(action),
                 (action.help or "") % {"default": action.default, "prog": parser.prog})
                for action in actions]
        title = group.title[0].upper() + group.title[1:]
        parts.append(f"### {title}\n\n" + _table(["flag", "takes", "what it does"], rows))
    return "\n\n".join(parts)


def api_markdown():
    """One `::: module` block per module of the package, in alphabetical order."""
    package = importlib.import_module("tfvae")
    names = sorted(m.name for m in pkgutil.walk_packages(package.__path__, "tfvae."))
    return "\n\n".join(f"## `{name}`\n\n::: {name}" for name in names)


def expand(markdown, results):
    def replace(match):
        kind, name = match.groups()
        if kind == "results":
            return TABLES[name](results)
        if kind == "cli":
            return flags_markdown(name)
        return api_markdown()

    return MARKER.sub(replace, markdown)


# MkDocs events


def on_files(files, config):
    from mkdocs.structure.files import File

    # Files under the repository root keep their paths (notebooks/01_....ipynb, gifs/...):
    # mkdocs-jupyter reads a notebook from its src_dir, which a generated File lacks.
    for folder in ("notebooks", "gifs"):
        for name in sorted(os.listdir(os.path.join(ROOT, folder))):
            if folder == "notebooks" and not name.endswith((".ipynb", "README.md")):
                continue
            files.append(File(f"{folder}/{name}", src_dir=ROOT, dest_dir=config["site_dir"],
                              use_directory_urls=config["use_directory_urls"]))
    return files


# mkdocs-jupyter turns .ipynb files into pages in its own on_files: add the notebooks first.
on_files.mkdocs_priority = 100


def on_page_markdown(markdown, page, config, files):
    return expand(markdown, load_results())


def readme_with_table(readme, results):
    table = recipes_table(results, readme=True)
    return README_BLOCK.sub(lambda m: m.group(1) + table + "\n" + m.group(2), readme)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write the README's results table from "
                                     "docs/results.yml, or check it (--check).")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    with open(README, encoding="utf-8") as file:
        readme = file.read()
    if not README_BLOCK.search(readme):
        sys.exit("README.md has no <!-- results: readme --> ... <!-- /results --> block")
    wanted = readme_with_table(readme, load_results())
    if wanted == readme:
        return
    if args.check:
        sys.exit("README.md's results table differs from docs/results.yml: "
                 "run python docs/_hooks/tfvae_docs.py")
    with open(README, "w", encoding="utf-8") as file:
        file.write(wanted)


if __name__ == "__main__":
    main()

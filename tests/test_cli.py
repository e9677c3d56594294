"""The command lines: recipes, grouped --help before TensorFlow, the `tfvae` script, quiet start."""

import configparser
import dataclasses
import json
import os
import re
import subprocess
import sys

import pytest
from helpers import cli_error, tiny_config, to_argv
from setuptools.config.setupcfg import read_configuration

import tfvae
from tfvae import cli, latent, recipes, rundir, train
from tfvae.config import Config
from tfvae.errors import TfvaeError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "main_7c5cf3a")
# The README's best command, without the --kl mc that auto now gives.
BEST = ("--model mlp --hidden-units 512 512 --latent-dim 80 --top-latent-dim 40 "
        "--posterior-flow-steps 4 --prior-components 200 --likelihood autoregressive "
        "--autoregressive-local-units 32 --autoregressive-local-knots 8 --objective iwae --k 5 "
        "--kl-warmup-epochs 10 --lr-schedule cosine --epochs 180").split()
# TensorFlow's C++ log lines (absl before and after InitializeLog, oneDNN, cuda, CPU features).
TF_LOG_LINE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl|.*oneDNN"
                         r"|.*cuda|.*cuInit|.*rebuild TensorFlow)", re.MULTILINE)


def python(*args, env=None, cwd=ROOT):
    """Runs a fresh Python on this checkout of tfvae; returns the CompletedProcess."""
    # As a user starts it: `import tfvae` in this process set TF_CPP_MIN_LOG_LEVEL.
    inherited = {k: v for k, v in os.environ.items()
                 if k not in ("TFVAE_TF_LOG", "TF_CPP_MIN_LOG_LEVEL")}
    env = {**inherited, "PYTHONPATH": ROOT, **(env or {})}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


def imported_modules(stderr):
    """The modules `python -X importtime` reports, and the rest of stderr."""
    modules, rest = set(), []
    for line in stderr.splitlines():
        if line.startswith("import time:"):
            modules.add(line.rsplit("|", 1)[1].strip())
        else:
            rest.append(line)
    return modules, rest


# --- recipes and --config


def test_every_recipe_is_a_valid_config_with_a_one_line_description():
    names = recipes.names()
    assert {"tutorial", "mlp-400-20", "best"} <= set(names)
    for name in names:
        description, values = recipes.read(name)
        assert description and "\n" not in description
        config = recipes.config(name).resolved()
        assert config == config.resolved() and "auto" not in (config.binarize, config.kl)


def test_recipe_best_is_the_readme_best_command_and_works_out_kl_mc():
    best, _ = cli.parse_train(["--recipe", "best"])
    assert best == cli.parse_train(BEST)[0]
    assert best.kl == "auto" and best.resolved().kl == "mc"
    assert best.resolved() == cli.parse_train(BEST + ["--kl", "mc"])[0].resolved()


@pytest.mark.parametrize("name, argv", [
    ("tutorial", ["--latent-dim", "2"]),
    ("mlp-400-20", ["--model", "mlp", "--latent-dim", "20", "--epochs", "50"]),
])
def test_recipes_are_the_readme_commands(name, argv):
    assert cli.parse_train(["--recipe", name])[0] == cli.parse_train(argv)[0]


def test_flags_override_a_recipe_and_a_config_file(tmp_path):
    config, _ = cli.parse_train(["--recipe", "mlp-400-20", "--epochs", "3", "--latent-dim", "2"])
    assert (config.model, config.epochs, config.latent_dim) == ("mlp", 3, 2)
    run_config = tiny_config(latent_dim=3).resolved()
    rundir.prepare(str(tmp_path), run_config)
    path = str(tmp_path / "config.json")
    assert cli.parse_train(["--config", path])[0] == run_config
    config, args = cli.parse_train(["--config", path, "--seed", "4", "--out", "x"])
    assert config == dataclasses.replace(run_config, seed=4) and args.out == "x"


def test_a_config_file_of_tfvae_0_1_0_is_translated_or_refused(tmp_path):
    research = cli.parse_train(["--config", os.path.join(FIXTURES, "research_run",
                                                        "config.json")])[0]
    assert research.likelihood == "autoregressive"
    made = os.path.join(FIXTURES, "made_run", "config.json")
    with pytest.raises(TfvaeError, match=r"^--config .*made_run/config.json: this config uses "
                                         r"the autoregressive decoder's MADE hidden layer"):
        cli.parse_train(["--config", made])


@pytest.mark.parametrize("argv, message", [
    (["--recipe", "nope"], "--recipe must be one of best, "),
    (["--recipe", "best", "--config", "x.json"], "not allowed with argument --recipe"),
    (["--config", "/no/such/config.json"], "--config /no/such/config.json cannot be read "
                                           "(No such file or directory)"),
    (["--recipe", "best", "--likelihood", "bernoulli"], "add --likelihood autoregressive"),
])
def test_bad_recipes_and_config_files_are_one_line(argv, message, capsys):
    assert message in cli_error(train.main, argv, capsys)


def test_recipe_list_prints_each_name_with_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_train(["--recipe", "list"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == recipes.names()
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)


def test_recipes_ship_in_the_package():
    setup = configparser.ConfigParser()
    setup.read(os.path.join(ROOT, "setup.cfg"))
    assert "recipes/*.json" in setup["options.package_data"]["tfvae"].split()
    assert recipes.DIRECTORY == os.path.join(os.path.dirname(tfvae.__file__), "recipes")


# --- --help


def test_train_help_groups_every_flag_once_tutorial_first_research_last():
    flags = [f.name for f in dataclasses.fields(Config) if f.metadata["flag"]]
    grouped = [name for names in cli.TRAIN_GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(flags)
    text = cli.train_parser().format_help()
    titles = ["recipe and run directory:", "model:", "data:", "training:",
              "evaluation and pictures:", "research:", "performance and scale-out:"]
    positions = [text.index("\n" + title + "\n") for title in titles]
    assert positions == sorted(positions)
    assert text.index("--latent-dim") < text.index("--dataset") < text.index("--epochs")
    assert text.index("--epochs") < text.index("--prior-components")


def test_generate_and_evaluate_help_are_grouped():
    assert "\npictures:\n" in cli.generate_parser().format_help()
    assert "\nperformance:\n" in cli.evaluate_parser().format_help()
    assert set(cli.INTERPOLATIONS) == set(latent.INTERPOLATIONS)


def test_help_answers_without_importing_tensorflow():
    result = python("-X", "importtime", "-m", "tfvae.train", "--help")
    modules, rest = imported_modules(result.stderr)
    assert result.returncode == 0, result.stderr
    assert "research:" in result.stdout and "tfvae.cli" in modules
    assert not {"tensorflow", "keras", "numpy"} & modules
    for argv in (["-m", "tfvae.generate", "--help"], ["-m", "tfvae.evaluate", "--help"],
                 ["-m", "tfvae.train", "--recipe", "list"]):
        result = python("-X", "importtime", *argv)
        modules, rest = imported_modules(result.stderr)
        assert result.returncode == 0 and rest == [] and result.stdout, result.stderr
        assert "tensorflow" not in modules


def test_a_flag_error_is_one_line_with_status_2_without_tensorflow():
    result = python("-X", "importtime", "-m", "tfvae.train", "--latent-dim", "0")
    modules, rest = imported_modules(result.stderr)
    assert result.returncode == 2
    assert rest == ["error: --latent-dim must be at least 1, not 0"]
    assert "tensorflow" not in modules and result.stdout == ""
    result = python("-m", "tfvae.generate", "RUN", "--grid", "1")
    assert result.returncode == 2 and result.stderr == "error: --grid must be at least 2, not 1\n"


def test_import_tfvae_is_enough_for_keras_to_load_its_models():
    code = ("import tfvae, keras; model = keras.models.load_model(%r); "
            "print(type(model).__name__)" % os.path.join(FIXTURES, "conv.keras"))
    result = python("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ConvVAE"


# --- TensorFlow's log lines


def test_tensorflow_log_lines_show_only_when_asked():
    code = "import tfvae, warnings; warnings.warn('still shown'); print('ok')"
    asked = python("-c", code, env={"TFVAE_TF_LOG": "1"})
    assert TF_LOG_LINE.search(asked.stderr), asked.stderr  # what the quiet start hides
    quiet = python("-c", code)
    assert quiet.stdout == "ok\n" and not TF_LOG_LINE.search(quiet.stderr), quiet.stderr
    assert "UserWarning: still shown" in quiet.stderr


def test_a_training_run_prints_no_tensorflow_log_lines(tmp_path, mnist_dir):
    out = str(tmp_path / "run")
    result = python("-m", "tfvae.train", "--epochs", "1", "--train-size", "512", "--test-size",
                    "128", "--out", out, "--data-dir", mnist_dir)
    assert result.returncode == 0, result.stderr
    assert not TF_LOG_LINE.search(result.stderr), result.stderr
    assert "done: test elbo" in result.stdout
    with open(os.path.join(out, "config.json")) as f:
        saved = json.load(f)
    assert (saved["binarize"], saved["likelihood"], saved["kl"]) == (
        "dynamic", "bernoulli", "analytic")
    # A TfvaeError raised after TensorFlow's import still reaches the terminal, in one line.
    again = python("-m", "tfvae.train", "--epochs", "1", "--train-size", "512", "--test-size",
                   "128", "--out", out, "--data-dir", mnist_dir, "--latent-dim", "3")
    assert again.returncode == 2 and again.stderr.count("\n") == 1, again.stderr
    assert again.stderr.startswith(f"error: {out} holds a run with a different config")


# --- the tfvae console script


def test_console_script_lists_commands_and_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name, (summary, _) in cli.COMMANDS.items():
        assert re.search(rf"^\s+{name}\s+{re.escape(summary)}$", out, re.MULTILINE), out
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out == f"tfvae {tfvae.__version__}\n"
    assert tfvae.__version__ == "0.2.0"
    setup_cfg = read_configuration(os.path.join(ROOT, "setup.cfg"))
    assert setup_cfg["metadata"]["version"] == tfvae.__version__
    assert "tfvae = tfvae.cli:main" in setup_cfg["options"]["entry_points"]["console_scripts"]


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: COMMAND"),
    (["fit"], "invalid choice: 'fit'"),
    (["train", "--latent-dim", "0"], "--latent-dim must be at least 1, not 0"),
    (["train", "--no-such-flag"], "unrecognized arguments: --no-such-flag (see tfvae train "),
    (["evaluate", "RUN", "--k", "0"], "--k must be at least 1, not 0"),
])
def test_console_script_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and message in err, err


def test_console_script_commands_take_the_commands_flags(capsys):
    for name in cli.COMMANDS:
        with pytest.raises(SystemExit):
            cli.main([name, "--help"])
        parser = getattr(cli, f"{name}_parser")
        assert capsys.readouterr().out == parser(f"tfvae {name}").format_help()


def test_console_script_trains_evaluates_and_draws(tmp_path, mnist_dir, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["train", *to_argv(tiny_config()), "--out", out, "--data-dir", mnist_dir]) \
        is None  # the script's sys.exit(main()): status 0
    assert [r["epoch"] for r in rundir.read_metrics(out)] == [1]
    cli.main(["evaluate", out, "--k", "2", "--subset", "10", "--data-dir", mnist_dir])
    with open(os.path.join(out, rundir.EVAL_FILE)) as f:
        assert json.load(f)["images"] == 10
    cli.main(["generate", out, "--samples", "4"])
    assert os.path.getsize(os.path.join(out, rundir.SAMPLES_FILE)) > 0
    assert "wrote" in capsys.readouterr().out


def test_the_installed_script_parses_before_tensorflow(tmp_path):
    script = tmp_path / "tfvae"  # what pip writes for console_scripts
    script.write_text("import re, sys\nfrom tfvae.cli import main\nif __name__ == '__main__':\n"
                      "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
                      "    sys.exit(main())\n")
    for argv in (["--help"], ["train", "--help"], ["evaluate", "--help"]):
        result = python("-X", "importtime", str(script), *argv)
        modules, rest = imported_modules(result.stderr)
        assert result.returncode == 0 and rest == [], result.stderr
        assert "tensorflow" not in modules and "tfvae.models" not in modules
    result = python(str(script), "train", "--latent-dim", "0")
    assert result.returncode == 2
    assert result.stderr == "error: --latent-dim must be at least 1, not 0\n"


def test_python_m_tfvae_cli_is_the_console_script():
    result = python("-X", "importtime", "-m", "tfvae.cli", "--version")
    assert result.stdout == f"tfvae {tfvae.__version__}\n"
    assert "tensorflow" not in imported_modules(result.stderr)[0]

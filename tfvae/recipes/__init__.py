"""The named recipes of `python -m tfvae.train --recipe NAME`: partial configs stored as JSON.

Each NAME.json beside this file holds a one-line "description" and a "config" of the keys that
differ from the defaults; `auto` values (kl, binarize, likelihood) are left to training.
"""

import json
import os

from tfvae.config import config_from_dict
from tfvae.errors import TfvaeError

DIRECTORY = os.path.dirname(os.path.abspath(__file__))


def names():
    """The recipes' names, sorted."""
    return sorted(name[:-len(".json")] for name in os.listdir(DIRECTORY)
                  if name.endswith(".json"))


def read(name):
    """(description, config values) of the recipe `name`.

    Args:
      name: one of `names()`; anything else raises a one-line TfvaeError listing them.
    """
    if name not in names():
        raise TfvaeError(f"--recipe must be one of {', '.join(names())} (or list), not {name!r}")
    with open(os.path.join(DIRECTORY, f"{name}.json"), encoding="utf-8") as f:
        recipe = json.load(f)
    return recipe["description"], recipe["config"]


def config(name):
    """The Config of the recipe `name`, unresolved (its "auto" values stay).

    Args:
      name: one of `names()`.
    """
    return config_from_dict(read(name)[1])

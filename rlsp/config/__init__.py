"""Recipes: YAML files loaded into frozen, validated dataclasses."""

from rlsp.config.recipe import Recipe, load_recipe, output_dir

__all__ = ["Recipe", "load_recipe", "output_dir"]

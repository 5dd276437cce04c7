"""Memory plans: what a recipe needs per GPU before it runs."""

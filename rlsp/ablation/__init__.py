"""``rlsp ablate``: arms of one recipe over seeds, run and compared."""

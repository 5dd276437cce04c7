"""Reading logged rollouts and measuring the reasoning behaviours in them (``rlsp inspect``)."""

"""SFT warm-start on long chains of thought (RLSP stage 1), built on TRL's ``SFTTrainer``.

``example``: the record type; ``arith_traces``: generated traces for the built-in arithmetic task;
``selection``: picking N examples and length statistics; ``dataset``: reading a source into
selected, length-checked examples; ``trainer``: training and saving the warm-started model.
"""

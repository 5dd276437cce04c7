"""Outcome verifiers shipped with rlsp, importable as ``rlsp_verifiers``."""

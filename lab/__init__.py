"""Simulated bare-metal hosts on this machine for the dev stack: see `python -m lab --help` and lab.api."""

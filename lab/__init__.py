"""Simulated bare-metal hosts on this machine for the dev stack, and only those: see
`python -m lab --help` and `lab.api`. Imports nothing of the stack but `artifacts.paths`."""

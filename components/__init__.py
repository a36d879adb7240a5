"""Pulumi components and the pure logic behind them (config, validation, planning, rendering)."""

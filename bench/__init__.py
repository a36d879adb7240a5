"""`make bench`: is the stack slower than doing the same deployment by hand?

Measures the stack (`pulumi up/preview/destroy` on lab hosts, through a scratch copy of the
program with its own file backend) and the by-hand baseline (`bench/baseline.sh`) on the same
hosts in the same run, and reports both side by side (`bench/results/*.json`, README table).
"""

"""ray-vllm-stack's policy pack: `pulumi preview --policy-pack policy` fails on a violation of any
rule in `rules.py` (every one is mandatory)."""

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ResourceValidationPolicy,
    StackValidationPolicy,
)
from rules import RULES, Rule


def resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args, report_violation) -> None:
        if args.resource_type.endswith(rule.resource_type):
            for violation in rule.check(args.props):
                report_violation(violation)

    return ResourceValidationPolicy(rule.name, rule.description, validate)


def stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args, report_violation) -> None:
        for violation in rule.check((resource.resource_type, resource.props) for resource in args.resources):
            report_violation(violation)

    return StackValidationPolicy(rule.name, rule.description, validate)


PolicyPack(
    "ray-vllm-stack",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[resource_policy(rule) if rule.resource_type else stack_policy(rule) for rule in RULES],
)

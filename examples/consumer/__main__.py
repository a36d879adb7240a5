"""Reads the endpoint of a ray-vllm-stack stack and asks its model one question at `pulumi up`."""

import pulumi
from openai import OpenAI

serving = pulumi.StackReference(pulumi.Config().require("serving_stack"))


def ask(values: list) -> str | None:
    base_url, api_key, model = values
    if pulumi.runtime.is_dry_run():
        return None
    client = OpenAI(base_url=base_url, api_key=api_key, timeout=120)
    messages = [{"role": "user", "content": "Say hello."}]
    reply = client.chat.completions.create(model=model, messages=messages, max_tokens=16, temperature=0)
    return reply.choices[0].message.content


outputs = [serving.require_output(name) for name in ("openai_base_url", "api_key", "model")]
pulumi.export("reply", pulumi.Output.all(*outputs).apply(ask))
pulumi.export("model", outputs[2])

"""Send one chat completion through the stack's endpoint, as any consumer would.

    python tools/chat.py [--stack dev] [--prompt "..."]

Reads the endpoint, model and API key from the stack's outputs and uses the official `openai`
client, nothing stack-specific.
"""

import argparse
import json
import subprocess
import sys

from openai import OpenAI


def stack_outputs(stack: str) -> dict:
    result = subprocess.run(
        ["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(result.stdout)


def chat(base_url: str, api_key: str, model: str, prompt: str, max_tokens: int = 32) -> str:
    client = OpenAI(base_url=base_url, api_key=api_key, timeout=120)
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0
    )
    return reply.choices[0].message.content


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--prompt", default="Hello! Who are you?")
    args = parser.parse_args()
    outputs = stack_outputs(args.stack)
    print(f"endpoint: {outputs['openai_base_url']}  model: {outputs['model']}")
    print(f"user: {args.prompt}")
    print(f"assistant: {chat(outputs['openai_base_url'], outputs['api_key'], outputs['model'], args.prompt)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

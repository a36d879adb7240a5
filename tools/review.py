"""`python -m tools.review`: the Markdown summary of a stack's `pulumi preview`, for a pull request.

    python -m tools.review --stack gpu-pair                  # preview the project here, print the summary
    python -m tools.review --cwd ../infra --stack prod --out comment.md
    python -m tools.review --preview-json preview.json       # render a preview saved earlier

Runs `pulumi preview --json --diff --show-sames` (unchanged resources carry the plan and the
listeners) with the caller's environment (`source env.sh` for the project's CLI and backend) and
renders it with `tools.preview_summary`. A preview that fails prints Pulumi's own messages and
exits with its status, so a CI job fails where the preview does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from tools.preview_summary import render

PREVIEW = ["pulumi", "preview", "--json", "--diff", "--show-sames", "--non-interactive"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.review", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="the stack to preview (default: the selected one)")
    parser.add_argument("--cwd", type=Path, default=Path.cwd(), help="the Pulumi project's folder")
    parser.add_argument("--preview-json", type=Path, help="render this saved `pulumi preview --json` instead")
    parser.add_argument("--out", type=Path, help="write the summary here instead of stdout")
    args = parser.parse_args(argv)
    if args.preview_json is not None:
        document = json.loads(args.preview_json.read_text())
    else:
        command = [*PREVIEW, *(["--stack", args.stack] if args.stack else [])]
        result = subprocess.run(command, cwd=args.cwd, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"pulumi preview failed ({result.returncode}):\n{result.stdout}{result.stderr}", file=sys.stderr)
            return result.returncode
        document = json.loads(result.stdout)
    summary = render(document, args.stack)
    if args.out is not None:
        args.out.write_text(summary)
    else:
        sys.stdout.write(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())

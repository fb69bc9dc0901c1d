#!/usr/bin/env python3
"""The Driftline CDK app: ``cdk synth`` / ``cdk deploy`` (or ``make synth`` / ``make deploy``).

Configuration comes from cdk.json context (``-c driftline:env=prod`` picks an environment); run
directly (``python app.py``) it reads cdk.json itself. A configuration mistake stops synth with
one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# Node 20 works for jsii but prints an end-of-life banner on every synth; silence it.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App

from driftline.config import ConfigError, from_context

ROOT = Path(__file__).resolve().parent


def main() -> None:
    # The CDK CLI passes cdk.json context (plus -c overrides) itself; without it, read cdk.json.
    file_context = json.loads((ROOT / "cdk.json").read_text()).get("context", {})
    outdir = None if os.environ.get("CDK_OUTDIR") else str(ROOT / "cdk.out")
    app = App(context=file_context, outdir=outdir)
    context = {
        "driftline:env": app.node.try_get_context("driftline:env"),
        "driftline:environments": app.node.try_get_context("driftline:environments"),
    }
    try:
        config = from_context(context)
    except ConfigError as e:
        print(f"driftline: configuration error: {e}", file=sys.stderr)
        sys.exit(1)

    from stacks.app_builder import build

    build(app, config)
    app.synth()


if __name__ == "__main__":
    main()

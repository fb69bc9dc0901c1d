#!/usr/bin/env python3
"""The Driftline CDK app: ``cdk synth`` / ``cdk deploy`` (or ``make synth`` / ``make deploy``).

Configuration comes from cdk.json context (``-c driftline:env=prod`` picks an environment).
A configuration mistake stops synth with one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import sys

from aws_cdk import App

from driftline.config import ConfigError, from_context


def main() -> None:
    app = App()
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

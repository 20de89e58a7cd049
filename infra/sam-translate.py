#!/usr/bin/env python3
"""Turns the SAM template into plain CloudFormation, offline, with the AWS SAM
translator (pip package aws-sam-translator) - the same code CloudFormation
runs for `Transform: AWS::Serverless-2016-10-31`.

infra/deploy-aws.sh uses it with --offline-transform, for CloudFormation
implementations that do not run the SAM transform (moto_server); on AWS the
transform runs in CloudFormation and this is not needed. The specs use it to
check what the template really creates.

  sam-translate.py IN OUT [--param Name=Value ...] [--stub-code-uris]

IN is YAML or JSON (a packaged template has s3:// code locations);
--stub-code-uris replaces local CodeUri/ContentUri paths by s3://stub/<name>
so an unpackaged template can be translated. OUT is JSON ('-' for stdout).
"""
import argparse
import json
import os
import sys

# The translator asks boto for the region when it builds ARNs.
os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION") or "us-east-1")

try:
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse
except ImportError as e:  # reported the same way by the deploy script and the specs
    sys.stderr.write("sam-translate: aws-sam-translator is not installed (pip install aws-sam-translator): %s\n" % e)
    sys.exit(3)


class NoManagedPolicies(ManagedPolicyLoader):
    """The template names no managed policy (each role is written out), so
    the translator never needs IAM's list of them; if it ever asks, fail."""

    def __init__(self):  # pylint: disable=super-init-not-called
        pass

    def load(self):
        raise SystemExit("sam-translate: the template names a managed policy; write its statements instead")


def stub_code_uris(template):
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        for field in ("CodeUri", "ContentUri"):
            if isinstance(props.get(field), str) and not props[field].startswith("s3://"):
                props[field] = "s3://stub/" + props[field].rsplit("/", 1)[-1]
    function_globals = template.get("Globals", {}).get("Function", {})
    uri = function_globals.get("CodeUri")
    if isinstance(uri, str) and not uri.startswith("s3://"):
        function_globals["CodeUri"] = "s3://stub/" + uri.rsplit("/", 1)[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--stub-code-uris", action="store_true")
    args = ap.parse_args()

    with open(args.input, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    if args.stub_code_uris:
        stub_code_uris(template)
    params = {}
    for p in args.param:
        name, sep, value = p.partition("=")
        if not sep:
            ap.error("--param needs NAME=VALUE, not %r" % p)
        params[name] = value
    # The translator resolves these pseudo parameters when it must; the
    # values only matter for properties it evaluates itself.
    params.setdefault("AWS::Region", os.environ["AWS_DEFAULT_REGION"])
    params.setdefault("AWS::Partition", "aws")
    try:
        out = transform(template, params, NoManagedPolicies())
    except InvalidDocumentException as e:
        for cause in e.causes:
            sys.stderr.write("sam-translate: %s\n" % cause.message)
        sys.exit(1)
    text = json.dumps(out, indent=1, sort_keys=True) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()

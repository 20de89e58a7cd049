#!/usr/bin/env python3
"""Turns the SAM template into plain CloudFormation, offline, with the AWS SAM
translator (pip package aws-sam-translator) - the same code CloudFormation
runs for `Transform: AWS::Serverless-2016-10-31`.

infra/deploy-aws.sh uses it with --offline-transform, for CloudFormation
implementations that do not run the SAM transform (moto_server); on AWS the
transform runs in CloudFormation and this is not needed. The specs use it to
check what the template really creates.

  sam-translate.py IN OUT [--param Name=Value ...] [--stub-code-uris] [--omit-type TYPE ...]

IN is YAML or JSON (a packaged template has s3:// code locations);
--stub-code-uris replaces local CodeUri/ContentUri paths by s3://stub/<name>
so an unpackaged template can be translated. --omit-type leaves out the
resources of a type an emulator cannot create (moto's CloudFormation makes a
REST API but not its methods, so it cannot make AWS::ApiGateway::Deployment);
what still refers to them is an error. OUT is JSON ('-' for stdout).
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


def refers_to(node, names):
    """The first of names that node refers to (Ref, GetAtt, Sub), or None."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "Ref" and v in names:
                return v
            if k == "Fn::GetAtt":
                target = v[0] if isinstance(v, list) else v.split(".")[0]
                if target in names:
                    return target
            if k == "Fn::Sub":
                text = v[0] if isinstance(v, list) else v
                for name in names:
                    if "${" + name + "}" in text or "${" + name + "." in text:
                        return name
            found = refers_to(v, names)
            if found:
                return found
    elif isinstance(node, list):
        for v in node:
            found = refers_to(v, names)
            if found:
                return found
    return None


def omit_types(template, types):
    resources = template["Resources"]
    gone = {name for name, r in resources.items() if r["Type"] in types}
    for name in gone:
        del resources[name]
    for name, r in resources.items():
        deps = r.get("DependsOn")
        if deps is not None:
            deps = [d for d in ([deps] if isinstance(deps, str) else deps) if d not in gone]
            if deps:
                r["DependsOn"] = deps
            else:
                del r["DependsOn"]
        target = refers_to(r, gone)
        if target:
            raise SystemExit("sam-translate: %s still refers to %s, which --omit-type left out" % (name, target))
    target = refers_to(template.get("Outputs", {}), gone)
    if target:
        raise SystemExit("sam-translate: an output refers to %s, which --omit-type left out" % target)
    return sorted(gone)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--stub-code-uris", action="store_true")
    ap.add_argument("--omit-type", action="append", default=[], metavar="TYPE")
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
    if args.omit_type:
        for name in omit_types(out, set(args.omit_type)):
            sys.stderr.write("sam-translate: left out %s\n" % name)
    # compact: CloudFormation takes a template body of up to 51,200 bytes
    text = json.dumps(out, separators=(",", ":"), sort_keys=True) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()

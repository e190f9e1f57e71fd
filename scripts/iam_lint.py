"""Lints every IAM policy template of infra/ with parliament, offline.

The module's policies are JSON templates with plain ${name} values (infra/modules/*/policies);
each is rendered with the example values beside it, as Terraform's templatefile would render
it, and must then be JSON in which parliament finds nothing: known actions, condition keys that
apply to those actions, resource ARNs of the right form. Before that, policies with one such
mistake each must be caught, so that a lint that has stopped looking cannot pass.
"""

import json
import pathlib
import re
import sys
import warnings

with warnings.catch_warnings():
    # parliament imports pkg_resources, which setuptools marks deprecated.
    warnings.simplefilter("ignore")
    from parliament import analyze_policy_string

VALUE = re.compile(r"\$\{([a-z_]+)\}")
ALIAS_ACTIONS = {"kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"}


def render(template: str, values: dict) -> str:
    if "%{" in template:
        raise ValueError("template directives are not used in policies")
    missing = sorted({name for name in VALUE.findall(template) if name not in values})
    if missing:
        raise ValueError(f"no example value for {', '.join(missing)}")
    text = VALUE.sub(lambda m: str(values[m.group(1)]), template)
    if "${" in text:
        raise ValueError("an interpolation that is not a plain ${name} value")
    json.loads(text)
    return text


def accepted(finding) -> bool:
    """parliament wants the alias and the key ARN of an alias action in one statement. KMS
    authorizes the alias and the key separately (the key's part may even come from the key
    policy), so the module grants them in two statements: one on the set's alias ARNs, one on
    keys tagged with the set, where a tag condition on an alias would match nothing."""
    return finding.issue == "RESOURCE_MISMATCH" and all(d["action"] in ALIAS_ACTIONS for d in finding.detail)


def findings(text: str) -> list:
    return [f for f in analyze_policy_string(text).findings if not accepted(f)]


def statement(action, resource, condition=None) -> str:
    s = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        s["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [s]})


KEYS = "arn:aws:kms:*:111122223333:key/*"
BROKEN = {
    "an unknown action": statement("kms:Sing", KEYS),
    "a condition key the action does not have": statement(
        "kms:GetPublicKey", KEYS, {"StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256"}}),
    "a resource of the wrong type": statement("kms:Sign", "arn:aws:kms:*:111122223333:alias/jwt-signer"),
    "a malformed ARN": statement("kms:Sign", "arn:aws:kms:111122223333:key/*"),
}


def main() -> int:
    failed = 0
    for mistake, text in BROKEN.items():
        if not findings(text):
            print(f"iam_lint: a policy with {mistake} passed: the lint is not checking", file=sys.stderr)
            failed += 1
    infra = pathlib.Path(__file__).resolve().parent.parent / "infra"
    templates = sorted(infra.glob("modules/*/policies/*.json.tftpl"))
    if not templates:
        print("iam_lint: no policy templates under infra/modules/*/policies", file=sys.stderr)
        return 1
    for path in templates:
        name = path.relative_to(infra.parent)
        values = json.loads((path.parent / "example-values.json").read_text())
        try:
            found = findings(render(path.read_text(), values))
        except ValueError as e:
            print(f"iam_lint: {name}: {e}", file=sys.stderr)
            failed += 1
            continue
        for f in found:
            print(f"iam_lint: {name}: {f.issue}: {f.detail} at {f.location}", file=sys.stderr)
        failed += bool(found)
        print(f"iam_lint: {name}: {len(found)} findings", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

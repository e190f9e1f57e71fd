"""Lints every IAM policy template of infra/ with parliament, offline.

The module's policies are JSON templates with plain ${name} values (infra/modules/*/policies);
each is rendered with the example values beside it, as Terraform's templatefile would render
it, and must then be JSON in which parliament finds nothing: known actions, condition keys that
apply to those actions, resource ARNs of the right form. Before that, policies with one such
mistake each must be caught, so that a lint that has stopped looking cannot pass.

A template named ROLE-replicas.json.tftpl holds statements that main.tf adds to ROLE's policy
only when the set has replica regions. Every policy main.tf can write is linted: each role for a
single-Region set (replica_regions = [], the replica statements left out) and for the
multi-Region set of the example values (the replica statements merged in). No rendered policy
may hold a condition on an empty list, and a single-Region policy no replica statement.
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
REPLICAS = "-replicas"

# Properties of a KMS key that KMS puts in the request context of every operation on a key:
# "AWS KMS condition keys" in the KMS developer guide lists them for CreateKey and "KMS key
# resource operations", and "Controlling access to tags" names them for kms:TagResource.
KEY_PROPERTY_CONDITIONS = {"kms:KeySpec", "kms:KeyUsage", "kms:KeyOrigin"}
# The operations on a key on which the module uses them.
KEY_PROPERTY_ACTIONS = {"kms:TagResource", "kms:ScheduleKeyDeletion"}
UNKNOWN_CONDITION = re.compile(r"^Unknown condition (\S+) for action (\S+)$")


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
    """Two findings are accepted.

    parliament wants the alias and the key ARN of an alias action in one statement. KMS
    authorizes the alias and the key separately (the key's part may even come from the key
    policy), so the module grants them in two statements: one on the set's alias ARNs, one on
    keys tagged with the set, where a tag condition on an alias would match nothing.

    parliament reads the condition keys of an action from the action's own row of the Service
    Authorization Reference, and the key properties kms:KeySpec, kms:KeyUsage and kms:KeyOrigin
    are listed on the row of the KMS key resource type instead (parliament's own copy of the
    reference has them there). The KMS developer guide says they apply to every operation on a
    key ("AWS KMS condition keys"), and names them for TagResource ("Controlling access to
    tags"): the module uses them on TagResource and ScheduleKeyDeletion only, and only those
    are accepted; the same key on any other action is still a finding.
    """
    if finding.issue == "RESOURCE_MISMATCH":
        return all(d["action"] in ALIAS_ACTIONS for d in finding.detail)
    if finding.issue == "UNKNOWN_CONDITION_FOR_ACTION":
        m = UNKNOWN_CONDITION.match(str(finding.detail))
        return bool(m) and m.group(1) in KEY_PROPERTY_CONDITIONS and m.group(2) in KEY_PROPERTY_ACTIONS
    return False


def empty_conditions(policy: dict) -> list:
    """Conditions on an empty list: such a condition matches nothing, or, with ForAllValues,
    everything; a policy says what it means without them."""
    out = []
    for s in policy["Statement"]:
        for operator, keys in s.get("Condition", {}).items():
            for key, value in keys.items():
                if value == []:
                    out.append(f"{s.get('Sid', '(no Sid)')}: {operator} {key} is an empty list")
    return out


def findings(text: str) -> list:
    found = analyze_policy_string(text).findings
    return [f"{f.issue}: {f.detail} at {f.location}" for f in found if not accepted(f)] + [
        f"EMPTY_CONDITION: {e}" for e in empty_conditions(json.loads(text))
    ]


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
    "a key property on an action that is not accepted for it": statement(
        "kms:ListAliases", "*", {"StringEquals": {"kms:KeySpec": "RSA_2048"}}),
    "a resource of the wrong type": statement("kms:Sign", "arn:aws:kms:*:111122223333:alias/jwt-signer"),
    "a malformed ARN": statement("kms:Sign", "arn:aws:kms:111122223333:key/*"),
    "a condition on an empty list": statement(
        "kms:ReplicateKey", KEYS, {"StringEquals": {"kms:ReplicaRegion": []}}),
}


def single_region(values: dict) -> dict:
    """The values main.tf passes for the same set with replica_regions = [] (a module without
    replicas has the same values either way)."""
    if "replica_regions" not in values:
        return values
    return {**values, "multi_region": "false", "replica_regions": "[]"}


def policies(directory: pathlib.Path, values: dict) -> dict:
    """Every policy main.tf can write from the templates in `directory`, rendered, by name."""
    templates = {p.name.removesuffix(".json.tftpl"): p.read_text() for p in directory.glob("*.json.tftpl")}
    if any(t.endswith(REPLICAS) for t in templates) and not json.loads(values.get("replica_regions", "[]")):
        raise ValueError("the example values are a single-Region set: replica statements would go unlinted")
    out = {}
    for role in sorted(t for t in templates if not t.endswith(REPLICAS)):
        single = json.loads(render(templates[role], single_region(values)))
        multi = json.loads(render(templates[role], values))
        replicas = templates.get(role + REPLICAS)
        if replicas is not None:
            extra = json.loads(render(replicas, values))["Statement"]
            sids = {s.get("Sid") for s in extra}
            leftover = sorted(s["Sid"] for s in single["Statement"] if s.get("Sid") in sids)
            if leftover:
                raise ValueError(f"{role}: the single-Region policy holds replica statements {leftover}")
            multi["Statement"] += extra
        if single == multi:
            out[role] = json.dumps(single)
        else:
            out[f"{role} (single-Region)"] = json.dumps(single)
            out[f"{role} (multi-Region)"] = json.dumps(multi)
    for name in templates:
        if name.endswith(REPLICAS) and name.removesuffix(REPLICAS) not in templates:
            raise ValueError(f"{name}: no {name.removesuffix(REPLICAS)}.json.tftpl to add its statements to")
    return out


def main() -> int:
    failed = 0
    for mistake, text in BROKEN.items():
        if not findings(text):
            print(f"iam_lint: a policy with {mistake} passed: the lint is not checking", file=sys.stderr)
            failed += 1
    infra = pathlib.Path(__file__).resolve().parent.parent / "infra"
    directories = sorted(infra.glob("modules/*/policies"))
    if not any(d.glob("*.json.tftpl") for d in directories):
        print("iam_lint: no policy templates under infra/modules/*/policies", file=sys.stderr)
        return 1
    for directory in directories:
        where = directory.relative_to(infra.parent)
        try:
            rendered = policies(directory, json.loads((directory / "example-values.json").read_text()))
        except ValueError as e:
            print(f"iam_lint: {where}: {e}", file=sys.stderr)
            failed += 1
            continue
        for name, text in rendered.items():
            found = findings(text)
            for f in found:
                print(f"iam_lint: {where}: {name}: {f}", file=sys.stderr)
            failed += bool(found)
            print(f"iam_lint: {where}: {name}: {len(found)} findings", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

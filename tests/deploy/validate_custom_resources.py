"""Validate the custom resources among Kubernetes manifests, which kubernetes-validate cannot know.

    python validate_custom_resources.py --crd deploy/crd/bmhgen.yaml \
        [--servicemonitors-out sm.json] FILE...

* Objects of a kind defined by a --crd file (BareMetalHostGenerator) are validated against that
  CRD's `openAPIV3Schema` with jsonschema, the way the API server would with kubectl's default
  strict field validation: OpenAPI `nullable` becomes a JSON-schema null, `x-kubernetes-int-or-string`
  an integer-or-string, and unknown fields are errors (unless `x-kubernetes-preserve-unknown-fields`).
  Its CEL rules (`x-kubernetes-validations`) are evaluated with cel-python. metadata.name must be
  a DNS-1123 subdomain and the apiVersion a served version of the CRD.
* ServiceMonitors (monitoring.coreos.com/v1) are written, as a JSON list, to --servicemonitors-out
  for validate_servicemonitors.mjs (the Prometheus Operator's own schema, from npm).
Not checked here: string `format`s (int64, date-time) and anything only admission webhooks or the
controller itself enforce. Exit status 1 on any error.
"""

import argparse
import copy
import json
import re
import sys

import celpy
import jsonschema
import yaml

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def to_json_schema(node, rules, path="self"):
    """A JSON schema (draft 2020-12) from a structural OpenAPI v3 schema; CEL rules collected."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("properties",):
            out[key] = {k: to_json_schema(v, rules, f"{path}.{k}") for k, v in value.items()}
        elif key == "items":
            out[key] = to_json_schema(value, rules, f"{path}[*]")
        elif key == "additionalProperties" and isinstance(value, dict):
            out[key] = to_json_schema(value, rules, f"{path}[*]")
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(v, rules, path) for v in value]
        elif key == "not":
            out[key] = to_json_schema(value, rules, path)
        elif key == "x-kubernetes-validations":
            rules.extend((path, r) for r in value)
        elif key.startswith("x-kubernetes-") or key in ("nullable", "format", "description"):
            continue
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("anyOf", None)
        out["type"] = ["integer", "string"]
    if node.get("nullable"):
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = types + ["null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = out["enum"] + [None]
    is_object = out.get("type") == "object" or (isinstance(out.get("type"), list) and "object" in out["type"])
    if (
        is_object
        and "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False  # strict field validation
    return out


def crd_validators(crd_path):
    """(group, kind) -> {version: (jsonschema validator, CEL rules)} for every CRD in the file."""
    validators = {}
    with open(crd_path) as f:
        for crd in yaml.safe_load_all(f):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            group, kind = spec["group"], spec["names"]["kind"]
            for version in spec["versions"]:
                if not version.get("served", False):
                    continue
                rules = []
                schema = to_json_schema(copy.deepcopy(version["schema"]["openAPIV3Schema"]), rules)
                # The API server owns apiVersion, kind and metadata (ObjectMeta).
                schema.setdefault("properties", {}).update(
                    {
                        "apiVersion": {"const": f"{group}/{version['name']}"},
                        "kind": {"const": kind},
                        "metadata": {"type": "object"},
                    }
                )
                schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
                schema["additionalProperties"] = False
                jsonschema.Draft202012Validator.check_schema(schema)
                validators.setdefault((group, kind), {})[version["name"]] = (
                    jsonschema.Draft202012Validator(schema),
                    rules,
                )
    return validators


def check_cel(obj, rules):
    """Evaluates each x-kubernetes-validations rule on every value its schema node designates."""
    errors = []
    env = celpy.Environment()
    for path, rule in rules:
        program = env.program(env.compile(rule["rule"]))
        for value in select_values(obj, path):
            result = program.evaluate({"self": celpy.json_to_cel(value)})
            if not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
                errors.append(f"{path}: {rule.get('message', rule['rule'])} (CEL: {rule['rule']}, got {result!r})")
    return errors


def select_values(obj, path):
    """The values a schema path (self.spec.a, self.spec.list[*]) designates in obj."""
    tokens = re.findall(r"\.([A-Za-z0-9_]+)|(\[\*\])", path[len("self"):])
    values = [obj]
    for name, star in tokens:
        nxt = []
        for v in values:
            if star:
                if isinstance(v, list):
                    nxt.extend(v)
                elif isinstance(v, dict):
                    nxt.extend(v.values())
            elif isinstance(v, dict) and v.get(name) is not None:
                nxt.append(v[name])
        values = nxt
    return values


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--crd", action="append", required=True)
    ap.add_argument("--servicemonitors-out")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()

    validators = {}
    for crd in args.crd:
        validators.update(crd_validators(crd))
    failures, checked, monitors = 0, 0, []
    for path in args.files:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for doc in docs:
            api_version = doc.get("apiVersion", "")
            group, _, version = api_version.rpartition("/")
            kind = doc.get("kind")
            name = (doc.get("metadata") or {}).get("name", "?")
            where = f"{path}: {kind}/{name}"
            if kind == "ServiceMonitor" and group == "monitoring.coreos.com":
                monitors.append(doc)
                continue
            if (group, kind) not in validators:
                continue
            checked += 1
            errors = []
            by_version = validators[(group, kind)]
            if version not in by_version:
                errors.append(f"apiVersion {api_version}: not a served version of the CRD ({', '.join(by_version)})")
            else:
                validator, rules = by_version[version]
                errors += [
                    f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
                    for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
                ]
                if not errors:
                    errors += check_cel(doc, rules)
            if not isinstance(name, str) or len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
                errors.append(f"metadata.name {name!r} is not a DNS-1123 subdomain")
            if errors:
                failures += 1
                for e in errors:
                    print(f"ERROR {where}: {e}")
            else:
                print(f"ok    {where} (schema of the CRD, {sum(len(r) for _, r in by_version.values())} CEL rule(s))")
    if args.servicemonitors_out:
        with open(args.servicemonitors_out, "w") as f:
            json.dump(monitors, f)
    print(f"custom resources: {checked} checked against their CRD, {failures} invalid; "
          f"{len(monitors)} ServiceMonitor(s) handed to the Prometheus Operator schema")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

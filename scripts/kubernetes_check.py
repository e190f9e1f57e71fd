"""What a schema cannot check in deploy/kubernetes: run by scripts/kubernetes-check.sh.

- kustomization.yaml lists every manifest in the directory, and nothing else;
- the Deployment's terminationGracePeriodSeconds is longer than its preStop sleep and serve's
  --drain-timeout together, so that the kubelet never kills a pod that is still draining;
- readiness is /readyz and liveness /healthz, on the port serve listens on;
- `kms-jwt serve` accepts the container's arguments (an unknown flag fails here, not in a pod).
"""

import pathlib
import re
import subprocess
import sys

import yaml


def seconds(duration):
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    if not match:
        sys.exit(f"cannot read the duration {duration!r}")
    value, unit = int(match[1]), match[2]
    return {"ms": value / 1000, "s": value, "m": value * 60}[unit]


def main(directory, binary):
    root = pathlib.Path(directory)
    manifests = {p.name for p in root.glob("*.yaml")} - {"kustomization.yaml"}
    listed = set(yaml.safe_load((root / "kustomization.yaml").read_text())["resources"])
    if listed != manifests:
        sys.exit(f"kustomization.yaml lists {sorted(listed)}, the directory holds {sorted(manifests)}")

    deployment = yaml.safe_load((root / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    args = container["args"]
    flags = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
    drain = seconds(flags.get("drain-timeout", "20s"))
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = pod["terminationGracePeriodSeconds"]
    if grace <= pre_stop + drain:
        sys.exit(f"terminationGracePeriodSeconds {grace} is not above preStop {pre_stop}s + drain {drain}s")

    port = int(flags["listen"].rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = container[probe]["httpGet"]
        if get["path"] != path or ports.get(get["port"], get["port"]) != port:
            sys.exit(f"{probe} asks {get}, not {path} on port {port}")

    run = subprocess.run([binary, *args, "--help"], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"kms-jwt does not accept the Deployment's arguments: {run.stderr.strip()}")


if __name__ == "__main__":
    main(*sys.argv[1:])

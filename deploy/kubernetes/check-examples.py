#!/usr/bin/env python3
"""Offline checks of the Kubernetes examples in this folder (no cluster needed):

  - every file parses as YAML (all documents), and every document has apiVersion, kind, name;
  - Istio (istio-wasmplugin.yaml): the WasmPlugin's pluginConfig and the singleton's JSON
    configuration are the same; the singleton's vm_id is "" (Istio gives WasmPlugin filters
    none); root ids; the clusters the configuration names are added;
  - Envoy Gateway (envoy-gateway.yaml): the policy's config and the singleton's are the same;
    the singleton's vm_id is the one Envoy Gateway gives the policy's filter
    (envoyextensionpolicy/<namespace>/<name>/wasm/<index>); the clusters exist in the bootstrap;
  - each plugin configuration passes bcl-check-config (the filter's own parser: the line Envoy
    would log is printed on failure);
  - with an Envoy binary (ENVOY_BIN): the etcd and idp clusters and the singleton of each
    example, put in a bootstrap of their own (files mapped to local ones), pass
    `envoy --mode validate`.

  .venv/bin/python deploy/kubernetes/check-examples.py
Needs PyYAML (scripts/setup.sh installs it into .venv: run it with .venv/bin/python). Environment:
BCL_CHECK_CONFIG (the bcl-check-config binary; default: cargo run -q --bin bcl-check-config),
ENVOY_BIN (skip the Envoy validation when unset), BCL_WASM (the module for the validation).
"""
import json
import os
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FILES = ["etcd.yaml", "istio-wasmplugin.yaml", "envoy-gateway.yaml"]
failures = []


def check(condition, message):
    print(("ok      " if condition else "FAILED  ") + message)
    if not condition:
        failures.append(message)


_loaded = {}


def load(name):
    if name not in _loaded:
        with open(os.path.join(HERE, name), encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        for d in docs:
            check(all(k in d for k in ("apiVersion", "kind")) and "name" in d.get("metadata", {}),
                  f"{name}: {d.get('kind')} {d.get('metadata', {}).get('name')} has apiVersion, kind, name")
        _loaded[name] = docs
    return _loaded[name]


def find(docs, kind, name=None):
    for d in docs:
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name):
            return d
    raise SystemExit(f"no {kind} {name or ''} found")


def bcl_check_config(label, config):
    command = os.environ.get("BCL_CHECK_CONFIG")
    argv = [command, "-"] if command else ["cargo", "run", "-q", "--bin", "bcl-check-config", "--", "-"]
    out = subprocess.run(argv, input=json.dumps(config).encode(), capture_output=True, cwd=REPO)
    text = (out.stdout + out.stderr).decode().strip()
    check(out.returncode == 0, f"{label}: bcl-check-config accepts it")
    print("        " + text.replace("\n", "\n        "))


def envoy_validate(label, clusters, extension):
    envoy = os.environ.get("ENVOY_BIN")
    if not envoy:
        print(f"skipped {label}: Envoy validation (ENVOY_BIN not set)")
        return
    wasm = os.environ.get("BCL_WASM", os.path.join(REPO, "target/wasm32-wasip1/release/envoy_backchannel_logout.wasm"))
    with tempfile.TemporaryDirectory() as tmp:
        certs = os.path.join(tmp, "certs")
        subprocess.run(["bash", os.path.join(REPO, "scripts/fleet-certs.sh"), certs], check=True, capture_output=True)
        mapping = {
            "/etc/bcl/etcd-tls/ca.crt": os.path.join(certs, "ca.pem"),
            "/etc/bcl/etcd-tls/tls.crt": os.path.join(certs, "client.pem"),
            "/etc/bcl/etcd-tls/tls.key": os.path.join(certs, "client-key.pem"),
            "/var/lib/bcl/plugin.wasm": wasm,
        }
        text = json.dumps({
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "static_resources": {"clusters": clusters},
            "bootstrap_extensions": [extension],
        })
        for k8s_path, local in mapping.items():
            text = text.replace(json.dumps(k8s_path), json.dumps(local))
        path = os.path.join(tmp, "bootstrap.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        out = subprocess.run([envoy, "--mode", "validate", "-c", path, "--log-level", "warn"], capture_output=True)
        output = (out.stdout + out.stderr).decode()
        check(out.returncode == 0 and "OK" in output, f"{label}: envoy --mode validate (clusters + singleton)")
        if out.returncode != 0:
            print(output[-3000:])


def singleton_parts(extension):
    config = extension["typed_config"]["config"]
    return config, json.loads(config["configuration"]["value"])


for name in FILES:
    load(name)

# ---- Istio
docs = load("istio-wasmplugin.yaml")
plugin = find(docs, "WasmPlugin")
filter_config = plugin["spec"]["pluginConfig"]
bootstrap = find(docs, "EnvoyFilter", "backchannel-logout-fleet-singleton")["spec"]["configPatches"][0]
check(bootstrap["applyTo"] == "BOOTSTRAP" and bootstrap["patch"]["operation"] == "MERGE", "istio: the singleton is a BOOTSTRAP MERGE patch")
extension = bootstrap["patch"]["value"]["bootstrap_extensions"][0]
singleton, singleton_config = singleton_parts(extension)
check(singleton_config == filter_config, "istio: WasmPlugin pluginConfig == the singleton's configuration")
check(singleton["vm_config"]["vm_id"] == "", "istio: the singleton's vm_id is \"\" (the WasmPlugin filter's)")
check(singleton["root_id"] == "backchannel_logout_fleet", "istio: singleton root_id backchannel_logout_fleet")
check(extension["typed_config"]["singleton"] is True, "istio: singleton: true")
check(plugin["spec"]["pluginName"] == "backchannel_logout", "istio: WasmPlugin pluginName (root_id) backchannel_logout")
check(plugin["spec"].get("failStrategy") != "FAIL_OPEN", "istio: the WasmPlugin does not fail open")
patches = find(docs, "EnvoyFilter", "backchannel-logout-clusters")["spec"]["configPatches"]
clusters = [p["patch"]["value"] for p in patches if p["applyTo"] == "CLUSTER" and p["patch"]["operation"] == "ADD"]
names = {c["name"] for c in clusters}
check(filter_config["fleet"]["etcd_cluster"] in names, "istio: the fleet's etcd cluster is added")
check({i["cluster"] for i in filter_config["issuers"]} <= names, "istio: the issuers' clusters are added")
bcl_check_config("istio", filter_config)
envoy_validate("istio", clusters, extension)

# ---- Envoy Gateway
docs = load("envoy-gateway.yaml")
policy = find(docs, "EnvoyExtensionPolicy")
proxy = find(docs, "EnvoyProxy")
check(proxy["spec"]["bootstrap"]["type"] == "Merge", "envoy gateway: bootstrap type Merge")
merged = yaml.safe_load(proxy["spec"]["bootstrap"]["value"])
extension = merged["bootstrap_extensions"][0]
singleton, singleton_config = singleton_parts(extension)
index = 0
filter_config = policy["spec"]["wasm"][index]["config"]
check(singleton_config == filter_config, "envoy gateway: the policy's config == the singleton's configuration")
expected_vm_id = f"envoyextensionpolicy/{policy['metadata']['namespace']}/{policy['metadata']['name']}/wasm/{index}"
check(singleton["vm_config"]["vm_id"] == expected_vm_id, f"envoy gateway: the singleton's vm_id is {expected_vm_id}")
check(singleton["root_id"] == "backchannel_logout_fleet", "envoy gateway: singleton root_id backchannel_logout_fleet")
check(policy["spec"]["wasm"][index]["rootID"] == "backchannel_logout", "envoy gateway: the policy's rootID backchannel_logout")
check(policy["spec"]["wasm"][index].get("failOpen") is False, "envoy gateway: the policy does not fail open")
gateway = find(docs, "Gateway")
check(gateway["spec"]["infrastructure"]["parametersRef"]["name"] == proxy["metadata"]["name"], "envoy gateway: the Gateway uses the EnvoyProxy")
check(policy["spec"]["targetRefs"][0]["name"] == gateway["metadata"]["name"], "envoy gateway: the policy targets the Gateway")
clusters = merged["static_resources"]["clusters"]
names = {c["name"] for c in clusters}
check(filter_config["fleet"]["etcd_cluster"] in names, "envoy gateway: the fleet's etcd cluster is in the bootstrap")
check({i["cluster"] for i in filter_config["issuers"]} <= names, "envoy gateway: the issuers' clusters are in the bootstrap")
bcl_check_config("envoy gateway", filter_config)
envoy_validate("envoy gateway", clusters, extension)

# ---- etcd: the members the Envoys list are the StatefulSet's
docs = load("etcd.yaml")
sts = find(docs, "StatefulSet")
service = find(docs, "Service")
ns = sts["metadata"]["namespace"]
members = {f"{sts['metadata']['name']}-{i}.{service['metadata']['name']}.{ns}.svc.cluster.local"
           for i in range(sts["spec"]["replicas"])}
for label, cluster in (("istio", next(c for c in find(load("istio-wasmplugin.yaml"), "EnvoyFilter", "backchannel-logout-clusters")["spec"]["configPatches"] if c["patch"]["value"]["name"] == "etcd")["patch"]["value"]),
                       ("envoy gateway", next(c for c in yaml.safe_load(find(load("envoy-gateway.yaml"), "EnvoyProxy")["spec"]["bootstrap"]["value"])["static_resources"]["clusters"] if c["name"] == "etcd"))):
    listed = {e["endpoint"]["address"]["socket_address"]["address"] for e in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]}
    check(listed == members, f"{label}: the etcd cluster lists the StatefulSet's members")

print(f"\n{len(failures)} failed" if failures else "\nall checks passed")
sys.exit(1 if failures else 0)

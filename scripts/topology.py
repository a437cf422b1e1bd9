#!/usr/bin/env python3
"""Writes the topology the function app reads (FTHUB_TOPOLOGY) from the same parameters the
infrastructure is deployed with, so infra and runtime cannot disagree.

usage: topology.py [--prefix P] > topology.json

Regions per environment come from infra/environments/{env}.bicepparam; account names follow
the templates' rule (`{prefix}-hub`, `{prefix}-{env}-{region}`, infra/main.bicep and
infra/spoke.bicep). Subscriptions and tenants come from the environment:
FTHUB_SUBSCRIPTION_{HUB,DEV,TEST,PROD} and FTHUB_TENANT[_{ENV}] (defaults: zeros, so the
output is still well-formed for review).
"""
import json
import os
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
prefix = sys.argv[sys.argv.index("--prefix") + 1] if "--prefix" in sys.argv else os.environ.get("FTHUB_PREFIX", "contosoft")
zero = "00000000-0000-0000-0000-000000000000"


def sub(key):
    return os.environ.get(f"FTHUB_SUBSCRIPTION_{key.upper()}", zero)


def tenant(key):
    return os.environ.get(f"FTHUB_TENANT_{key.upper()}", os.environ.get("FTHUB_TENANT", zero))


def account(name, region, subscription, rg, tenant_id):
    return {
        "name": name,
        "region": region,
        "subscription": subscription,
        "tenant": tenant_id,
        "endpoint": f"https://{name}.openai.azure.com",
        "resource_id": f"/subscriptions/{subscription}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{name}",
    }


main = (root / "infra/main.bicep").read_text()
hub_region = re.search(r"param hubRegion string = '([a-z0-9]+)'", main).group(1)
topology = {
    "hub": account(f"{prefix}-hub", hub_region, sub("hub"), "rg-fthub-hub", tenant("hub")),
    "environments": {},
    "arm_endpoint": "https://management.azure.com",
    "keepalive_schedule": "0 0 3 * * *",
}
for env in ("dev", "test", "prod"):
    text = (root / f"infra/environments/{env}.bicepparam").read_text()
    regions = re.findall(r"'([a-z0-9]+)'", re.search(r"param regions\s*=\s*\[(.*?)\]", text, re.S).group(1))
    topology["environments"][env] = {
        "spokes": [account(f"{prefix}-{env}-{r}", r, sub(env), f"rg-fthub-{env}", tenant(env)) for r in regions]
    }
json.dump(topology, sys.stdout, indent=2)
print()

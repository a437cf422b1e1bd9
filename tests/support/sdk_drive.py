"""Drives the Azure OpenAI emulator with Microsoft's and OpenAI's own Python SDKs.

Usage: sdk_drive.py BASE SCENARIO DATA_DIR
  BASE      the emulator, e.g. http://127.0.0.1:40123
  SCENARIO  ga | preview | v1 | arm
  DATA_DIR  the repository's samples/ (support/train.jsonl is chat data,
            preferences/train.jsonl preference data)

Each scenario asserts what the SDK sees and prints one JSON line of facts on success;
any mismatch exits non-zero with the reason on stderr.
"""

import json
import sys
import time
import urllib.request

from openai import AzureOpenAI, OpenAI, NotFoundError, BadRequestError

BASE, SCENARIO, DATA = sys.argv[1], sys.argv[2], sys.argv[3]
KEY = "local-key"


def state():
    with urllib.request.urlopen(f"{BASE}/_emulator/state") as r:
        return json.load(r)


def control(path, body):
    req = urllib.request.Request(
        f"{BASE}/_emulator/{path}",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def account(name):
    return next(a for a in state()["accounts"] if a["name"] == name)


def until(what, probe, seconds=30):
    end = time.time() + seconds
    while time.time() < end:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def train(client, model, path, **job_args):
    """Uploads, waits for processing, trains; returns (file, finished job)."""
    with open(f"{DATA}/{path}", "rb") as f:
        uploaded = client.files.create(file=("train.jsonl", f), purpose="fine-tune")
    check(uploaded.purpose == "fine-tune", f"purpose {uploaded.purpose}")
    until(
        "file processing",
        lambda: client.files.retrieve(uploaded.id).status == "processed" or None,
    )
    job = client.fine_tuning.jobs.create(
        model=model, training_file=uploaded.id, **job_args
    )
    check(job.status in ("pending", "queued", "running"), f"new job {job.status}")
    done = until(
        "the job",
        lambda: (
            j
            if (j := client.fine_tuning.jobs.retrieve(job.id)).status
            in ("succeeded", "failed", "cancelled")
            else None
        ),
    )
    check(done.status == "succeeded", f"job ended {done.status}: {done.error}")
    check(done.fine_tuned_model, "a succeeded job names its model")
    return uploaded, done


def mgmt():
    from azure.core.credentials import AccessToken
    from azure.core.pipeline.policies import SansIOHTTPPolicy
    from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient

    class Bearer(SansIOHTTPPolicy):
        # The SDK's own bearer policy refuses plain HTTP; the emulator is loopback HTTP.
        def on_request(self, request):
            request.http_request.headers["Authorization"] = "Bearer opaque"

    class Credential:
        def get_token(self, *scopes, **kwargs):
            return AccessToken("opaque", int(time.time()) + 3600)

    hub = account("hub")
    client = CognitiveServicesManagementClient(
        Credential(),
        hub["subscription"],
        base_url=f"{BASE}/arm",
        authentication_policy=Bearer(),
        polling_interval=0,
    )
    return client, hub


def mgmt_for(target):
    from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient

    client, _ = mgmt()
    return CognitiveServicesManagementClient(
        client._config.credential,
        target["subscription"],
        base_url=f"{BASE}/arm",
        authentication_policy=client._config.authentication_policy,
        polling_interval=0,
    )


def deploy(model, name, sku="GlobalStandard", capacity=1, to="hub", cross_tenant=False):
    """Deploys `model` on account `to`; a cross-tenant deployment names the Hub as
    `sourceAccount` and sends a Hub-tenant token in x-ms-authorization-auxiliary."""
    from azure.mgmt.cognitiveservices.models import (
        Deployment,
        DeploymentModel,
        DeploymentProperties,
        Sku,
    )

    client, hub = mgmt()
    target = account(to)
    client = client if to == "hub" else mgmt_for(target)
    source = {"source_account": hub["resource_id"]} if cross_tenant else {}
    extra = {"headers": {"x-ms-authorization-auxiliary": "Bearer opaque"}} if cross_tenant else {}
    poller = client.deployments.begin_create_or_update(
        target["resource_group"],
        target["name"],
        name,
        Deployment(
            sku=Sku(name=sku, capacity=capacity),
            properties=DeploymentProperties(
                model=DeploymentModel(format="OpenAI", name=model, version="1", **source)
            ),
        ),
        **extra,
    )
    d = poller.result()
    check(
        d.properties.provisioning_state == "Succeeded",
        f"deployment {d.properties.provisioning_state}",
    )
    return d


def ga():
    client = AzureOpenAI(
        api_key=KEY, api_version="2024-10-21", azure_endpoint=f"{BASE}/hub"
    )
    _, job = train(
        client,
        "gpt-4.1-mini-2025-04-14",
        "support/train.jsonl",
        suffix="sdk-ga",
        seed=7,
        hyperparameters={"n_epochs": 2, "batch_size": 2},
    )
    check(job.hyperparameters.n_epochs == 2, f"epochs {job.hyperparameters}")
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=2))
    check(len(events) >= 3, f"events paged past the first page: {len(events)}")
    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    check(
        all(c.fine_tuned_model_checkpoint for c in checkpoints),
        "checkpoints name a model",
    )
    for extra in range(2):
        train(client, "gpt-4.1-mini-2025-04-14", "support/train.jsonl", suffix=f"more{extra}")
    jobs = list(client.fine_tuning.jobs.list(limit=1))
    check(len(jobs) == 3, f"the job list pages through has_more: {len(jobs)}")
    deploy(job.fine_tuned_model, "sdk-ga")
    answer = client.chat.completions.create(
        model="sdk-ga",
        messages=[{"role": "user", "content": "How do I reset my password?"}],
        max_tokens=40,
    )
    check(answer.choices[0].message.content, "the deployment answers")
    try:
        client.fine_tuning.jobs.retrieve("ftjob-doesnotexist")
        raise AssertionError("a missing job is found")
    except NotFoundError:
        pass
    try:
        client.fine_tuning.jobs.create(
            model="gpt-4.1-mini-2025-04-14",
            training_file="file-x",
            extra_body={"method": {"type": "dpo"}},
        )
        raise AssertionError("GA accepted `method`")
    except BadRequestError:
        pass
    # A data scientist streams an answer from the candidate, usage included.
    stream = client.chat.completions.create(
        model="sdk-ga",
        messages=[{"role": "user", "content": "How do I reset my password?"}],
        max_tokens=40,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    streamed = "".join(pieces)
    check(streamed == answer.choices[0].message.content, f"stream {streamed!r}")
    check(usage and usage.total_tokens > 0, "the last chunk carries usage")
    # The oldest checkpoint deploys by its id and answers.
    oldest = checkpoints[-1]
    deploy(oldest.id, "sdk-ckpt")
    early = client.chat.completions.create(
        model="sdk-ckpt", messages=[{"role": "user", "content": "Where is my invoice?"}]
    )
    check(early.choices[0].message.content, "the checkpoint answers")
    # The Models API: base models with retirement dates, and this account's model.
    models = {m.id: m for m in client.models.list()}
    check(job.fine_tuned_model in models, "the fine-tuned model is listed")
    base = client.models.retrieve("gpt-4.1-mini-2025-04-14")
    check(base.model_extra.get("deprecation", {}).get("fine_tune"), f"deprecation {base}")
    # A large file through the Uploads API.
    with open(f"{DATA}/support/train.jsonl", "rb") as f:
        data = f.read()
    up = client.uploads.create(
        bytes=len(data), filename="big.jsonl", mime_type="application/jsonl", purpose="fine-tune"
    )
    half = len(data) // 2
    parts = [
        client.uploads.parts.create(up.id, data=chunk).id for chunk in (data[:half], data[half:])
    ]
    done = client.uploads.complete(up.id, part_ids=parts)
    check(done.status == "completed" and done.file.bytes == len(data), f"upload {done}")
    return {
        "model": job.fine_tuned_model,
        "events": len(events),
        "jobs": len(jobs),
        "checkpoints": len(checkpoints),
        "streamed_chunks": len(pieces),
    }


def preview():
    client = AzureOpenAI(
        api_key=KEY, api_version="2025-04-01-preview", azure_endpoint=f"{BASE}/hub"
    )
    _, job = train(
        client,
        "gpt-4.1-mini-2025-04-14",
        "preferences/train.jsonl",
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}},
    )
    check(job.method and job.method.type == "dpo", f"method {job.method}")
    # Pause and resume a job that trains for a minute of emulated time.
    control("timings", {**state()["timings"], "job_training_ms": 60_000})
    with open(f"{DATA}/support/train.jsonl", "rb") as f:
        upload = client.files.create(file=("long.jsonl", f), purpose="fine-tune")
    until(
        "file processing",
        lambda: client.files.retrieve(upload.id).status == "processed" or None,
    )
    long = client.fine_tuning.jobs.create(model="gpt-4.1-mini-2025-04-14", training_file=upload.id)
    until(
        "training to start",
        lambda: client.fine_tuning.jobs.retrieve(long.id).status == "running" or None,
    )
    control("clock", {"advance_seconds": 20})
    paused = client.fine_tuning.jobs.pause(long.id)
    check(paused.status == "paused", f"pause {paused.status}")
    resumed = client.fine_tuning.jobs.resume(long.id)
    check(resumed.status == "resuming", f"resume {resumed.status}")
    until(
        "training to resume",
        lambda: client.fine_tuning.jobs.retrieve(long.id).status == "running" or None,
    )
    control("clock", {"advance_seconds": 41})
    final = client.fine_tuning.jobs.retrieve(long.id).status
    check(final == "succeeded", f"resumed job {final}")
    return {"model": job.fine_tuned_model, "method": job.method.type, "paused": True}


def v1():
    client = OpenAI(api_key=KEY, base_url=f"{BASE}/hub/openai/v1")
    _, job = train(client, "gpt-4.1-mini-2025-04-14", "support/train.jsonl", suffix="sdk-v1")
    deploy(job.fine_tuned_model, "sdk-v1")
    answer = client.chat.completions.create(
        model="sdk-v1",
        messages=[{"role": "user", "content": "How do I reset my password?"}],
        max_completion_tokens=40,
    )
    check(answer.choices[0].message.content, "the deployment answers on v1")
    stream = client.chat.completions.create(
        model="sdk-v1",
        messages=[{"role": "user", "content": "How do I reset my password?"}],
        max_completion_tokens=40,
        stream=True,
    )
    streamed = "".join(
        c.choices[0].delta.content or "" for c in stream if c.choices and c.choices[0].delta
    )
    check(streamed == answer.choices[0].message.content, f"v1 stream {streamed!r}")
    owned = [m.owned_by for m in client.models.list()]
    check("organization-owner" in owned, f"v1 models {owned}")
    files = list(client.files.list())
    check(any(f.purpose == "fine-tune-results" for f in files), "results file listed")
    return {"model": job.fine_tuned_model, "files": len(files)}


def arm():
    from azure.core.exceptions import ResourceNotFoundError

    client, hub = mgmt()
    rg, name = hub["resource_group"], hub["name"]
    for n in ("one", "two", "three"):
        deploy("gpt-4.1-mini", n)
    names = sorted(d.name for d in client.deployments.list(rg, name))
    check({"one", "two", "three"} <= set(names), f"list follows nextLink: {names}")
    client.deployments.begin_delete(rg, name, "two").result()
    try:
        client.deployments.get(rg, name, "two")
        raise AssertionError("a deleted deployment is still there")
    except ResourceNotFoundError:
        pass
    dev = deploy("gpt-4.1-mini", "dev", sku="developertier", capacity=50)
    # A model trained on the Hub (contoso) deployed to a Spoke in another tenant (fabrikam).
    client_v1 = OpenAI(api_key=KEY, base_url=f"{BASE}/hub/openai/v1")
    _, job = train(client_v1, "gpt-4.1-mini-2025-04-14", "support/train.jsonl")
    spoke = deploy(job.fine_tuned_model, "cross", to="prod-eastus2", cross_tenant=True)
    check(
        spoke.properties.model.source_account == hub["resource_id"],
        f"sourceAccount {spoke.properties.model}",
    )
    return {"listed": names, "developer_sku": dev.sku.name, "cross_tenant": spoke.name}


print(json.dumps({"scenario": SCENARIO, **globals()[SCENARIO]()}))

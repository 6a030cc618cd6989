"""Drives the official 1Claw Python SDK (unmodified) against oxvault.

Run by tests/tests/api/sdk.rs as `python sdk_flow.py BASE_URL`; exits non-zero with a message
on the first step that does not behave as the SDK expects, and prints one line per step.
"""

from __future__ import annotations

import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

from oneclaw import create_client
from oneclaw.errors import OneclawError

PASSWORD = "correct horse battery staple"


def step(name: str) -> None:
    print(f"step {name} ... ok", flush=True)


def data(response, what: str):
    if response.error is not None:
        raise SystemExit(f"{what} failed: {response.error} (status {response.meta.status})")
    return response.data


def main(base_url: str) -> None:
    email = f"sdk-{uuid.uuid4().hex[:12]}@example.com"

    human = create_client(base_url=base_url)
    signed_up = data(human.auth.signup(email, PASSWORD, display_name="SDK User"), "signup")
    assert signed_up["access_token"], signed_up
    step("signup")

    data(human.auth.login(email, PASSWORD), "login")
    me = data(human.auth.me(), "me")
    assert me["email"] == email, me
    assert me["role"] == "owner", me
    step("login and me")

    # The SDK's refresh() sends only the access token; like 1Claw's spec (refresh_token is
    # required), oxvault renews a session only with its refresh token, so a stolen access
    # token cannot keep itself alive. The refusal is a clean 400 and the session goes on.
    renewed = human.auth.refresh()
    assert renewed.error is not None and renewed.meta.status == 400, renewed
    assert data(human.auth.me(), "me after a refused refresh")["email"] == email
    step("refresh refused without a refresh token")

    created = data(human.api_keys.create("sdk key"), "api key create")
    user_key = created["api_key"]
    assert user_key.startswith("1ck_"), created
    listed = data(human.api_keys.list(), "api key list")
    assert [k["id"] for k in listed["keys"]] == [created["key"]["id"]], listed
    assert user_key not in str(listed), "a listing must never show the key"
    key_client = create_client(base_url=base_url, api_key=user_key)
    assert data(key_client.auth.me(), "me through an api key")["email"] == email
    step("api key client")

    agent = data(human.agents.create("sdk-agent", description="made by the SDK"), "agent create")
    agent_id = agent["agent"]["id"]
    agent_key = agent["api_key"]
    assert agent_key.startswith("ocv_"), agent
    agent_client = create_client(base_url=base_url, api_key=agent_key)
    agent_me = data(agent_client.agents.me(), "agent me")
    assert agent_me["id"] == agent_id, agent_me
    assert agent_client.resolved_agent_id == agent_id, agent_client.resolved_agent_id
    step("agent client with an ocv_ key (agent id resolved)")

    explicit = create_client(base_url=base_url, api_key=agent_key, agent_id=agent_id)
    assert data(explicit.agents.me(), "agent me with explicit id")["id"] == agent_id
    step("agent client with an explicit agent id")

    vault = data(human.vaults.create("sdk-vault", description="made by the SDK"), "vault create")
    vault_id = vault["id"]
    assert vault_id in [v["id"] for v in data(human.vaults.list(), "vault list")["vaults"]]
    assert data(human.vaults.get(vault_id), "vault get")["name"] == "sdk-vault"
    first = data(human.secrets.set(vault_id, "db/password", "s3cret-one", type="password",
                                   metadata={"env": "test"}), "secret set")
    assert first["version"] == 1, first
    second = data(human.secrets.rotate(vault_id, "db/password", "s3cret-two"), "secret rotate")
    assert second["version"] == 2, second
    read = data(human.secrets.get(vault_id, "db/password"), "secret get")
    assert read["value"] == "s3cret-two" and read["version"] == 2, read
    listed = data(human.secrets.list(vault_id, prefix="db/"), "secret list")
    assert [s["path"] for s in listed["secrets"]] == ["db/password"], listed
    assert "s3cret" not in str(listed), "listings never carry values"
    step("vaults and secrets")

    versions = data(human.secrets.list_versions(vault_id, "db/password"), "list versions")
    assert sorted(v["version"] for v in versions["versions"]) == [1, 2], versions
    old = data(human.secrets.get_version(vault_id, "db/password", 1), "get version 1")
    assert old["value"] == "s3cret-one", old
    generated = data(human.secrets.rotate_generate(vault_id, "db/password", length=40,
                                                   charset="hex"), "rotate generate")
    assert generated["version"] == 3, generated
    new_value = data(human.secrets.get(vault_id, "db/password"), "read generated")["value"]
    assert len(new_value) == 40 and all(c in "0123456789abcdef" for c in new_value), new_value
    step("secret versions and server-side rotation")

    policy = data(human.policies.create(vault_id, principal_type="agent", principal_id=agent_id,
                                        secret_path_pattern="db/*", permissions=["read"]),
                  "policy create")
    assert data(agent_client.secrets.get(vault_id, "db/password"), "agent read")["value"] == new_value
    denied = agent_client.secrets.set(vault_id, "db/password", "nope")
    assert denied.error is not None and denied.meta.status == 403, denied
    assert [p["id"] for p in data(human.policies.list(vault_id), "policy list")["policies"]] == [policy["id"]]
    data(human.policies.update(vault_id, policy["id"], permissions=["read", "write"]), "policy update")
    data(agent_client.secrets.set(vault_id, "db/password", "agent-wrote"), "agent write")
    data(human.policies.delete(vault_id, policy["id"]), "policy delete")
    gone = agent_client.secrets.get(vault_id, "db/password")
    assert gone.error is not None and gone.meta.status in (403, 404), gone
    step("policies drive what an agent may do")

    shared = data(human.secrets.set(vault_id, "share/token", "shared-value-1"), "secret to share")
    expires = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    link = data(human.sharing.create(shared["id"], recipient_type="anyone_with_link",
                                     expires_at=expires, max_access_count=2,
                                     passphrase="open sesame"), "share create")
    assert link["share_url"].endswith(f"/s/{link['id']}"), link
    stranger = create_client(base_url=base_url)
    wrong = stranger.sharing.access(link["id"], passphrase="wrong")
    assert wrong.error is not None and wrong.meta.status == 404, wrong
    got = data(stranger.sharing.access(link["id"], passphrase="open sesame"), "share access")
    assert got["value"] == "shared-value-1" and got["access_count"] == 1, got
    outbound = data(human.sharing.list_outbound(), "outbound shares")
    assert [s["id"] for s in outbound["shares"]] == [link["id"]], outbound
    assert outbound["shares"][0]["access_count"] == 1, outbound
    data(human.sharing.revoke(link["id"]), "share revoke")
    revoked = stranger.sharing.access(link["id"], passphrase="open sesame")
    assert revoked.error is not None and revoked.meta.status == 404, revoked
    step("share link: create, access with passphrase, list, revoke")

    to_agent = data(human.sharing.create(shared["id"], recipient_type="agent",
                                         recipient_id=agent_id, expires_at=expires),
                    "share to agent")
    inbound = data(agent_client.sharing.list_inbound(), "agent inbound shares")
    assert [s["id"] for s in inbound["shares"]] == [to_agent["id"]], inbound
    data(agent_client.sharing.accept(to_agent["id"]), "agent accepts")
    assert data(agent_client.sharing.access(to_agent["id"]), "agent reads share")["value"] == "shared-value-1"
    not_for_stranger = stranger.sharing.access(to_agent["id"])
    assert not_for_stranger.error is not None and not_for_stranger.meta.status == 404
    step("share to an agent: inbound, accept, access")

    data(human.secrets.delete(vault_id, "db/password"), "secret delete")
    after_delete = human.secrets.get(vault_id, "db/password")
    assert after_delete.meta.status == 410, after_delete
    step("secret delete")

    members = data(human.org.members(), "org members")
    assert [m["email"] for m in members["members"]] == [email], members
    step("org members")

    reads = data(human.audit.list(action="secret.read"), "audit events")
    assert reads["count"] >= 1 and all(e["action"] == "secret.read" for e in reads["events"]), reads
    mine = [e for e in reads["events"]
            if e["resource_id"] == read["id"] and e["details"].get("version") == 2]
    assert mine and mine[-1]["details"]["path"] == "db/password", reads
    assert mine[-1]["actor_id"] == me["id"] and mine[-1]["actor_type"] == "user", mine
    assert "s3cret" not in str(reads), "events never carry values"
    verdict = data(human.audit.verify(), "audit verify")
    assert verdict["chain_valid"] is True, verdict
    assert verdict["events_checked"] == verdict["events_verified"] >= reads["count"], verdict
    assert verdict["broken_at_event_id"] is None, verdict
    step("audit events and chain verification")

    # The SDK has no usage methods in this version: its own HTTP client, unmodified.
    deadline = time.monotonic() + 10
    while True:  # the origin writes metered requests within a flush interval
        usage = data(human._http.request("GET", "/v1/billing/usage"), "billing usage")
        month = usage["current_month"]
        if month["total_requests"] > 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert usage["billing_tier"] == "free" and usage["free_tier_limit"] > 0, usage
    assert month["total_requests"] > 0, usage
    assert month["free_requests"] + month["paid_requests"] == month["total_requests"], usage
    assert month["total_cost_usd"] == "0.0000", usage
    history = data(human._http.request("GET", "/v1/billing/history", query={"limit": 500}),
                   "billing history")
    endpoints = {(e["principal_type"], e["endpoint"]) for e in history["events"]}
    assert ("user", "/v1/vaults/{vault_id}/secrets/{*path}") in endpoints, endpoints
    assert ("agent", "/v1/vaults/{vault_id}/secrets/{*path}") in endpoints, endpoints
    assert "db/password" not in str(history), "usage records route templates, never paths"
    bad = human._http.request("GET", "/v1/billing/history", query={"limit": 0})
    assert bad.error is not None and bad.meta.status == 400, bad
    step("billing usage and history")

    data(human.auth.revoke_token(), "revoke token")
    after = human.auth.me()
    assert after.error is not None and after.meta.status == 401, after
    step("revoke token")

    bad = create_client(base_url=base_url, api_key="ocv_" + "0" * 39)
    try:
        bad.agents.me()
    except OneclawError as err:
        assert err.status == 401, err
    else:
        raise SystemExit("a malformed agent key must be refused")
    step("bad agent key refused")


if __name__ == "__main__":
    main(sys.argv[1])

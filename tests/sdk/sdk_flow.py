"""Drives the official 1Claw Python SDK (unmodified) against oxvault.

Run by tests/tests/api/sdk.rs as `python sdk_flow.py BASE_URL`; exits non-zero with a message
on the first step that does not behave as the SDK expects, and prints one line per step.

Every SDK method whose endpoint oxvault serves is called at least once, and what comes back
is checked by value: ids, names and values round-trip, versions count up, lists hold exactly
what was made, and what was deleted, revoked or declined is gone. A refusal is checked for
its status, the SDK's error type for that status, and the problem body's `detail` (the one
part of the body the SDK hands on, as the error message).

One thing is not the SDK's to do: reading the invitation mail. For that the script asks the
harness on stdout (`mailbox? invite ADDRESS`) and reads the token from stdin, as a person
would copy it from their inbox.
"""

from __future__ import annotations

import re
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

from oneclaw import create_client
from oneclaw.errors import OneclawError

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "battery staple horse correct"

# The error type the SDK gives each status (oneclaw.errors.error_from_response).
SDK_ERROR_TYPES = {
    400: "validation_error",
    401: "auth_error",
    403: "auth_error",
    404: "not_found",
    409: "unknown",
    410: "unknown",
}


def step(name: str) -> None:
    print(f"step {name} ... ok", flush=True)


def data(response, what: str):
    if response.error is not None:
        raise SystemExit(f"{what} failed: {response.error} (status {response.meta.status})")
    return response.data


def done(response, what: str) -> None:
    """A call that answers 204 No Content."""
    data(response, what)
    assert response.meta.status == 204 and response.data is None, (what, response)


def refused(response, status: int, what: str) -> None:
    """A refusal with `status` and a problem body."""
    assert response.error is not None, f"{what}: expected {status}, got {response}"
    assert response.meta.status == status, f"{what}: expected {status}, got {response}"
    assert response.data is None, (what, response)
    assert response.error.type == SDK_ERROR_TYPES[status], (what, response)
    # Without a JSON body carrying `detail`, the SDK's message is its fallback "HTTP <status>".
    message = response.error.message
    assert message and message != f"HTTP {status}", f"{what}: no problem detail in {response}"


def exchange_refused(client, what: str) -> None:
    """An agent client whose key exchange fails: the SDK raises before sending the request."""
    try:
        client.agents.me()
    except OneclawError as err:
        assert err.status == 401 and err.error_type == "auth_error", (what, err)
    else:
        raise SystemExit(f"{what}: the key exchange must be refused")


def mailbox(kind: str, address: str) -> str:
    """The token of the newest `kind` mail to `address`, from the harness."""
    print(f"mailbox? {kind} {address}", flush=True)
    token = sys.stdin.readline().strip()
    assert token, f"the harness gave no {kind} token for {address}"
    return token


def at(text: str) -> datetime:
    """An RFC 3339 time as the server writes it (up to nanoseconds; Python keeps micros)."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    return datetime.fromisoformat(text)


def same_time(text: str, expected: datetime) -> bool:
    return abs(at(text) - expected) < timedelta(seconds=1)


class Flow:
    """What the steps share: the stack's URL and the people, agents and things made so far."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.email = f"sdk-{uuid.uuid4().hex[:12]}@example.com"
        self.member_email = f"sdk-member-{uuid.uuid4().hex[:12]}@example.com"
        self.human = create_client(base_url=base_url)
        self.stranger = create_client(base_url=base_url)
        self.expires = datetime.now(timezone.utc) + timedelta(hours=1)
        # Filled in by the steps, in the order main() runs them.
        self.me = self.agent_client = self.agent_id = self.second_agent_id = None
        self.vault_id = self.read = self.generated = self.expiry = self.shared_id = None
        self.member = self.member_id = None

    def client(self, **kwargs):
        return create_client(base_url=self.base_url, **kwargs)


# -- accounts ------------------------------------------------------------------------------------


def accounts(flow: Flow) -> None:
    human = flow.human
    signed_up = data(human.auth.signup(flow.email, PASSWORD, display_name="SDK User"), "signup")
    assert signed_up["email"] == flow.email and signed_up["token_type"] == "Bearer", signed_up
    assert signed_up["access_token"] and signed_up["refresh_token"], signed_up
    assert signed_up["expires_in"] > 0, signed_up
    refused(flow.client().auth.signup(flow.email, PASSWORD), 409, "a second sign-up")
    step("signup")

    logged_in = data(human.auth.login(flow.email, PASSWORD), "login")
    assert logged_in["token_type"] == "Bearer" and logged_in["expires_in"] > 0, logged_in
    assert logged_in["refresh_token"] and logged_in["access_token"] != signed_up["access_token"]
    me = data(human.auth.me(), "me")
    assert me["email"] == flow.email and me["display_name"] == "SDK User", me
    assert me["role"] == "owner" and me["auth_method"] == "password", me
    assert me["totp_enabled"] is False and me["email_verified"] is False, me
    refused(flow.client().auth.login(flow.email, "not the password"), 401, "a wrong password")
    flow.me = me
    step("login and me")

    # The SDK's refresh() sends only the access token; like 1Claw's spec (refresh_token is
    # required), oxvault renews a session only with its refresh token, so a stolen access
    # token cannot keep itself alive. The refusal is a clean 400 and the session goes on.
    refused(human.auth.refresh(), 400, "refresh without a refresh token")
    assert data(human.auth.me(), "me after a refused refresh")["email"] == flow.email
    step("refresh refused without a refresh token")


# -- personal API keys ---------------------------------------------------------------------------


def api_keys(flow: Flow) -> None:
    human = flow.human
    created = data(human.api_keys.create("sdk key"), "api key create")
    user_key, key = created["api_key"], created["key"]
    assert user_key.startswith("1ck_") and user_key.startswith(key["key_prefix"]), created
    assert key["name"] == "sdk key" and key["scopes"] == [] and key["is_active"] is True, key
    assert key["expires_at"] is None and key["last_used_at"] is None, key
    listed = data(human.api_keys.list(), "api key list")
    assert listed == {"keys": [key], "next_cursor": None}, listed
    assert user_key not in str(listed), "a listing must never show the key"
    key_client = flow.client(api_key=user_key)
    assert data(key_client.auth.me(), "me through an api key") == flow.me
    step("api key client")

    fresh = flow.client()
    token = data(fresh.auth.api_key_token(user_key), "api key exchange")
    assert token["token_type"] == "Bearer" and token["expires_in"] > 0, token
    assert token.get("refresh_token") is None, "the key is the long-lived credential"
    assert data(fresh.auth.me(), "me after the exchange")["id"] == flow.me["id"]
    used = data(human.api_keys.list(), "api key list after use")["keys"][0]
    assert used["id"] == key["id"] and used["last_used_at"] is not None, used
    forged = user_key[:-1] + ("A" if user_key[-1] != "A" else "B")
    refused(flow.client().auth.api_key_token(forged), 401, "a forged key")

    expires = datetime.now(timezone.utc) + timedelta(days=1)
    scoped = data(human.api_keys.create("read vaults", scopes=["vaults:read"],
                                        expires_at=expires.isoformat()), "scoped key create")
    scoped_key = scoped["key"]
    assert scoped_key["scopes"] == ["vaults:read"] and scoped_key["name"] == "read vaults"
    assert same_time(scoped_key["expires_at"], expires), scoped_key
    scoped_client = flow.client(api_key=scoped["api_key"])
    assert data(scoped_client.vaults.list(), "vault list with vaults:read")["vaults"] == []
    refused(scoped_client.vaults.create("not allowed"), 403, "a vault made with vaults:read")
    listed = data(human.api_keys.list(), "api key list with two keys")
    assert [k["id"] for k in listed["keys"]] == [scoped_key["id"], key["id"]], listed
    step("api key exchange and scoped keys")

    done(human.api_keys.delete(scoped_key["id"]), "api key revoke")
    listed = data(human.api_keys.list(), "api key list after a revocation")
    assert [(k["id"], k["is_active"]) for k in listed["keys"]] == [
        (scoped_key["id"], False), (key["id"], True)], listed
    refused(scoped_client.vaults.list(), 401, "a session of a revoked key")
    refused(flow.client().auth.api_key_token(scoped["api_key"]), 401, "a revoked key")
    refused(human.api_keys.delete(str(uuid.uuid4())), 404, "revoking an unknown key")
    assert data(key_client.auth.me(), "the other key still works")["id"] == flow.me["id"]
    step("api key revoke")


# -- agents --------------------------------------------------------------------------------------


def agent_identity(flow: Flow) -> None:
    human = flow.human
    created = data(human.agents.create("sdk-agent", description="made by the SDK"), "agent create")
    agent, agent_key = created["agent"], created["api_key"]
    assert agent_key.startswith("ocv_"), created
    assert agent["name"] == "sdk-agent" and agent["description"] == "made by the SDK", agent
    assert agent["is_active"] is True and agent["auth_method"] == "api_key", agent
    assert agent["scopes"] == [] and agent["vault_ids"] == [], agent
    agent_client = flow.client(api_key=agent_key)
    agent_me = data(agent_client.agents.me(), "agent me")
    assert agent_me["id"] == agent["id"] and agent_me["name"] == "sdk-agent", agent_me
    assert agent_me["org_id"] == flow.me["org_id"], agent_me
    assert agent_me["created_by"] == flow.me["id"] and agent_me["is_active"] is True, agent_me
    assert agent_client.resolved_agent_id == agent["id"], agent_client.resolved_agent_id
    refused(agent_client.auth.me(), 403, "an agent asking for a user profile")
    flow.agent_id, flow.agent_client = agent["id"], agent_client
    step("agent client with an ocv_ key (agent id resolved)")

    explicit = flow.client(api_key=agent_key, agent_id=agent["id"])
    assert data(explicit.agents.me(), "agent me with explicit id")["id"] == agent["id"]
    step("agent client with an explicit agent id")

    fresh = flow.client()
    token = data(fresh.auth.agent_token(agent_key), "agent token")
    assert token["agent_id"] == agent["id"] and token["token_type"] == "Bearer", token
    assert token["expires_in"] > 0 and token["vault_ids"] == [], token
    assert data(fresh.agents.me(), "agent me after agent_token")["id"] == agent["id"]
    named = data(flow.client().auth.agent_token(agent_key, agent_id=agent["id"]), "named")
    assert named["agent_id"] == agent["id"], named
    refused(flow.client().auth.agent_token(agent_key, agent_id=str(uuid.uuid4())), 401,
            "a key presented for another agent")
    step("agent token exchange")


def agent_lifecycle(flow: Flow) -> None:
    human = flow.human
    created = data(human.agents.create("sdk-agent-2", description="second",
                                       vault_ids=[flow.vault_id], scopes=["secrets:read"],
                                       token_ttl_seconds=600), "second agent create")
    second, key = created["agent"], created["api_key"]
    assert second["vault_ids"] == [flow.vault_id] and second["scopes"] == ["secrets:read"], second
    assert second["token_ttl_seconds"] == 600 and second["description"] == "second", second
    listed = data(human.agents.list(), "agent list")
    assert [a["id"] for a in listed["agents"]] == [flow.agent_id, second["id"]], listed
    assert listed["next_cursor"] is None and listed["agents"][1] == second, listed
    assert data(human.agents.get(second["id"]), "agent get") == second
    token = data(flow.client().auth.agent_token(key), "second agent token")
    assert token["expires_in"] == 600 and token["vault_ids"] == [flow.vault_id], token
    refused(flow.agent_client.agents.list(), 403, "an agent listing agents")
    refused(flow.agent_client.agents.get(second["id"]), 403, "an agent looking up an agent")
    refused(human.agents.get(str(uuid.uuid4())), 404, "an unknown agent")
    refused(human.agents.get("not-an-id"), 404, "an agent id that is no UUID")
    step("agents: list and get")

    before = flow.client(api_key=key)
    assert data(before.agents.me(), "second agent me")["name"] == "sdk-agent-2"
    updated = data(human.agents.update(second["id"], name="sdk-agent-2b", description="renamed",
                                       token_ttl_seconds=900,
                                       scopes=["secrets:read", "vaults:read"]), "agent update")
    assert updated == {**second, "name": "sdk-agent-2b", "description": "renamed",
                       "token_ttl_seconds": 900, "scopes": ["secrets:read", "vaults:read"]}, updated
    assert data(human.agents.get(second["id"]), "agent get after update") == updated
    refused(before.agents.me(), 401, "a token minted before the agent changed")
    after = flow.client(api_key=key)
    assert data(after.agents.me(), "second agent me after update")["name"] == "sdk-agent-2b"
    assert data(flow.client().auth.agent_token(key), "token after update")["expires_in"] == 900
    refused(flow.agent_client.agents.update(second["id"], name="x"), 403, "an agent updating one")
    step("agents: update")

    rotated = data(human.agents.rotate_key(second["id"]), "agent rotate key")
    new_key = rotated["api_key"]
    assert new_key.startswith("ocv_") and new_key != key, rotated
    refused(after.agents.me(), 401, "a token of the rotated key")
    refused(flow.client().auth.agent_token(key), 401, "the rotated key")
    assert data(flow.client(api_key=new_key).agents.me(), "new key")["id"] == second["id"]
    refused(human.agents.rotate_key(str(uuid.uuid4())), 404, "rotating an unknown agent's key")
    step("agents: rotate key")

    done(human.agents.delete(second["id"]), "agent delete")
    assert data(human.agents.get(second["id"]), "deleted agent") == {**updated, "is_active": False}
    listed = data(human.agents.list(), "agent list after delete")
    assert [(a["id"], a["is_active"]) for a in listed["agents"]] == [
        (flow.agent_id, True), (second["id"], False)], listed
    exchange_refused(flow.client(api_key=new_key), "the key of a deleted agent")
    refused(human.agents.delete(str(uuid.uuid4())), 404, "deleting an unknown agent")
    assert data(flow.agent_client.agents.me(), "the first agent is untouched")["is_active"] is True
    flow.second_agent_id = second["id"]
    step("agents: delete")


# -- vaults and secrets --------------------------------------------------------------------------


def vaults_and_secrets(flow: Flow) -> None:
    human = flow.human
    vault = data(human.vaults.create("sdk-vault", description="made by the SDK"), "vault create")
    vault_id = vault["id"]
    assert vault["name"] == "sdk-vault" and vault["description"] == "made by the SDK", vault
    assert vault["created_by"] == flow.me["id"], vault
    listed = data(human.vaults.list(), "vault list")
    assert listed == {"vaults": [vault], "next_cursor": None}, listed
    assert data(human.vaults.get(vault_id), "vault get") == vault
    refused(human.vaults.get(str(uuid.uuid4())), 404, "an unknown vault")

    first = data(human.secrets.set(vault_id, "db/password", "s3cret-one", type="password",
                                   metadata={"env": "test"}), "secret set")
    assert first["version"] == 1 and first["path"] == "db/password", first
    assert first["type"] == "password" and first["metadata"] == {"env": "test"}, first
    second = data(human.secrets.rotate(vault_id, "db/password", "s3cret-two", type="password",
                                       metadata={"env": "test"}), "secret rotate")
    assert second["version"] == 2 and second["id"] == first["id"], second
    read = data(human.secrets.get(vault_id, "db/password"), "secret get")
    assert read["value"] == "s3cret-two" and read["version"] == 2 and read["id"] == first["id"]
    assert read["type"] == "password" and read["metadata"] == {"env": "test"}, read
    data(human.secrets.set(vault_id, "app/token", "not under db/"), "another secret")
    listed = data(human.secrets.list(vault_id, prefix="db/"), "secret list")
    assert [(s["path"], s["version"], s["type"]) for s in listed["secrets"]] == [
        ("db/password", 2, "password")], listed
    assert listed["next_cursor"] is None and "s3cret" not in str(listed), listed
    everything = data(human.secrets.list(vault_id), "secret list without a prefix")
    assert [s["path"] for s in everything["secrets"]] == ["app/token", "db/password"], everything
    refused(human.secrets.get(vault_id, "db/missing"), 404, "a secret never written")
    flow.vault_id, flow.read = vault_id, read
    step("vaults and secrets")

    versions = data(human.secrets.list_versions(vault_id, "db/password"), "list versions")
    assert [v["version"] for v in versions["versions"]] == [2, 1], versions
    assert "s3cret" not in str(versions), "version listings never carry values"
    old = data(human.secrets.get_version(vault_id, "db/password", 1), "get version 1")
    assert old["value"] == "s3cret-one" and old["version"] == 1, old
    refused(human.secrets.get_version(vault_id, "db/password", 9), 404, "a version never written")
    generated = data(human.secrets.rotate_generate(vault_id, "db/password", length=40,
                                                   charset="hex"), "rotate generate")
    assert generated["version"] == 3 and generated["id"] == first["id"], generated
    new_value = data(human.secrets.get(vault_id, "db/password"), "read generated")["value"]
    assert len(new_value) == 40 and all(c in "0123456789abcdef" for c in new_value), new_value
    assert data(human.secrets.get_version(vault_id, "db/password", 3), "v3")["value"] == new_value
    flow.generated = new_value
    step("secret versions and server-side rotation")

    for number, value in enumerate(["first", "second", "third"], start=1):
        written = data(human.secrets.set(vault_id, "retire/me", value), f"retire/me v{number}")
        assert written["version"] == number, written
    done(human.secrets.disable_version(vault_id, "retire/me", 1), "disable version 1")
    refused(human.secrets.get_version(vault_id, "retire/me", 1), 410, "a disabled version")
    versions = data(human.secrets.list_versions(vault_id, "retire/me"), "versions after disable")
    assert [(v["version"], v["is_disabled"]) for v in versions["versions"]] == [
        (3, False), (2, False), (1, True)], versions
    current = data(human.secrets.get(vault_id, "retire/me"), "current after disable")
    assert current["value"] == "third" and current["version"] == 3, current
    done(human.secrets.disable_version(vault_id, "retire/me", 1), "disable version 1 again")
    done(human.secrets.disable_version(vault_id, "retire/me", 3), "disable the current version")
    refused(human.secrets.get(vault_id, "retire/me"), 410, "a secret whose current version is off")
    assert data(human.secrets.get_version(vault_id, "retire/me", 2), "v2")["value"] == "second"
    refused(human.secrets.disable_version(vault_id, "retire/me", 9), 404, "disabling no version")
    step("secret version disable")

    limited = data(human.secrets.set(vault_id, "once/only", "read me once", max_access_count=1),
                   "a secret to read once")
    assert limited["version"] == 1, limited
    assert data(human.secrets.get(vault_id, "once/only"), "the one read")["value"] == "read me once"
    refused(human.secrets.get(vault_id, "once/only"), 410, "a read past max_access_count")
    # Checked again in the "secret expired" step, once this time has passed.
    flow.expiry = datetime.now(timezone.utc) + timedelta(seconds=2)
    expiring = data(human.secrets.set(vault_id, "soon/gone", "brief",
                                      expires_at=flow.expiry.isoformat()), "an expiring secret")
    assert same_time(expiring["expires_at"], flow.expiry), expiring
    read = data(human.secrets.get(vault_id, "soon/gone"), "read before expiry")
    assert read["value"] == "brief" and same_time(read["expires_at"], flow.expiry), read
    step("secret read limit and expiry")


def secret_delete(flow: Flow) -> None:
    human, vault_id = flow.human, flow.vault_id
    time.sleep(max(0.0, (flow.expiry - datetime.now(timezone.utc)).total_seconds() + 0.2))
    refused(human.secrets.get(vault_id, "soon/gone"), 410, "an expired secret")
    step("secret expired")

    done(human.secrets.delete(vault_id, "db/password"), "secret delete")
    refused(human.secrets.get(vault_id, "db/password"), 410, "a deleted secret")
    refused(human.secrets.list_versions(vault_id, "db/password"), 410, "its versions")
    refused(human.secrets.delete(vault_id, "db/password"), 404, "deleting it again")
    listed = data(human.secrets.list(vault_id, prefix="db/"), "secret list after delete")
    assert listed["secrets"] == [], listed
    step("secret delete")

    doomed = data(human.vaults.create("sdk-doomed"), "second vault")
    data(human.secrets.set(doomed["id"], "x/y", "goes with the vault"), "secret in it")
    assert [v["id"] for v in data(human.vaults.list(), "two vaults")["vaults"]] == [
        vault_id, doomed["id"]]
    done(human.vaults.delete(doomed["id"]), "vault delete")
    refused(human.vaults.get(doomed["id"]), 404, "a deleted vault")
    refused(human.secrets.get(doomed["id"], "x/y"), 404, "a secret of a deleted vault")
    refused(human.vaults.delete(doomed["id"]), 404, "deleting it again")
    assert [v["id"] for v in data(human.vaults.list(), "vaults left")["vaults"]] == [vault_id]
    step("vault delete")


# -- policies ------------------------------------------------------------------------------------


def policies(flow: Flow) -> None:
    human, agent_client, vault_id = flow.human, flow.agent_client, flow.vault_id
    # A vault where an agent holds no policy is one it cannot see.
    refused(agent_client.secrets.get(vault_id, "db/password"), 404, "an agent without a policy")
    expires = datetime.now(timezone.utc) + timedelta(days=1)
    policy = data(human.policies.create(vault_id, principal_type="agent",
                                        principal_id=flow.agent_id,
                                        secret_path_pattern="db/*", permissions=["read"],
                                        conditions={"ip_allowlist": ["127.0.0.1/32"]},
                                        expires_at=expires.isoformat()), "policy create")
    assert policy["vault_id"] == vault_id and policy["principal_type"] == "agent", policy
    assert policy["principal_id"] == flow.agent_id and policy["secret_path_pattern"] == "db/*"
    assert policy["permissions"] == ["read"] and same_time(policy["expires_at"], expires), policy
    assert policy["conditions"]["ip_allowlist"] == ["127.0.0.1/32"], policy
    read = data(agent_client.secrets.get(vault_id, "db/password"), "agent read")
    assert read["value"] == flow.generated, read
    refused(agent_client.secrets.get(vault_id, "app/token"), 403, "a path outside the pattern")
    refused(agent_client.secrets.set(vault_id, "db/password", "nope"), 403, "an agent write")
    listed = data(human.policies.list(vault_id), "policy list")
    assert listed == {"policies": [policy], "next_cursor": None}, listed

    fenced = data(human.policies.update(vault_id, policy["id"],
                                        conditions={"ip_allowlist": ["10.0.0.0/8"]}),
                  "policy update (conditions)")
    assert fenced["conditions"]["ip_allowlist"] == ["10.0.0.0/8"], fenced
    assert fenced["permissions"] == ["read"] and fenced["id"] == policy["id"], fenced
    refused(agent_client.secrets.get(vault_id, "db/password"), 403, "a read from outside the list")
    widened = data(human.policies.update(vault_id, policy["id"], permissions=["read", "write"],
                                         conditions={"ip_allowlist": ["127.0.0.1/32"]}),
                   "policy update (permissions)")
    assert widened["permissions"] == ["read", "write"], widened
    assert data(human.policies.list(vault_id), "policy list after update")["policies"] == [widened]
    wrote = data(agent_client.secrets.set(vault_id, "db/password", "agent-wrote"), "agent write")
    assert wrote["version"] == 4, wrote
    assert data(human.secrets.get(vault_id, "db/password"), "read back")["value"] == "agent-wrote"
    refused(agent_client.policies.list(vault_id), 403, "an agent listing policies")
    done(human.policies.delete(vault_id, policy["id"]), "policy delete")
    assert data(human.policies.list(vault_id), "policy list after delete")["policies"] == []
    refused(human.policies.delete(vault_id, policy["id"]), 404, "deleting it again")
    refused(agent_client.secrets.get(vault_id, "db/password"), 404, "after the policy went")
    step("policies drive what an agent may do")


# -- sharing -------------------------------------------------------------------------------------


def sharing(flow: Flow) -> None:
    human, stranger, agent_client = flow.human, flow.stranger, flow.agent_client
    shared = data(human.secrets.set(flow.vault_id, "share/token", "shared-value-1"),
                  "secret to share")
    flow.shared_id = shared["id"]
    link = data(human.sharing.create(shared["id"], recipient_type="anyone_with_link",
                                     expires_at=flow.expires.isoformat(), max_access_count=2,
                                     passphrase="open sesame"), "share create")
    assert link["share_url"].endswith(f"/s/{link['id']}"), link
    assert link["recipient_type"] == "anyone_with_link" and link["max_access_count"] == 2, link
    assert same_time(link["expires_at"], flow.expires), link
    refused(stranger.sharing.access(link["id"], passphrase="wrong"), 404, "a wrong passphrase")
    got = data(stranger.sharing.access(link["id"], passphrase="open sesame"), "share access")
    assert got["value"] == "shared-value-1" and got["path"] == "share/token", got
    assert got["access_count"] == 1 and got["max_access_count"] == 2, got
    assert got["id"] == shared["id"], got
    outbound = data(human.sharing.list_outbound(), "outbound shares")
    assert [s["id"] for s in outbound["shares"]] == [link["id"]], outbound
    summary = outbound["shares"][0]
    assert summary["access_count"] == 1 and summary["secret_path"] == "share/token", summary
    assert summary["is_expired"] is False and summary["recipient_type"] == "anyone_with_link"
    assert outbound["next_cursor"] is None, outbound
    done(human.sharing.revoke(link["id"]), "share revoke")
    refused(stranger.sharing.access(link["id"], passphrase="open sesame"), 404, "a revoked share")
    assert data(human.sharing.list_outbound(), "outbound after revoke")["shares"] == []
    step("share link: create, access with passphrase, list, revoke")

    to_agent = data(human.sharing.create(shared["id"], recipient_type="agent",
                                         recipient_id=flow.agent_id,
                                         expires_at=flow.expires.isoformat()), "share to agent")
    assert to_agent["recipient_type"] == "agent", to_agent
    inbound = data(agent_client.sharing.list_inbound(), "agent inbound shares")
    assert [(s["id"], s["is_accepted"]) for s in inbound["shares"]] == [(to_agent["id"], False)]
    done(agent_client.sharing.accept(to_agent["id"]), "agent accepts")
    inbound = data(agent_client.sharing.list_inbound(), "inbound after accept")
    assert [(s["id"], s["is_accepted"]) for s in inbound["shares"]] == [(to_agent["id"], True)]
    got = data(agent_client.sharing.access(to_agent["id"]), "agent reads share")
    assert got["value"] == "shared-value-1" and got["access_count"] == 1, got
    refused(stranger.sharing.access(to_agent["id"]), 404, "a stranger reading an agent's share")
    refused(stranger.sharing.accept(to_agent["id"]), 401, "accepting without a token")
    step("share to an agent: inbound, accept, access")

    declined = data(human.sharing.create(shared["id"], recipient_type="agent",
                                         recipient_id=flow.agent_id,
                                         expires_at=flow.expires.isoformat()), "share to decline")
    inbound = data(agent_client.sharing.list_inbound(), "inbound with two shares")
    assert [s["id"] for s in inbound["shares"]] == [declined["id"], to_agent["id"]], inbound
    done(agent_client.sharing.decline(declined["id"]), "agent declines")
    inbound = data(agent_client.sharing.list_inbound(), "inbound after decline")
    assert [s["id"] for s in inbound["shares"]] == [to_agent["id"]], inbound
    refused(agent_client.sharing.access(declined["id"]), 404, "a declined share")
    refused(agent_client.sharing.accept(declined["id"]), 409, "accepting a declined share")
    refused(human.sharing.decline(to_agent["id"]), 404, "declining someone else's share")
    step("share declined by its recipient")

    once = data(human.sharing.create(shared["id"], recipient_type="anyone_with_link",
                                     expires_at=flow.expires.isoformat(), max_access_count=1),
                "single-use link")
    got = data(stranger.sharing.access(once["id"]), "single-use read")
    assert got["access_count"] == 1 and got["max_access_count"] == 1, got
    refused(stranger.sharing.access(once["id"]), 404, "a used-up link")
    assert once["id"] in [s["id"] for s in data(human.sharing.list_outbound(), "out")["shares"]]
    done(human.sharing.delete(once["id"]), "share delete (revoke's alias)")
    outbound = data(human.sharing.list_outbound(), "outbound after delete")
    assert once["id"] not in [s["id"] for s in outbound["shares"]], outbound
    step("share link used up, then deleted")

    expires_at = flow.expires.isoformat()
    fenced = data(human.sharing.create(shared["id"], recipient_type="anyone_with_link",
                                       expires_at=expires_at, ip_allowlist=["10.0.0.0/8"]),
                  "a link for 10.0.0.0/8 only")
    refused(stranger.sharing.access(fenced["id"]), 404, "a link read from outside its allowlist")
    local = data(human.sharing.create(shared["id"], recipient_type="anyone_with_link",
                                      expires_at=expires_at, ip_allowlist=["127.0.0.1/32"]),
                 "a link for 127.0.0.1 only")
    assert data(stranger.sharing.access(local["id"]), "read inside")["value"] == "shared-value-1"
    mailed = data(human.sharing.create(shared["id"], recipient_type="external_email",
                                       email="friend@example.com", expires_at=expires_at),
                  "a share by mail")
    assert mailed["recipient_type"] == "external_email", mailed
    assert mailed["recipient_email"] == "friend@example.com", mailed
    outbound = {s["id"]: s for s in data(human.sharing.list_outbound(), "outbound")["shares"]}
    assert outbound[mailed["id"]]["recipient_email"] == "friend@example.com", outbound
    assert data(stranger.sharing.access(mailed["id"]), "mailed link")["value"] == "shared-value-1"
    refused(agent_client.sharing.create(shared["id"], recipient_type="external_email",
                                        email="friend@example.com", expires_at=expires_at),
            403, "an agent sharing by mail")
    note = data(human.sharing.create(shared["id"], recipient_type="creator",
                                     expires_at=expires_at), "a share to oneself")
    inbound = data(human.sharing.list_inbound(), "the creator's inbound")
    assert [(s["id"], s["recipient_type"]) for s in inbound["shares"]] == [
        (note["id"], "creator")], inbound
    assert data(human.sharing.access(note["id"]), "read own share")["value"] == "shared-value-1"
    refused(stranger.sharing.access(note["id"]), 404, "a stranger reading a creator share")
    step("share kinds: ip allowlist, external email, creator")


# -- the org -------------------------------------------------------------------------------------


def org(flow: Flow) -> None:
    human = flow.human
    members = data(human.org.members(), "org members")
    assert [(m["id"], m["email"], m["role"], m["display_name"]) for m in members["members"]] == [
        (flow.me["id"], flow.email, "owner", "SDK User")], members
    assert members["next_cursor"] is None, members
    refused(flow.agent_client.org.members(), 403, "an agent listing members")
    step("org members")

    invited = data(human.org.invite(flow.member_email), "invite")
    assert invited["email"] == flow.member_email and invited["message"], invited
    refused(human.org.invite(flow.email), 409, "inviting a member")
    member = flow.client()
    data(member.auth.signup(flow.member_email, PASSWORD, display_name="SDK Member"),
         "member signup")
    data(member.auth.login(flow.member_email, PASSWORD), "member login")
    token = mailbox("invite", flow.member_email)
    # The SDK has no call for this step (1Claw's reference has none): its own HTTP client.
    joined = data(member._http.request("POST", "/v1/org/invitations/accept", body={"token": token}),
                  "accept the invitation")
    member._http.set_token(joined["access_token"])
    member_me = data(member.auth.me(), "member me")
    assert member_me["org_id"] == flow.me["org_id"] and member_me["role"] == "member", member_me
    assert member_me["email"] == flow.member_email, member_me
    # Redeeming the mailed token proves the address.
    assert member_me["email_verified"] is True, member_me
    members = data(human.org.members(), "members after the join")
    assert [(m["email"], m["role"]) for m in members["members"]] == [
        (flow.email, "owner"), (flow.member_email, "member")], members
    assert members["members"][1]["id"] == member_me["id"], members
    assert data(member.org.members(), "members as the member sees them") == members
    refused(member.org.invite("someone@example.com"), 403, "a member inviting")
    refused(member.org.update_member_role(flow.me["id"], "member"), 403, "a member demoting")
    flow.member, flow.member_id = member, member_me["id"]
    step("org invite and join")

    to_member = data(human.sharing.create(flow.shared_id, recipient_type="user",
                                          recipient_id=flow.member_id,
                                          expires_at=flow.expires.isoformat()), "share to a user")
    inbound = data(member.sharing.list_inbound(), "member inbound")
    assert [(s["id"], s["recipient_type"]) for s in inbound["shares"]] == [
        (to_member["id"], "user")], inbound
    assert data(member.sharing.access(to_member["id"]), "member reads")["value"] == "shared-value-1"
    refused(flow.agent_client.sharing.access(to_member["id"]), 404, "another recipient")
    step("share to a user")

    promoted = data(human.org.update_member_role(flow.member_id, "admin"), "promote")
    assert promoted == {**members["members"][1], "role": "admin"}, promoted
    refused(member.auth.me(), 401, "a token from before the role change")
    data(member.auth.login(flow.member_email, PASSWORD), "member login as admin")
    assert data(member.auth.me(), "admin me")["role"] == "admin"
    refused(member.org.remove_member(flow.me["id"]), 403, "an admin removing the owner")
    refused(human.org.update_member_role(flow.me["id"], "admin"), 409, "demoting the last owner")
    refused(human.org.update_member_role(str(uuid.uuid4()), "admin"), 404, "an unknown member")
    step("org member role change")

    refused(member.auth.change_password("not the password", NEW_PASSWORD), 400,
            "a wrong current password")
    changed = data(member.auth.change_password(PASSWORD, NEW_PASSWORD), "change password")
    assert changed["message"], changed
    refused(member.auth.me(), 401, "a session from before the change")
    refused(flow.client().auth.login(flow.member_email, PASSWORD), 401, "the old password")
    data(member.auth.login(flow.member_email, NEW_PASSWORD), "login with the new password")
    assert data(member.auth.me(), "me after the change")["id"] == flow.member_id
    step("change password")

    done(human.org.remove_member(flow.member_id), "remove member")
    members = data(human.org.members(), "members after the removal")
    assert [m["email"] for m in members["members"]] == [flow.email], members
    refused(member.auth.me(), 401, "a removed member's session")
    refused(flow.client().auth.login(flow.member_email, NEW_PASSWORD), 401, "a removed member")
    refused(human.org.remove_member(flow.member_id), 404, "removing them again")
    step("org remove member")


# -- audit, billing, the end of a session --------------------------------------------------------


def audit(flow: Flow) -> None:
    human, read, me = flow.human, flow.read, flow.me
    reads = data(human.audit.list(action="secret.read"), "audit events")
    assert reads["count"] >= 1 and all(e["action"] == "secret.read" for e in reads["events"]), reads
    assert reads["count"] == len(reads["events"]), reads
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

    first = data(human.audit.list(action="secret.read", limit=1), "first page")
    after = data(human.audit.list(action="secret.read", limit=1, offset=1), "second page")
    assert first["count"] == after["count"] == reads["count"] >= 2, (first, after)
    assert [e["id"] for e in first["events"] + after["events"]] == [
        e["id"] for e in reads["events"][:2]], (first, after, reads)
    lifecycle = data(human.audit.list(resource_id=flow.second_agent_id), "one agent's events")
    assert {e["action"] for e in lifecycle["events"]} >= {
        "agent.register", "agent.update", "agent.rotate_key", "agent.deactivate"}, lifecycle
    assert all(e["resource_id"] == flow.second_agent_id for e in lifecycle["events"]), lifecycle
    by_agent = data(human.audit.list(actor_id=flow.agent_id), "one actor's events")
    assert by_agent["count"] >= 1, by_agent
    assert all(e["actor_id"] == flow.agent_id and e["actor_type"] == "agent"
               for e in by_agent["events"]), by_agent
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    none = {"events": [], "count": 0}
    assert data(human.audit.list(from_time=later.isoformat()), "future") == none
    earlier = datetime.now(timezone.utc) - timedelta(days=1)
    assert data(human.audit.list(to_time=earlier.isoformat()), "past") == none
    refused(human.audit.list(limit=0), 400, "a limit of 0")
    refused(flow.agent_client.audit.list(), 403, "an agent reading the audit trail")
    stretch = data(human.audit.verify(limit=2), "verify two events")
    assert stretch["chain_valid"] is True and stretch["events_checked"] == 2, stretch
    assert stretch["events_verified"] == 2 and stretch["broken_at_event_id"] is None, stretch
    nothing = data(human.audit.verify(from_time=later.isoformat()), "verify an empty window")
    assert nothing["chain_valid"] is True and nothing["events_checked"] == 0, nothing
    refused(flow.agent_client.audit.verify(), 403, "an agent verifying the chain")
    step("audit filters, pages and verification windows")


def billing(flow: Flow) -> None:
    human = flow.human
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
    refused(human._http.request("GET", "/v1/billing/history", query={"limit": 0}), 400,
            "a history limit of 0")
    step("billing usage and history")


def endings(flow: Flow) -> None:
    human = flow.human
    done(human.auth.revoke_token(), "revoke token")
    refused(human.auth.me(), 401, "a revoked token")
    step("revoke token")

    exchange_refused(flow.client(api_key="ocv_" + "0" * 39), "a malformed agent key")
    step("bad agent key refused")


def main(base_url: str) -> None:
    if not __debug__:
        raise SystemExit("the checks are assert statements: run without -O or PYTHONOPTIMIZE")
    flow = Flow(base_url)
    accounts(flow)
    api_keys(flow)
    agent_identity(flow)
    vaults_and_secrets(flow)
    policies(flow)
    sharing(flow)
    agent_lifecycle(flow)
    secret_delete(flow)
    org(flow)
    audit(flow)
    billing(flow)
    endings(flow)


if __name__ == "__main__":
    main(sys.argv[1])

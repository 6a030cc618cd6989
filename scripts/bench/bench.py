#!/usr/bin/env python3
"""Helpers of scripts/bench.sh (Python 3.11 standard library only).

Subcommands:
  seed-oxvault  sign up orgs, create a vault, secrets, agents, policies and a share link
                through the origin's API; writes wrk target files and state.json
  seed-openbao  initialise, unseal and configure an OpenBao server (KV v2, a policy token,
                userpass) and write the same number of secrets; writes its target files
  topup         add secrets to a second vault of the main org until a total is reached
  pgproxy       a TCP proxy to PostgreSQL that counts the client's round trips
  sql-per-read  SQL round trips (and HSM calls, when the origin reports them) per read
  report        the table of results and the targets, printed and written to BENCHMARKS.md

Every target is 127.0.0.1. Every loop is bounded (attempts, counts or deadlines).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import http.client
import json
import os
import platform
import random
import re
import socket
import statistics
import string
import subprocess
import sys
import threading
import time
import urllib.parse

PASSWORD = "bench correct horse battery staple"
PATH_FMT = "bench/s%05d"  # the wrk script appends "s%05d" to the ".../bench/" prefix
_local = threading.local()


def log(msg: str) -> None:
    print(f"  [bench.py] {msg}", file=sys.stderr, flush=True)


class HttpError(Exception):
    pass


def request(base: str, method: str, path: str, body=None, headers=None, ok=range(200, 300),
            attempts: int = 8):
    """One JSON request over a per-thread keep-alive connection; retries connection errors,
    429 and 503 a bounded number of times. Returns (status, parsed body or None)."""
    url = urllib.parse.urlsplit(base)
    if url.hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit(f"refusing a non-loopback target: {base}")
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    hdrs = {"Accept": "application/json"}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    last = None
    for attempt in range(attempts):
        conn = conns.get(base)
        if conn is None:
            conn = conns[base] = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        try:
            conn.request(method, path, body=payload, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as err:
            conn.close()
            conns.pop(base, None)
            last = f"{method} {path}: {err!r}"
            time.sleep(min(0.1 * 2**attempt, 3))
            continue
        if resp.getheader("connection", "").lower() == "close":
            conn.close()
            conns.pop(base, None)
        if resp.status in (429, 503) and attempt + 1 < attempts:
            last = f"{method} {path}: {resp.status} {data[:200]!r}"
            time.sleep(min(0.2 * 2**attempt, 5))
            continue
        parsed = None
        if data:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = data.decode(errors="replace")
        if resp.status not in ok:
            raise HttpError(f"{method} {base}{path}: {resp.status} {str(parsed)[:300]}")
        return resp.status, parsed
    raise HttpError(f"gave up after {attempts} attempts: {last}")


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def random_value(size: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(random.choice(alphabet) for _ in range(size))


def parallel(fn, items, threads: int, what: str, deadline: float | None = None):
    """Runs fn(item) on a thread pool, logging progress; stops submitting at the deadline.
    Returns the results in item order (None for items not run)."""
    items = list(items)
    results = [None] * len(items)
    done = 0
    t0 = time.monotonic()
    step = max(1, len(items) // 10)
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        futures = {}
        it = iter(enumerate(items))
        # Keep a bounded number in flight so that a deadline stops the work promptly.
        for i, item in it:
            futures[pool.submit(fn, item)] = i
            if len(futures) >= threads * 4:
                break
        while futures:
            finished, _ = concurrent.futures.wait(futures, return_when="FIRST_COMPLETED")
            for fut in finished:
                i = futures.pop(fut)
                results[i] = fut.result()
                done += 1
                if done % step == 0:
                    rate = done / max(time.monotonic() - t0, 1e-6)
                    log(f"{what}: {done}/{len(items)} ({rate:.0f}/s)")
                if deadline is None or time.monotonic() < deadline:
                    nxt = next(it, None)
                    if nxt is not None:
                        futures[pool.submit(fn, nxt[1])] = nxt[0]
    elapsed = time.monotonic() - t0
    log(f"{what}: {done} in {elapsed:.1f}s ({done / max(elapsed, 1e-6):.0f}/s)")
    return results, done, elapsed


# ---------------------------------------------------------------------------------------------
# oxvault


def signup(base: str, email: str) -> str:
    _, body = request(base, "POST", "/v1/auth/signup",
                      {"email": email, "password": PASSWORD, "display_name": "Bench"})
    return body["access_token"]


def login(base: str, email: str) -> str:
    _, body = request(base, "POST", "/v1/auth/token", {"email": email, "password": PASSWORD})
    return body["access_token"]


def create_vault(base: str, token: str, name: str) -> str:
    _, body = request(base, "POST", "/v1/vaults", {"name": name}, bearer(token))
    return body["id"]


def put_secret(base: str, token: str, vault: str, index: int, value: str) -> str:
    _, body = request(base, "PUT", f"/v1/vaults/{vault}/secrets/{PATH_FMT % index}",
                      {"value": value}, bearer(token))
    return body["id"]


def create_agent(base: str, token: str, vault: str, name: str) -> dict:
    _, created = request(base, "POST", "/v1/agents",
                         {"name": name, "token_ttl_seconds": 86400}, bearer(token))
    agent_id = created["agent"]["id"]
    request(base, "POST", f"/v1/vaults/{vault}/policies",
            {"principal_type": "agent", "principal_id": agent_id,
             "secret_path_pattern": "**", "permissions": ["read", "write"]}, bearer(token))
    _, exchanged = request(base, "POST", "/v1/auth/agent-token", {"api_key": created["api_key"]})
    return {"id": agent_id, "token": exchanged["access_token"]}


def write_lines(path: str, lines) -> None:
    with open(path, "w") as f:
        for line in lines:
            f.write(line + "\n")


def write_json(path: str, value) -> None:
    with open(path, "w") as f:
        json.dump(value, f)


def cmd_seed_oxvault(args) -> None:
    base, out, tag = args.base, args.out, f"{int(time.time())}-{random.randrange(1 << 30):x}"
    value = random_value(args.value_size)
    owner_email = f"bench-owner-{tag}@example.com"
    owner = signup(base, owner_email)
    vault = create_vault(base, owner, "bench")
    log(f"main org: vault {vault}")

    ids, done, elapsed = parallel(lambda i: put_secret(base, owner, vault, i, value),
                                  range(args.secrets), args.threads, "secrets (PUT)")
    agents, _, _ = parallel(lambda i: create_agent(base, owner, vault, f"bench-agent-{i}"),
                            range(args.agents), min(args.threads, 8), "agents")

    def make_org(i: int) -> dict:
        email = f"bench-org{i}-{tag}@example.com"
        token = signup(base, email)
        org_vault = create_vault(base, token, "bench")
        put_secret(base, token, org_vault, 0, value)
        agent = create_agent(base, token, org_vault, "bench-agent")
        return {"email": email, "vault": org_vault, "agent": agent}

    orgs, _, _ = parallel(make_org, range(args.orgs), min(args.threads, 8), "orgs")

    expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).isoformat()
    _, share = request(base, "POST", f"/v1/secrets/{ids[0]}/share",
                       {"recipient_type": "anyone_with_link", "expires_at": expires,
                        "max_access_count": 2_000_000_000}, bearer(owner))
    flood_email = f"bench-flood-{tag}@example.com"
    signup(base, flood_email)

    prefix = f"/v1/vaults/{vault}/secrets/bench/"
    write_lines(f"{out}/targets-one-agent.txt", [f"{prefix}\tAuthorization: Bearer {agents[0]['token']}"])
    write_lines(f"{out}/targets-agents.txt",
                [f"{prefix}\tAuthorization: Bearer {a['token']}" for a in agents])
    write_lines(f"{out}/targets-orgs.txt",
                [f"/v1/vaults/{o['vault']}/secrets/bench/\tAuthorization: Bearer {o['agent']['token']}"
                 for o in orgs])
    write_lines(f"{out}/targets-share.txt", [f"/v1/share/{share['id']}\t"])
    write_json(f"{out}/body-write.json", {"value": value})
    write_json(f"{out}/body-login.json", {"email": owner_email, "password": PASSWORD})
    write_json(f"{out}/body-flood.json", {"email": flood_email, "password": PASSWORD})
    write_json(f"{out}/state.json", {
        "owner_email": owner_email, "vault": vault, "secrets": args.secrets,
        "agent_token": agents[0]["token"], "value_size": args.value_size,
        "seed_rate": done / max(elapsed, 1e-6), "share": share["id"],
    })


def cmd_topup(args) -> None:
    """Adds secrets to a second vault of the main org until the org holds args.total."""
    state = json.load(open(args.state))
    base = args.base
    owner = login(base, state["owner_email"])  # the seeding session may have expired
    vault = create_vault(base, owner, "bench-rss")
    missing = max(0, args.total - state["secrets"])
    value = random_value(state["value_size"])
    deadline = time.monotonic() + args.max_secs
    _, done, elapsed = parallel(lambda i: put_secret(base, owner, vault, i, value),
                                range(missing), args.threads, "top-up secrets", deadline)
    total = state["secrets"] + done
    print(json.dumps({"secrets": total, "seconds": round(elapsed, 1)}))


def busy_share(interval: float) -> float:
    """The share of all cores busy over the next `interval` seconds (from /proc/stat)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)
    busy_a, total_a = sample()
    time.sleep(interval)
    busy_b, total_b = sample()
    return (busy_b - busy_a) / max(1, total_b - total_a)


def cmd_settle(args) -> None:
    """Waits until the machine is quiet (or args.max_secs pass), so that a run is not charged
    for work the one before it left behind: PostgreSQL's autovacuum of the audit rows a run
    wrote, a checkpoint, OpenBao flushing its raft log. Prints the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < args.max_secs:
        if busy_share(0.5) < args.quiet:
            break
    print(round(time.monotonic() - started, 1))


def process_stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (which may hold spaces), so that
    field n of proc(5) is at n - 3; empty when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def cmd_cpu_ticks(args) -> None:
    """Prints the CPU time (user + system, in clock ticks) used so far by the origin, by
    PostgreSQL and by OpenBao, as JSON, for run_wrk to record before and after a run.
    PostgreSQL's backends and autovacuum workers come and go: its figure is its postmaster's own
    time and that of the children it has reaped (cutime, cstime), plus its living children's."""
    def own(stat: list[str]) -> int:
        return int(stat[11]) + int(stat[12]) if stat else 0  # utime, stime

    stats = {pid: process_stat(pid) for pid in args.postgres}
    postgres = 0
    for stat in stats.values():
        if not stat:
            continue
        postgres += own(stat)
        if int(stat[1]) not in stats:  # a postmaster: its parent is not PostgreSQL
            postgres += int(stat[13]) + int(stat[14])  # cutime, cstime
    print(json.dumps({
        "origin": own(process_stat(args.origin)) if args.origin else 0,
        "postgres": postgres,
        "openbao": own(process_stat(args.openbao)) if args.openbao else 0,
        "workers": group_ticks(dict(w.split("=", 1) for w in args.workers), own),
    }))


def group_ticks(groups: dict[str, str], own) -> dict[str, int]:
    """The CPU ticks of every living process in each named process group (a Worker runner:
    bench.sh starts each with setsid, so its group id is the pid it knows)."""
    wanted = {int(pid): name for name, pid in groups.items()}
    ticks = dict.fromkeys(groups, 0)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = process_stat(int(entry))
            if stat and int(stat[2]) in wanted:  # pgrp
                ticks[wanted[int(stat[2])]] += own(stat)
    return ticks


def runner_of(row_id: str) -> str | None:
    """The Worker runner a row's requests go through (see cpu_ticks in bench.sh), if any."""
    for kind in ("trivial", "forwarder", "edge"):
        if row_id.startswith(kind):
            return f"{kind}-cli" if row_id.startswith(f"{kind}-cli") else kind
    return None


def cpu_per_request(r: dict) -> dict | None:
    """Each server's CPU microseconds per request over a row's run(s), from run_wrk's ticks,
    with "worker" the row's Worker runner's (None without one); None for rows recorded without
    ticks."""
    tries = r.get("tries") or [r]
    if not all("cpu_before" in t for t in tries):
        return None
    requests = sum(t["requests"] for t in tries)
    if not requests:
        return None
    tick = os.sysconf("SC_CLK_TCK")

    def per_request(ticks) -> float:
        return sum(ticks(t["cpu_after"]) - ticks(t["cpu_before"]) for t in tries) / tick * 1e6 / requests

    cpu = {k: per_request(lambda c, k=k: c[k]) for k in ("origin", "postgres", "openbao")}
    runner = runner_of(r["id"])
    cpu["worker"] = None
    if runner and all(runner in t[side].get("workers", {}) for t in tries for side in ("cpu_before", "cpu_after")):
        cpu["worker"] = per_request(lambda c: c["workers"][runner])
    return cpu


def cpu_text(r: dict) -> str:
    """The CPU column: OpenBao's for its rows; for ours the Worker runner's (when the row goes
    through one), then the origin's and PostgreSQL's (unless the Worker answers alone)."""
    cpu = cpu_per_request(r)
    if cpu is None:
        return "-"
    if r["id"].startswith("bao-"):
        return f"OpenBao {cpu['openbao']:.0f}"
    worker = "" if cpu["worker"] is None else f"Workers {cpu['worker']:.0f}"
    if r["id"].startswith("trivial"):
        return worker or "-"
    server = f"{cpu['origin']:.0f} + PG {cpu['postgres']:.0f}"
    return f"{worker} + {server}" if worker else server


def cmd_check(args) -> None:
    """The loads' requests answer as they should before any is timed: the hot secret's value
    through the origin and through the edge, and the share link through both."""
    state = json.load(open(args.state))
    path = f"/v1/vaults/{state['vault']}/secrets/{PATH_FMT % 0}"
    h = bearer(state["agent_token"])
    values = []
    for base in (args.origin, args.edge):
        _, body = request(base, "GET", path, headers=h, attempts=3)
        values.append(body.get("value"))
        _, shared = request(base, "GET", f"/v1/share/{state['share']}", attempts=3)
        if shared.get("value") != values[0]:
            raise SystemExit(f"the share link through {base} did not give the secret: {shared}")
        t0 = time.monotonic()
        for _ in range(20):
            request(base, "GET", path, headers=h, attempts=1)
        log(f"{base}: 20 sequential reads, {(time.monotonic() - t0) / 20 * 1000:.1f} ms each")
    if values[0] is None or values[0] != values[1]:
        raise SystemExit(f"the origin and the edge disagree on the secret: {values}")


# ---------------------------------------------------------------------------------------------
# OpenBao


def cmd_seed_openbao(args) -> None:
    base, out = args.addr, args.out
    deadline = time.monotonic() + 60
    while True:  # the listener may take a moment
        try:
            _, st = request(base, "GET", "/v1/sys/init", attempts=1)
            break
        except HttpError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    if st.get("initialized"):
        raise SystemExit("OpenBao is already initialised: bench.sh starts it on fresh storage")
    _, init = request(base, "PUT", "/v1/sys/init", {"secret_shares": 1, "secret_threshold": 1})
    root = init["root_token"]
    request(base, "PUT", "/v1/sys/unseal", {"key": init["keys"][0]})
    write_json(f"{out}/openbao-init.json", init)
    deadline = time.monotonic() + 60
    while True:  # raft elects itself leader shortly after unseal
        try:
            status, _ = request(base, "GET", "/v1/sys/health", ok=range(200, 600), attempts=1)
        except HttpError:
            status = 0
        if status == 200:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"OpenBao did not become active (health {status})")
        time.sleep(0.5)
    root_h = {"X-Vault-Token": root}
    request(base, "POST", "/v1/sys/mounts/secret",
            {"type": "kv", "options": {"version": "2"}}, root_h)
    request(base, "PUT", "/v1/sys/policies/acl/bench",
            {"policy": 'path "secret/data/bench/*" { capabilities = ["create", "read", "update"] }'},
            root_h)
    _, tok = request(base, "POST", "/v1/auth/token/create",
                     {"policies": ["bench"], "ttl": "24h", "no_default_policy": False}, root_h)
    token = tok["auth"]["client_token"]
    request(base, "POST", "/v1/sys/auth/userpass", {"type": "userpass"}, root_h)
    request(base, "POST", "/v1/auth/userpass/users/bench",
            {"password": PASSWORD, "token_policies": "bench"}, root_h)

    value = random_value(args.value_size)
    h = {"X-Vault-Token": token}
    deadline = time.monotonic() + 60
    while True:  # a fresh KV v2 mount answers 400/503 while it upgrades
        try:
            request(base, "POST", "/v1/secret/data/" + PATH_FMT % 0, {"data": {"value": value}}, h,
                    attempts=1)
            break
        except HttpError as err:
            if time.monotonic() > deadline:
                raise
            log(f"waiting for the KV v2 mount: {err}")
            time.sleep(0.5)
    parallel(lambda i: request(base, "POST", "/v1/secret/data/" + PATH_FMT % i,
                               {"data": {"value": value}}, h),
             range(1, args.secrets), args.threads, "OpenBao secrets")
    write_lines(f"{out}/targets-bao.txt", [f"/v1/secret/data/bench/\tX-Vault-Token: {token}"])
    write_json(f"{out}/body-bao-write.json", {"data": {"value": value}})
    write_json(f"{out}/body-bao-login.json", {"password": PASSWORD})


# ---------------------------------------------------------------------------------------------
# SQL round trips: a proxy that counts what the client sends


def cmd_pgproxy(args) -> None:
    upstream_host, upstream_port = args.upstream.rsplit(":", 1)
    counts = {"syncs": 0, "queries": 0, "executes": 0, "connections": 0, "by_type": {}}
    lock = threading.Lock()

    def pump(src, dst, parse: bool):
        # Frontend stream: a startup packet without a type byte, then typed messages.
        buf = b""
        startup = True
        skip = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                if not parse:
                    continue
                buf += data
                while True:
                    if skip:
                        n = min(skip, len(buf))
                        buf, skip = buf[n:], skip - n
                        if skip:
                            break
                    if startup:
                        if len(buf) < 8:
                            break
                        length = int.from_bytes(buf[0:4], "big")
                        code = int.from_bytes(buf[4:8], "big")
                        if code in (80877103, 80877104):  # SSL or GSS request: refused, again
                            buf = buf[8:]
                            continue
                        startup = False
                        skip = length
                        continue
                    if len(buf) < 5:
                        break
                    kind = buf[0:1]
                    length = int.from_bytes(buf[1:5], "big")
                    with lock:
                        letter = kind.decode("latin-1")
                        counts["by_type"][letter] = counts["by_type"].get(letter, 0) + 1
                        if kind == b"S":
                            counts["syncs"] += 1
                        elif kind == b"Q":
                            counts["queries"] += 1
                        elif kind == b"E":
                            counts["executes"] += 1
                    skip = 1 + length
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def writer():
        while True:
            with lock:
                text = json.dumps(counts)
            tmp = args.counter_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, args.counter_file)
            time.sleep(0.05)

    threading.Thread(target=writer, daemon=True).start()
    server = socket.create_server(("127.0.0.1", args.port))
    while True:
        client, _ = server.accept()
        upstream = socket.create_connection((upstream_host, int(upstream_port)))
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with lock:
            counts["connections"] += 1
        threading.Thread(target=pump, args=(client, upstream, True), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, False), daemon=True).start()


def read_counter(path: str) -> dict:
    for _ in range(50):
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            time.sleep(0.05)
    raise SystemExit(f"no counter in {path}")


def round_trips(c: dict) -> int:
    # One round trip per Sync (extended protocol) or simple Query.
    return c["syncs"] + c["queries"]


def origin_metrics(base: str) -> dict:
    """The origin's unlabelled counters and gauges from GET /metrics (Prometheus text) on its
    metrics listener at `base`, {} when it has none."""
    try:
        status, body = request(base, "GET", "/metrics", ok=range(200, 600), attempts=2)
    except HttpError:
        return {}
    if status != 200 or not isinstance(body, str):
        return {}
    found = {}
    for line in body.splitlines():
        parts = line.split()
        # The counters and gauges without labels; histograms and per-route series are for a
        # Prometheus, not this report.
        if len(parts) == 2 and not line.startswith("#") and "{" not in parts[0]:
            try:
                found[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return found


def hsm_calls(base: str):
    """HSM calls so far: `oxvault_hsm_calls_total` from the origin's /metrics. Fallback hook
    for origins without it: the first integer field of /v1/health or /v1/health/hsm whose name
    mentions the HSM and calls or operations. None when the origin reports nothing (n/a)."""
    value = origin_metrics(base).get("oxvault_hsm_calls_total")
    if value is not None:
        return value
    for path in ("/v1/health", "/v1/health/hsm"):
        try:
            _, body = request(base, "GET", path, ok=range(200, 600), attempts=2)
        except HttpError:
            continue

        def walk(node, trail=""):
            if isinstance(node, dict):
                for k, v in node.items():
                    found = walk(v, f"{trail}.{k}")
                    if found is not None:
                        return found
            elif isinstance(node, int) and not isinstance(node, bool):
                name = trail.lower()
                if re.search(r"hsm|pkcs|kek", name) and re.search(r"call|op|count|request", name):
                    return node
            return None

        found = walk(body)
        if found is not None:
            return found
    return None


def cmd_sql_per_read(args) -> None:
    """SQL round trips and HSM calls per read, in steady state: the secrets are read once
    first (pools, caches), then the idle background rate is measured and subtracted."""
    state = json.load(open(args.state))
    base = args.origin
    hsm_base = args.metrics
    h = bearer(state["agent_token"])
    n = state["secrets"]

    def read(i: int) -> None:
        request(base, "GET", f"/v1/vaults/{state['vault']}/secrets/{PATH_FMT % i}",
                headers=h, attempts=3)

    parallel(read, range(n), 8, "warm-up reads of every secret")
    time.sleep(1.5)

    def measure(pick) -> dict:
        idle_secs = 3.0
        # Each HSM probe is taken outside the SQL window it could add to.
        h0 = hsm_calls(hsm_base)
        c0 = read_counter(args.counter_file)
        time.sleep(idle_secs)
        h1 = hsm_calls(hsm_base)
        c1 = read_counter(args.counter_file)
        t0 = time.monotonic()
        for _ in range(args.reads):
            read(pick())
        time.sleep(1.5)  # let a buffered meter or audit flush land in the window
        window = time.monotonic() - t0
        c2 = read_counter(args.counter_file)
        h2 = hsm_calls(hsm_base)
        idle_rate = (round_trips(c1) - round_trips(c0)) / idle_secs
        sql = (round_trips(c2) - round_trips(c1) - idle_rate * window) / args.reads
        hsm = None
        if None not in (h0, h1, h2):
            hsm = (h2 - h1 - (h1 - h0) / idle_secs * window) / args.reads
        names = {"S": "Sync", "Q": "Query", "E": "Execute", "P": "Parse", "B": "Bind",
                 "D": "Describe", "C": "Close", "H": "Flush", "X": "Terminate"}
        by_type = {names.get(k, k): round((v - c1["by_type"].get(k, 0)) / args.reads, 2)
                   for k, v in sorted(c2["by_type"].items())}
        return {"sql_round_trips_per_read": round(sql, 2),
                "sql_executes_per_read": round((c2["executes"] - c1["executes"]) / args.reads, 2),
                "sql_messages_per_read": by_type,
                "sql_idle_round_trips_per_s": round(idle_rate, 2),
                "hsm_calls_per_read": None if hsm is None else round(hsm, 2)}

    result = {"reads": args.reads,
              "hot": measure(lambda: 0),
              "spread": measure(lambda: random.randrange(n)),
              "origin_metrics": origin_metrics(hsm_base)}
    print(json.dumps(result))


# ---------------------------------------------------------------------------------------------
# Report


def sh(cmd: str) -> str:
    try:
        out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout
        return out.strip().splitlines()[0] if out.strip() else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine(root: str, bao: str) -> list[tuple[str, str]]:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    wrangler = "?"
    try:
        wrangler = json.load(open(f"{root}/node_modules/wrangler/package.json"))["version"]
    except (OSError, ValueError, KeyError):
        pass
    return [
        ("date", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("commit", sh(f"git -C '{root}' describe --always --dirty")),
        ("CPU", f"{cpu}, nproc {os.cpu_count()}"),
        ("memory", f"{mem_kib / 1048576:.1f} GiB"),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("rustc", sh("rustc --version")),
        ("node / wrangler", f"{sh('node --version')} / wrangler {wrangler}"),
        ("PostgreSQL", sh("psql -X -h 127.0.0.1 -U postgres -tAc 'show server_version'")),
        ("SoftHSM", sh("softhsm2-util --version")),
        ("OpenBao", sh(f"'{bao}' version")),
        ("wrk", sh("wrk -v 2>&1")),
    ]


def settings_secrets(metrics: dict):
    return metrics.get("settings", {}).get("secrets", "?")


def fmt_ms(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def merge_tries(rows: list[dict]) -> list[dict]:
    """One row per id, in the order ids first ran. A row run several times (BENCH_TRIES) gets
    the median of each figure, its errors summed, and every try kept under "tries"."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["id"], []).append(r)
    merged = []
    for tries in groups.values():
        row = dict(tries[0])
        if len(tries) > 1:
            for key in ("rps", "p50_ms", "p99_ms"):
                row[key] = statistics.median(t[key] for t in tries)
            row["errors"] = {k: sum(t["errors"][k] for t in tries) for k in tries[0]["errors"]}
            row["tries"] = tries
        merged.append(row)
    return merged


def tries_text(rows: list[dict]) -> list[str]:
    """A line per row that ran more than once: each try's rps and p99, in the order they ran."""
    lines = []
    for r in rows:
        if r.get("tries"):
            rps = " / ".join(f"{t['rps']:.0f}" for t in r["tries"])
            p99 = " / ".join(fmt_ms(t["p99_ms"]) for t in r["tries"])
            lines.append(f"- {r['label']} ({r['conns']} conns): {rps} rps; p99 {p99} ms")
    return lines


def cmd_report(args) -> None:
    rows = merge_tries([json.loads(line) for line in open(args.results) if line.strip()])
    metrics = json.load(open(args.metrics)) if os.path.exists(args.metrics) else {}
    by = {r["id"]: r for r in rows}

    def ratio(r):
        peer = by.get(r.get("peer") or "")
        if r.get("ratio_of") == "p99":
            base = by.get(r.get("peer") or "")
            if base and base["p99_ms"]:
                return f"{r['p99_ms'] / base['p99_ms']:.2f}x p99 of {base['label']}"
            return "-"
        if peer and peer["rps"]:
            return f"{r['rps'] / peer['rps']:.2f}x {peer['label']}"
        return "-"

    header = "| what | conns | rps | p50 ms | p99 ms | ratio | CPU us/request | errors |"
    lines = [header, "|---|---:|---:|---:|---:|---|---|---:|"]
    for r in rows:
        errs = sum(r["errors"].values())
        lines.append(f"| {r['label']} | {r['conns']} | {r['rps']:.0f} | {fmt_ms(r['p50_ms'])} | "
                     f"{fmt_ms(r['p99_ms'])} | {ratio(r)} | {cpu_text(r)} | {errs} |")

    targets = []

    def target(name: str, measured: str, ok):
        verdict = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        targets.append(f"| {name} | {measured} | {verdict} |")

    def clean(r):
        return r is not None and sum(r["errors"].values()) == 0

    def rps_target(name, row_id, peer_id, factor, p99_max=None):
        r, p = by.get(row_id), by.get(peer_id)
        if not (r and p and p["rps"]):
            return target(name, "not measured", None)
        ok = r["rps"] >= factor * p["rps"] and clean(r)
        text = f"{r['rps']:.0f} vs {p['rps']:.0f} rps = {r['rps'] / p['rps']:.2f}x"
        if p99_max is not None:
            ok = ok and r["p99_ms"] <= p99_max
            text += f", p99 {r['p99_ms']:.2f} ms"
        if not clean(r):
            text += " (errors)"
        target(name, text, ok)

    rps_target("read >= 2.0x OpenBao, p99 <= 10 ms (one org, hot secret, 32 conns)",
               "origin-hot-c32", "bao-hot-c32", 2.0, 10.0)
    rps_target("read >= 2.0x OpenBao, p99 <= 10 ms (16 orgs, 32 conns)",
               "origin-orgs-c32", "bao-hot-c32", 2.0, 10.0)
    rps_target("write >= 1.0x OpenBao (32 conns)", "origin-write-c32", "bao-write-c32", 1.0)
    rps_target("edge read >= 0.7x trivial Worker (32 conns)", "edge-hot-c32", "trivial-c32", 0.7)
    e, o, t = by.get("edge-hot-c1"), by.get("origin-hot-c1"), by.get("trivial-c1")
    if e and o and t:
        cost = e["p50_ms"] - o["p50_ms"] - t["p50_ms"]
        target("Worker own cost (edge p50 - origin p50 - trivial p50, 1 conn) <= 1 ms",
               f"{cost:.2f} ms ({e['p50_ms']:.2f} - {o['p50_ms']:.2f} - {t['p50_ms']:.2f})",
               cost <= 1.0)
    else:
        target("Worker own cost <= 1 ms", "not measured", None)
    # The formula charges the Worker with the runtime's cost of a subrequest, which the
    # trivial floor never makes; the forwarding floor makes the same subrequest with no checks.
    fw = by.get("forwarder-c1")
    if e and fw:
        cost = e["p50_ms"] - fw["p50_ms"]
        target("Worker own cost over a forwarding JS Worker (edge p50 - forwarder p50, 1 conn) <= 1 ms",
               f"{cost:.2f} ms ({e['p50_ms']:.2f} - {fw['p50_ms']:.2f})", cost <= 1.0)
    rps_target("edge read >= 0.7x the forwarding JS Worker (32 conns)", "edge-hot-c32",
               "forwarder-c32", 0.7)
    rps_target("edge read >= 0.7x trivial Worker, wrangler dev command (32 conns)",
               "edge-cli-hot-c32", "trivial-cli-c32", 0.7)
    f, i = by.get("origin-flood-c32"), by.get("origin-idle-c32")
    if f and i and i["p99_ms"]:
        target("read p99 under a login flood <= 2x idle p99",
               f"{f['p99_ms']:.2f} vs {i['p99_ms']:.2f} ms = {f['p99_ms'] / i['p99_ms']:.2f}x",
               f["p99_ms"] <= 2 * i["p99_ms"] and clean(f))
    else:
        target("read p99 under a login flood <= 2x idle p99", "not measured", None)
    gz = metrics.get("bundle_gzip_bytes")
    if gz:
        target("Worker bundle <= 1 MiB gzipped",
               f"{gz / 1024:.0f} KiB gz ({metrics.get('bundle_raw_bytes', 0) / 1024:.0f} KiB raw; "
               f"the Wasm {metrics.get('wasm_gzip_bytes', 0) / 1024:.0f} KiB gz)",
               gz <= 1 << 20)
    else:
        target("Worker bundle <= 1 MiB gzipped", "not measured", None)
    rss, n = metrics.get("rss_kib"), metrics.get("rss_secrets")
    if rss and n:
        ok = rss <= 100 * 1024 if n >= 100_000 else None
        note = "" if n >= 100_000 else " (fewer than 100,000: not judged)"
        target("origin RSS <= 100 MiB with 100,000 secrets",
               f"{rss / 1024:.1f} MiB with {n} secrets{note}", ok)
    else:
        target("origin RSS <= 100 MiB with 100,000 secrets", "not measured", None)

    extra = []
    sql = metrics.get("sql") or {}
    for kind, what in (("hot", "one hot secret"), ("spread", f"{settings_secrets(metrics)} secrets")):
        m = sql.get(kind)
        if not m:
            extra.append(f"- SQL round trips and HSM calls per read ({what}): not measured")
            continue
        hsm = m.get("hsm_calls_per_read")
        extra.append(
            f"- per secret read, {what}, steady state (agent token, origin direct, "
            f"{sql.get('reads')} reads): SQL round trips {m['sql_round_trips_per_read']} "
            f"(client messages per read: "
            f"{', '.join(f'{k} {v:g}' for k, v in m.get('sql_messages_per_read', {}).items())}; "
            f"a round trip is a Sync or a simple Query; idle background "
            f"{m['sql_idle_round_trips_per_s']}/s subtracted), HSM calls "
            f"{'n/a (the origin exposes no counter)' if hsm is None else hsm}")
    if sql.get("origin_metrics"):
        extra.append("- the probe origin's counters at the end: " + ", ".join(
            f"{k} {v:g}" for k, v in sql["origin_metrics"].items()))
    for key, when in (("rss_kib_start", "just started"), ("rss_kib_after_seed", "after seeding"),
                      ("rss_kib_probe", "of the SQL probe (a second process that only served "
                                        f"reads of the {settings_secrets(metrics)} secrets, no logins)")):
        if metrics.get(key):
            extra.append(f"- origin RSS {when}: {metrics[key] / 1024:.1f} MiB")
    if metrics.get("rss_kib_seeded"):
        extra.append(f"- origin RSS after the {metrics.get('secrets_seeded')} seeded secrets and all "
                     f"load runs: {metrics['rss_kib_seeded'] / 1024:.1f} MiB")
    if metrics.get("rss_kib_topped_up"):
        extra.append(f"- origin RSS right after the top-up to {n} secrets, before reading: "
                     f"{metrics['rss_kib_topped_up'] / 1024:.1f} MiB")
    if rss:
        extra.append(f"- origin RSS after topping up to {n} secrets and reading them: {rss / 1024:.1f} MiB"
                     + (f" (top-up took {metrics.get('rss_topup_seconds')} s)" if metrics.get('rss_topup_seconds') else ""))
    if metrics.get("rss_kib_peak"):
        extra.append(f"- origin peak RSS over the whole run (VmHWM): {metrics['rss_kib_peak'] / 1024:.1f} MiB")
    if metrics.get("wasm_raw_bytes"):
        extra.append(f"- Worker Wasm: {metrics['wasm_raw_bytes']} bytes raw, "
                     f"{metrics['wasm_gzip_bytes']} bytes gzipped -9; the whole bundle (Wasm and "
                     f"JS under edge/build): {metrics.get('bundle_raw_bytes')} raw, "
                     f"{metrics.get('bundle_gzip_bytes')} gzipped -9")
    if metrics.get("seed_rate"):
        extra.append(f"- seeding rate (concurrent PUTs through the origin): {metrics['seed_rate']:.0f} secrets/s")

    settings = metrics.get("settings", {})
    table = "\n".join(lines)
    tgt = "\n".join(["| target | measured | verdict |", "|---|---|---|", *targets])
    mach = "\n".join(f"- {k}: {v}" for k, v in machine(args.root, args.bao))
    quick = " **(BENCH_QUICK: a check of the script, not a measurement)**" if settings.get("quick") else ""
    text = f"""# Benchmarks

Written by `scripts/bench.sh`{quick}. Every number comes from one run on the machine below,
load generator included (wrk shares the cores with what it measures); rerun the script to
compare on your own hardware.

## Machine and versions

{mach}

## Settings

- the Workers' processes (wrangler, workerd, esbuild) are stopped (SIGSTOP) while a row
  measures the origin or OpenBao alone, and go on for the rows that go through a Worker: idle,
  they poll, and took about 6% of this 2-core box from the rows that do not use them; the
  runners of the `wrangler dev` command live only around their own rows
- the rows a target is judged on ran {settings.get('tries', 1)} times (`BENCH_TRIES`), see below
- wrk {settings.get('duration', '?')} per run, {settings.get('threads', 2)} threads (1 for 1 connection), 10 s timeout;
  each run starts once the machine is quiet (under 15% busy for half a second, waited for at
  most 10 s; the wait is `settled_s` in run/results.jsonl), so no run pays for the work the
  one before it left behind (autovacuum of the audit rows it wrote, OpenBao's log flushes)
- secret value: {settings.get('value_size', '?')} bytes; {settings.get('secrets', '?')} secrets in the main vault
  ("spread" rows pick one at random per request; "hot" rows read one); 16 agents of one org
  ("16 agents" rows rotate through their tokens); 16 orgs each with an agent and a hot secret
- origin: release build, PostgreSQL on 127.0.0.1:5432 (database oxvault_bench, made fresh),
  SoftHSM2 token made fresh, log level `{settings.get('origin_log', '?')}`; rate limits raised to
  `{settings.get('limit', '?')}` for the run (the edge's `RATE_LIMIT_*`, the origin's
  `OXVAULT_ORIGIN_RATE_LIMIT`), free tier limits lifted
- edge: the release Worker under wrangler's dev server (local, the same Miniflare and workerd as
  `wrangler dev`) with the DevTools inspector and file watching off
  (`scripts/wrangler-dev-quiet.mjs`), log level `{settings.get('wrangler_log', '?')}`; the
  floors under the same runner: a Worker answering "ok" (trivial), and one forwarding each
  request to the origin unchecked (forwarder); rows marked "wrangler dev command" run the
  edge and both floors under `wrangler dev --local` itself, whose inspector reports every
  subrequest
- OpenBao: integrated (raft) storage, a file audit device declared in its config, KV v2,
  a token with a read/write policy (reads and writes), userpass for login, TLS off on 127.0.0.1
- "origin" rows go straight to the origin, "edge" rows through the Worker

## Results

{table}

"CPU us/request" is the CPU time (user and system) the server used per answered request over
the row's run: OpenBao's process for its rows; for ours, the origin's process + every PostgreSQL
process (its background writers included), and first, for a row through a Worker, "Workers":
every process of that Worker's runner (wrangler's node, the dev server's proxy workerd that
every request passes first, and the workerd running the Worker). It moves less than rps when
the machine slows down or speeds up, and says where a request's cost lies: on this box the
Workers, the origin, PostgreSQL and wrk share two cores, so a row through a Worker is bounded by
the sum of its columns (plus wrk's share), and the trivial Worker by its proxy's one core.

Rows run {settings.get('tries', 1)} times (each try of a pair back to back, the tries spread over
the run) show the median of each figure; the ratio is of the medians. Each try:

{chr(10).join(tries_text(rows)) or "- none: every row ran once"}

## Targets

{tgt}

## Other measurements

{chr(10).join(extra)}
"""
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seed-oxvault")
    s.add_argument("--base", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--secrets", type=int, default=10000)
    s.add_argument("--agents", type=int, default=16)
    s.add_argument("--orgs", type=int, default=16)
    s.add_argument("--threads", type=int, default=16)
    s.add_argument("--value-size", type=int, default=64)
    s = sub.add_parser("check")
    s.add_argument("--origin", required=True)
    s.add_argument("--edge", required=True)
    s.add_argument("--state", required=True)
    s = sub.add_parser("seed-openbao")
    s.add_argument("--addr", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--secrets", type=int, default=10000)
    s.add_argument("--threads", type=int, default=16)
    s.add_argument("--value-size", type=int, default=64)
    s = sub.add_parser("topup")
    s.add_argument("--base", required=True)
    s.add_argument("--state", required=True)
    s.add_argument("--total", type=int, required=True)
    s.add_argument("--threads", type=int, default=16)
    s.add_argument("--max-secs", type=float, default=900)
    s = sub.add_parser("settle")
    s.add_argument("--quiet", type=float, default=0.15, help="busy share of all cores that counts as quiet")
    s.add_argument("--max-secs", type=float, default=10)
    s = sub.add_parser("cpu-ticks")
    s.add_argument("--origin", type=int, default=0)
    s.add_argument("--openbao", type=int, default=0)
    s.add_argument("--postgres", type=int, nargs="*", default=[])
    s.add_argument("--workers", nargs="*", default=[], help="NAME=PGID of each Worker runner")
    s = sub.add_parser("pgproxy")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--upstream", required=True)
    s.add_argument("--counter-file", required=True)
    s = sub.add_parser("sql-per-read")
    s.add_argument("--origin", required=True)
    s.add_argument("--metrics", required=True, help="base URL of the origin's metrics listener")
    s.add_argument("--state", required=True)
    s.add_argument("--counter-file", required=True)
    s.add_argument("--reads", type=int, default=500)
    s = sub.add_parser("report")
    s.add_argument("--results", required=True)
    s.add_argument("--metrics", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--root", required=True)
    s.add_argument("--bao", required=True)
    args = p.parse_args()
    {
        "seed-oxvault": cmd_seed_oxvault, "check": cmd_check, "seed-openbao": cmd_seed_openbao, "topup": cmd_topup,
        "settle": cmd_settle, "cpu-ticks": cmd_cpu_ticks, "pgproxy": cmd_pgproxy, "sql-per-read": cmd_sql_per_read, "report": cmd_report,
    }[args.cmd](args)


if __name__ == "__main__":
    main()

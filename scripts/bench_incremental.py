#!/usr/bin/env python3
"""Measures incremental target reads with the emulators in their own processes.

    cargo build --release -p usersync -p usersync-emulators
    scripts/bench_incremental.py <s|m> [--change-percent 1] [--latency-ms 0]

Starts `usersync-emulators graph --size SIZE` and `usersync-emulators atlassian --product jira`,
runs an initial `usersync sync`, then a no-change `sync` and, after changing about 1 % of the
synced users in the emulated tenant (in turn: display name, disabled, deleted, added to a
group), another `sync`. For each run prints the Graph and Jira request counts (from the
emulators' counters), Jira writes, wall time and the peak RSS of the usersync process
(`/usr/bin/time -v`), and the target read mode from the JSON report.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")


def http(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


def start(args):
    p = subprocess.Popen(
        [os.path.join(REL, "usersync-emulators")] + args,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = p.stdout.readline()
    return p, json.loads(line)


def run_usersync(cfg, args):
    t0 = time.time()
    out = subprocess.run(
        ["/usr/bin/time", "-v", os.path.join(REL, "usersync"), "--config", cfg] + args,
        capture_output=True,
        text=True,
    )
    wall = time.time() - t0
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
    rss_mb = int(m.group(1)) / 1024 if m else -1
    return out, wall, rss_mb


def main():
    size = sys.argv[1] if len(sys.argv) > 1 else "s"
    pct = 1.0
    latency = 0
    if "--change-percent" in sys.argv:
        pct = float(sys.argv[sys.argv.index("--change-percent") + 1])
    if "--latency-ms" in sys.argv:
        latency = int(sys.argv[sys.argv.index("--latency-ms") + 1])
    graph, ginfo = start(["graph", "--size", size, "--latency-ms", str(latency)])
    jira, jinfo = start(["atlassian", "--product", "jira", "--latency-ms", str(latency)])
    try:
        gbase = ginfo.get("login_url") or ginfo.get("base_url")
        graph_url = ginfo.get("graph_url") or gbase + "/v1.0"
        jbase = jinfo["base_url"]
        d = tempfile.mkdtemp(prefix="usersync-bench-")
        with open(os.path.join(d, "secret"), "w") as f:
            f.write(ginfo.get("client_secret", "emulator-client-secret"))
        with open(os.path.join(d, "pat"), "w") as f:
            f.write("emulator-pat")
        cfg = os.path.join(d, "usersync.toml")
        with open(cfg, "w") as f:
            f.write(
                f"""data_dir = "{d}/data"
[source]
tenant_id = "{ginfo.get('tenant_id')}"
client_id = "{ginfo.get('client_id')}"
client_secret = {{ file = "{d}/secret" }}
login_url = "{gbase}"
graph_url = "{graph_url}"
allow_insecure_http = true
[[target]]
name = "jira"
product = "jira"
base_url = "{jbase}"
auth = "bearer"
secret = {{ file = "{d}/pat" }}
allow_insecure_http = true
[target.sync.scope]
flatten_nested = true
[target.sync.policy]
access_groups = ["jira-software-users"]
# A 1 % change deletes and disables about 0.5 % of the users: above the default guard at M.
[target.sync.policy.guard]
max_count = 1000000
max_percent = 100.0
membership_max_count = 100000000
membership_max_percent = 100.0
"""
            )

        def reset():
            http("POST", gbase + "/_emulator/stats/reset")
            http("POST", jbase + "/_emulator/stats/reset")

        def measure(name, args):
            reset()
            out, wall, rss = run_usersync(cfg, ["--format", "json"] + args)
            gs = http("GET", gbase + "/_emulator/stats")
            js = http("GET", jbase + "/_emulator/stats")
            mode = "?"
            try:
                rep = json.loads(out.stdout)
                rep = rep[0] if isinstance(rep, list) else rep
                tr = rep["run"].get("target_read") or {}
                mode = json.dumps(tr.get("mode"))
            except Exception:
                pass
            graph_total = gs.get("total", sum(gs.get("counts", {}).values()))
            graph_token = sum(v for k, v in gs.get("counts", {}).items() if "token" in k)
            print(
                f"{name:<14} exit={out.returncode} graph={graph_total} (token {graph_token}) "
                f"jira={js['total']} jira_writes={js['writes']} wall={wall:.2f}s "
                f"rss={rss:.0f}MiB target_read={mode}",
                flush=True,
            )
            if out.returncode not in (0, 3):
                print(out.stderr[-2000:])

        measure("initial", ["sync"])
        measure("no-change", ["sync"])
        measure("no-change", ["sync"])
        users = http("GET", gbase + f"/_emulator/users?limit=100000")
        users = users["value"]
        groups = http("GET", gbase + "/_emulator/groups?limit=100000")
        groups = groups["value"]
        active = [u for u in users if u.get("state", "Active") == "Active"]
        n = max(5, int(len(active) * pct / 100))
        stride = max(1, len(active) // n)
        for i in range(n):
            u = active[i * stride]
            uid = u["id"]
            k = i % 4
            if k == 0:
                http("PATCH", gbase + f"/_emulator/users/{uid}", {"displayName": f"Changed {i}"})
            elif k == 1:
                http("PATCH", gbase + f"/_emulator/users/{uid}", {"accountEnabled": False})
            elif k == 2:
                http("DELETE", gbase + f"/_emulator/users/{uid}")
            else:
                g = groups[i % len(groups)]
                http("POST", gbase + f"/_emulator/groups/{g['id']}/members", {"id": uid})
        print(f"changed {n} of {len(active)} users")
        measure("1% change", ["sync"])
        measure("no-change", ["sync"])
        measure("full", ["sync", "--full"])
    finally:
        graph.terminate()
        jira.terminate()


if __name__ == "__main__":
    main()

"""Drive the Atlassian Data Center emulators with the real, unmodified atlassian-python-api client.

Each test starts `usersync-emulators atlassian --product <p>` (binary from $USERSYNC_EMULATORS_BIN,
default target/debug/usersync-emulators), reads the JSON line with the base URL and talks to it
through `from atlassian import Jira, Confluence, Bitbucket, Crowd`. Where the client's own request
does not match the product's documented API (known client bugs: Crowd `group_add_user` swaps
user and group, Confluence group membership uses a Cloud path, Jira deactivate sends a string),
the test asserts the error the real product gives instead of bending the emulator.

Run: python3 -m pytest tests/python/test_atlassian_emulator.py
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
import requests
from requests import HTTPError

from atlassian import Bitbucket, Confluence, Crowd, Jira

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("USERSYNC_EMULATORS_BIN", str(ROOT / "target" / "debug" / "usersync-emulators"))


def start(product, *extra):
    proc = subprocess.Popen(
        [BIN, "atlassian", "--product", product, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError(f"emulator did not start: {proc.stderr.read()}")
    info = json.loads(line)
    assert info["product"] == product
    return proc, info["base_url"]


@pytest.fixture
def emulator(request):
    procs = []

    def _start(product, *extra):
        proc, base = start(product, *extra)
        procs.append(proc)
        return base

    yield _start
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


def stats(base):
    return requests.get(f"{base}/_emulator/stats", timeout=10).json()


def state(base):
    return requests.get(f"{base}/_emulator/state", timeout=10).json()


def user_state(base, name):
    return next((u for u in state(base)["users"] if u["name"].lower() == name.lower()), None)


# --------------------------------------------------------------------------------------------- Jira


def test_jira_users_groups_and_memberships(emulator):
    base = emulator("jira")
    assert base.endswith("/jira")
    jira = Jira(url=base, username="admin", password="admin")

    assert jira.get_server_info()["versionNumbers"][0] >= 10
    assert jira.myself()["name"] == "admin"
    assert jira.get_permissions("ADMINISTER")["permissions"]["ADMINISTER"]["havePermission"] is True

    created = jira.user_create("alice", "alice@example.com", "Alice Example", password="s3cret")
    assert created["name"] == "alice"
    key = created["key"]
    assert key.startswith("JIRAUSER")
    # Case-insensitive lookup keeps the original spelling.
    assert jira.user("ALICE")["key"] == key
    # applicationKeys omitted -> the selected-by-default application's default group.
    assert "jira-software-users" in [g["name"] for g in jira.user("alice", expand="groups")["groups"]["items"]]

    with pytest.raises(HTTPError) as e:
        jira.user_create("Alice", "other@example.com", "Dup", password="x")
    assert e.value.response.status_code == 400
    assert "username" in e.value.response.json()["errors"]

    group = jira.create_group("Team-A")
    assert group["name"] == "Team-A"
    jira.add_user_to_group(username="alice", group_name="team-a")
    with pytest.raises(HTTPError) as e:
        jira.add_user_to_group(username="ALICE", group_name="TEAM-A")
    assert e.value.response.status_code == 400

    members = jira.get_all_users_from_group("team-a")
    assert members["total"] == 1 and members["isLast"] is True
    assert [u["name"] for u in members["values"]] == ["alice"]
    assert [g["name"] for g in jira.get_groups(query="team")["groups"]] == ["Team-A"]

    # Rename keeps the key.
    jira.user_update_username("alice", "alice.renamed")
    assert jira.user("alice.renamed")["key"] == key
    # The client sends "active": "false" as a string; Jira's Jackson accepts it.
    jira.user_deactivate("alice.renamed")
    assert jira.user("alice.renamed")["active"] is False
    assert jira.get_all_users_from_group("team-a")["total"] == 0
    assert jira.get_all_users_from_group("team-a", include_inactive_users=True)["total"] == 1

    everyone = jira.user_find_by_user_string(username=".", include_inactive_users=True, limit=1000)
    assert {u["name"] for u in everyone} >= {"admin", "alice.renamed"}

    jira.remove_user_from_group(username="alice.renamed", group_name="Team-A")
    jira.remove_group("team-a")
    jira.user_remove(username="alice.renamed")
    with pytest.raises(HTTPError) as e:
        jira.user("alice.renamed")
    assert e.value.response.status_code == 404
    assert e.value.response.json()["errorMessages"]

    s = stats(base)
    assert s["requests"]["POST /rest/api/2/user"] == 2
    assert s["requests"]["DELETE /rest/api/2/group"] == 1
    assert s["writes"] >= 8


def test_jira_pat_and_non_admin(emulator):
    base = emulator("jira")
    assert Jira(url=base, token="emulator-pat").myself()["name"] == "admin"
    admin = Jira(url=base, username="admin", password="admin")
    admin.user_create("bob", "bob@example.com", "Bob", password="bobpw")
    bob = Jira(url=base, username="bob", password="bobpw")
    assert bob.get_permissions("ADMINISTER")["permissions"]["ADMINISTER"]["havePermission"] is False
    with pytest.raises(HTTPError) as e:
        bob.user_create("mallory", "m@example.com", "Mallory", password="x")
    assert e.value.response.status_code == 403
    with pytest.raises(HTTPError) as e:
        Jira(url=base, username="admin", password="wrong").myself()
    assert e.value.response.status_code == 401


def test_jira_injected_429(emulator):
    base = emulator("jira", "--throttle-first", "1", "--retry-after-secs", "7")
    r = requests.get(f"{base}/rest/api/2/myself", auth=("admin", "admin"), timeout=10)
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "7"
    assert Jira(url=base, username="admin", password="admin").myself()["name"] == "admin"


# --------------------------------------------------------------------------------------- Confluence


def test_confluence_users_groups(emulator):
    base = emulator("confluence")
    conf = Confluence(url=base, username="admin", password="admin")

    # Confluence 8.4+ admin user API; the client has no wrapper, so use its generic POST.
    created = conf.post(
        "rest/api/admin/user",
        data={"userName": "carol", "fullName": "Carol C", "email": "carol@example.com", "password": "pw", "notifyViaEmail": False},
    )
    assert len(created["userKey"]) == 32
    with pytest.raises(HTTPError) as e:
        conf.post(
            "rest/api/admin/user",
            data={"userName": "Carol", "fullName": "C", "email": "c@example.com", "password": "pw", "notifyViaEmail": False},
        )
    # Upper-case letters are rejected before the duplicate check (CONF-OAS userName rules).
    assert e.value.response.status_code == 400
    assert e.value.response.json()["statusCode"] == 400
    with pytest.raises(HTTPError) as e:
        conf.post(
            "rest/api/admin/user",
            data={"userName": "carol", "fullName": "C", "email": "c@example.com", "password": "pw", "notifyViaEmail": False},
        )
    assert e.value.response.status_code == 409

    details = conf.get_user_details_by_username("carol", expand="status")
    assert details["userKey"] == created["userKey"] and details["status"] == "Active"

    conf.create_group("devs")
    assert "devs" in [g["name"] for g in conf.get_all_groups()]

    # The client's add_user_to_group uses the Cloud path POST group/{g}/member: DC answers 405.
    with pytest.raises(HTTPError) as e:
        conf.add_user_to_group("devs", "carol")
    assert e.value.response.status_code == 405
    # The DC membership call is PUT /rest/api/user/{u}/group/{g}, idempotent 204.
    conf.put("rest/api/user/carol/group/devs")
    conf.put("rest/api/user/carol/group/devs")
    assert [m["username"] for m in conf.get_all_members("devs")] == ["carol"]

    conf.put("rest/api/admin/user/carol/disable")
    assert conf.get_user_details_by_username("carol", expand="status")["status"] == "Deactivated"
    assert user_state(base, "carol")["active"] is False

    conf.delete("rest/api/user/carol/group/devs")
    assert conf.get_all_members("devs") == []
    conf.remove_group("devs")
    task = conf.delete("rest/api/admin/user/carol")
    assert "/rest/api/longtask/" in task["links"]["status"]
    assert user_state(base, "carol") is None
    assert stats(base)["requests"]["PUT /rest/api/user/{username}/group/{group}"] == 2


# ---------------------------------------------------------------------------------------- Bitbucket


def test_bitbucket_users_groups(emulator):
    base = emulator("bitbucket", "--seed-users", "30")
    bb = Bitbucket(url=base, username="admin", password="admin")

    # Create takes query parameters and answers 204 (BB-OAS); no wrapper in the client.
    bb.post(
        "rest/api/1.0/admin/users",
        params={"name": "dave", "password": "pw", "displayName": "Dave D", "emailAddress": "dave@example.com", "addToDefaultGroup": "true", "notify": "false"},
    )
    infos = list(bb.get_users_info(user_filter="DAVE"))
    assert [u["name"] for u in infos] == ["dave"]
    assert infos[0]["slug"] == "dave"

    # The generator follows isLastPage/nextPageStart over 32 users with limit 25.
    everyone = list(bb.get_users_info())
    assert len(everyone) == 32

    bb.post("rest/api/1.0/admin/groups", params={"name": "Builders"})
    bb.post("rest/api/1.0/admin/groups/add-users", data={"group": "builders", "users": ["dave", "USER0001"]})
    assert sorted(u["name"] for u in bb.group_members("BUILDERS")) == ["dave", "user0001"]
    assert "Builders" in list(bb.get_groups())
    bb.post("rest/api/1.0/admin/groups/remove-user", data={"context": "Builders", "itemName": "dave"})
    assert [u["name"] for u in bb.group_members("Builders")] == ["user0001"]

    renamed = bb.post("rest/api/1.0/admin/users/rename", data={"name": "dave", "newName": "david"})
    assert renamed["name"] == "david"
    deleted = bb.delete("rest/api/1.0/admin/users", params={"name": "david"})
    assert deleted["name"] == "david"

    with pytest.raises(HTTPError) as e:
        bb.delete("rest/api/1.0/admin/users", params={"name": "nobody"})
    assert e.value.response.status_code == 404
    assert e.value.response.json()["errors"][0]["exceptionName"].endswith("NoSuchUserException")
    assert stats(base)["requests"]["POST /rest/api/1.0/admin/users"] == 1


# -------------------------------------------------------------------------------------------- Crowd


def test_crowd_users_groups(emulator):
    base = emulator("crowd")
    crowd = Crowd(url=base, username="usersync", password="usersync")

    crowd.user_create("erin", True, "Erin", "Example", "Erin Example", "erin@example.com", "pw")
    u = crowd.user("ERIN")
    assert u["name"] == "erin" and u["active"] is True and u["display-name"] == "Erin Example"

    crowd.user_deactivate("erin")
    assert crowd.user("erin")["active"] is False
    crowd.user_activate("erin")
    assert crowd.user("erin")["active"] is True

    crowd.post("rest/usermanagement/1/group", data={"name": "Ops", "type": "GROUP", "description": "ops", "active": True})
    # The client's group_add_user posts to user/group/direct?groupname=G: Crowd needs ?username=.
    with pytest.raises(HTTPError) as e:
        crowd.group_add_user("erin", "ops")
    assert e.value.response.status_code == 400
    assert e.value.response.json()["reason"] == "ILLEGAL_ARGUMENT"
    # The documented call: POST /group/user/direct?groupname=G {"name": U} -> 201.
    crowd.post("rest/usermanagement/1/group/user/direct", params={"groupname": "OPS"}, data={"name": "erin"})
    assert crowd.group_members("ops") == ["erin"]
    assert crowd.user_groups("erin") == ["Ops"]
    assert crowd.is_user_in_group("erin", "ops") is True

    found = crowd.search_cql("user", restriction='name="er*"')
    assert [x["name"] for x in found["users"]] == ["erin"]

    # The client's user_rename sends {"newName"}; Crowd's body is {"new-name"}.
    with pytest.raises(HTTPError) as e:
        crowd.user_rename("erin", "erin2")
    assert e.value.response.status_code == 400
    crowd.post("rest/usermanagement/1/user/rename", params={"username": "erin"}, data={"new-name": "erin2"})
    assert crowd.user("erin2")["name"] == "erin2"
    assert crowd.group_members("ops") == ["erin2"]

    crowd.group_remove_user("erin2", "ops")
    assert crowd.group_members("ops") == []
    crowd.user_delete("erin2")
    with pytest.raises(HTTPError) as e:
        crowd.user("erin2")
    assert e.value.response.status_code == 404
    assert e.value.response.json()["reason"] == "USER_NOT_FOUND"

    with pytest.raises(HTTPError) as e:
        Crowd(url=base, username="usersync", password="wrong").user("admin")
    assert e.value.response.status_code == 401
    assert stats(base)["requests"]["POST /rest/usermanagement/1/user"] == 1

"""Issue 11 items 8 and 9, checked with the atlassian-python-api clients' own calls (version
pinned in requirements.txt, 5.0.5): Crowd `max-results=-1` means "all results"; Crowd nested
groups (`group_add_child_group`, `group_child_groups`, `group_parent_groups`, the nested
variants, `group_remove_child_group`); CQL `or` / parentheses (`search_cql`) and the
`boolean-search-restriction` body (`search`). The client has no `includeDeleted` (Jira `user`)
and no `avatarSize` (Bitbucket `get_users`) parameter, so those two go through the same
clients' generic `get` on the documented paths.

What the client offers for `max-results`: `group_members`, `nested_group_members`,
`group_child_groups`, `nested_group_child_groups`, `search_cql` (GET /search) and `search`
(POST /search) take `max_results` and send it as `max-results` verbatim, so `-1` reaches the
server unchanged. `user_groups` and `nested_user_groups` send no `max-results` at all.

Run: python3 -m pytest tests/python/test_atlassian_fidelity.py
"""

import pytest
from requests import HTTPError

from atlassian import Bitbucket, Crowd, Jira

from test_atlassian_emulator import emulator  # noqa: F401  (a fixture)


def test_crowd_max_results_minus_one_with_the_client(emulator):  # noqa: F811
    base = emulator("crowd")
    crowd = Crowd(url=base, username="usersync", password="usersync")
    names = [f"maxres{i}" for i in range(5)]
    for n in names:
        crowd.user_create(n, True, "Max", f"Res{n[-1]}", f"Max {n}", f"{n}@example.com", "pw")
    crowd.group_create("maxres-team", description="max-results check")
    for n in names[:3]:
        # The client's group_add_user swaps user and group (see test_atlassian_emulator.py), so
        # the membership is added with the client's generic post on Crowd's documented path.
        crowd.post("rest/usermanagement/1/group/user/direct", params={"groupname": "maxres-team"}, data={"name": n})

    # crowd.user(...) reads each created user back.
    assert crowd.user("MAXRES0")["name"] == "maxres0"

    # GET /search (CQL) and POST /search: -1 returns every user, the same as the default page.
    everyone = crowd.search_cql("user")["users"]
    assert {u["name"] for u in everyone} >= set(names)
    assert len(crowd.search_cql("user", max_results=-1)["users"]) == len(everyone)
    assert len(crowd.search("user", max_results=-1)["users"]) == len(everyone)
    assert len(crowd.search_cql("user", max_results=2)["users"]) == 2
    assert crowd.search_cql("group", restriction='name="maxres*"', max_results=-1)["groups"][0]["name"] == "maxres-team"

    # Group members, direct and nested (this group has no child groups, so nested == direct).
    assert sorted(crowd.group_members("maxres-team", max_results=-1)) == names[:3]
    assert len(crowd.group_members("maxres-team", max_results=1)) == 1
    assert sorted(crowd.nested_group_members("maxres-team", max_results=-1)) == names[:3]
    assert crowd.user_groups("maxres1") == ["maxres-team"]
    assert crowd.nested_user_groups("maxres1") == ["maxres-team"]


def test_crowd_nested_groups_with_the_client(emulator):  # noqa: F811
    crowd = Crowd(url=emulator("crowd"), username="usersync", password="usersync")
    for g in ["eng", "backend", "db"]:
        crowd.group_create(g, description=g)
    crowd.user_create("dan", True, "Dan", "D", "Dan D", "dan@example.com", "pw")
    crowd.post("rest/usermanagement/1/group/user/direct", params={"groupname": "db"}, data={"name": "dan"})

    crowd.group_add_child_group("eng", "backend")
    crowd.group_add_parent_group("db", "backend")
    assert crowd.group_child_groups("eng") == ["backend"]
    assert sorted(crowd.nested_group_child_groups("eng")) == ["backend", "db"]
    assert crowd.group_parent_groups("db") == ["backend"]
    assert sorted(crowd.nested_group_parent_groups("db")) == ["backend", "eng"]
    # With `parent-groupname` Crowd answers that one group, not a list (the client's jmespath
    # then finds no `groups`), so read it with the client's generic get.
    one = crowd.get(
        "rest/usermanagement/1/group/parent-group/nested", params={"groupname": "db", "parent-groupname": "eng"}
    )
    assert one["name"] == "eng"
    assert crowd.nested_group_members("eng", max_results=-1) == ["dan"]
    assert crowd.group_members("eng") == []
    assert sorted(crowd.nested_user_groups("dan")) == ["backend", "db", "eng"]

    # Crowd's refusals, as the client sees them.
    with pytest.raises(HTTPError) as e:
        crowd.group_add_child_group("eng", "backend")
    assert e.value.response.status_code == 409
    with pytest.raises(HTTPError) as e:
        crowd.group_add_child_group("eng", "missing")
    assert e.value.response.status_code == 400

    crowd.group_remove_child_group("eng", "backend")
    assert crowd.group_child_groups("eng") == []
    assert crowd.nested_group_members("eng") == []


def test_crowd_cql_or_parentheses_and_boolean_search_with_the_client(emulator):  # noqa: F811
    crowd = Crowd(url=emulator("crowd"), username="usersync", password="usersync")
    for name, first, last, active in [
        ("jo.smith", "Jo", "Smith", True),
        ("ann.jones", "Ann", "Jones", True),
        ("bob.jones", "Bob", "Jones", False),
    ]:
        crowd.user_create(name, active, first, last, f"{first} {last}", f"{name}@example.com", "pw")

    def names(r, kind="users"):
        return sorted(u["name"] for u in r[kind])

    assert names(crowd.search_cql("user", "lastName = Smith or lastName = Jones")) == [
        "ann.jones",
        "bob.jones",
        "jo.smith",
    ]
    assert names(crowd.search_cql("user", "(lastName = Smith or lastName = Jones) and active = true")) == [
        "ann.jones",
        "jo.smith",
    ]
    with pytest.raises(HTTPError) as e:
        crowd.search_cql("user", "(lastName = Smith")
    assert e.value.response.status_code == 400

    def prop(name, value, mode="EXACTLY_MATCHES"):
        return {
            "restriction-type": "property-search-restriction",
            "property": {"name": name, "type": "STRING"},
            "match-mode": mode,
            "value": value,
        }

    body = {
        "restriction-type": "boolean-search-restriction",
        "boolean-logic": "or",
        "restrictions": [prop("lastName", "Smith"), prop("name", "bob", "STARTS_WITH")],
    }
    assert names(crowd.search("user", body)) == ["bob.jones", "jo.smith"]
    with pytest.raises(HTTPError) as e:
        crowd.search("user", {**body, "boolean-logic": "xor"})
    assert e.value.response.status_code == 400


def test_jira_include_deleted_with_the_client(emulator):  # noqa: F811
    jira = Jira(url=emulator("jira"), username="admin", password="admin")
    key = jira.user_create("leaver", "leaver@example.com", "Leaver", password="pw")["key"]
    jira.user_remove("leaver")
    with pytest.raises(HTTPError):
        jira.user("leaver")
    gone = jira.get("rest/api/2/user", params={"username": "leaver", "includeDeleted": "true"})
    assert (gone["key"], gone["deleted"], gone["active"]) == (key, True, False)


def test_bitbucket_avatar_size_with_the_client(emulator):  # noqa: F811
    bitbucket = Bitbucket(url=emulator("bitbucket"), username="admin", password="admin")
    assert "avatarUrl" not in bitbucket.get_users()["values"][0]
    page = bitbucket.get("rest/api/1.0/users", params={"avatarSize": 64})
    assert "s=64" in page["values"][0]["avatarUrl"]

"""Issue 11 item 8: Crowd `max-results=-1` means "all results", checked with the
atlassian-python-api `Crowd` client's own calls (version pinned in requirements.txt, 5.0.5).

What the client offers for `max-results`: `group_members`, `nested_group_members`,
`group_child_groups`, `nested_group_child_groups`, `search_cql` (GET /search) and `search`
(POST /search) take `max_results` and send it as `max-results` verbatim, so `-1` reaches the
server unchanged. `user_groups` and `nested_user_groups` send no `max-results` at all.

Run: python3 -m pytest tests/python/test_atlassian_fidelity.py
"""

from atlassian import Crowd

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

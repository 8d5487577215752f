"""Checks the Graph / Entra ID emulator with Microsoft's own, unmodified client libraries:
msal, azure-identity and msgraph-sdk (kiota).

Run from the repository root after `cargo build -p usersync-emulators`:

    python3 -m pytest tests/python/test_graph_emulator.py

The emulator binary is `$USERSYNC_EMULATORS_BIN` (default `target/debug/usersync-emulators`).
It is started with `--tls` because msal/azure-identity require an https authority; the
generated test CA is passed to each client explicitly.
"""

import asyncio
import datetime
import hashlib
import json
import os
import ssl
import subprocess
import urllib.request
from pathlib import Path

import httpx
import msal
import pytest
from azure.identity import ClientSecretCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph_core import GraphClientFactory
from msgraph_core.tasks.page_iterator import PageIterator

ROOT = Path(__file__).resolve().parents[2]
SCOPE = "https://graph.microsoft.com/.default"


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    binary = os.environ.get("USERSYNC_EMULATORS_BIN", str(ROOT / "target/debug/usersync-emulators"))
    ca = tmp_path_factory.mktemp("graph") / "ca.pem"
    proc = subprocess.Popen(
        [binary, "graph", "--tls", "--ca-out", str(ca), "--size", "s", "--seed", "5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    saved = {k: os.environ.get(k) for k in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    try:
        info = json.loads(proc.stdout.readline())
        # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override a session's `verify`, so
        # when those are set, trust a bundle of them plus the emulator's test CA.
        bundle = tmp_path_factory.mktemp("graph") / "bundle.pem"
        extra = "".join(Path(p).read_text() for p in set(saved.values()) if p and Path(p).is_file())
        bundle.write_text(ca.read_text() + extra)
        for k in saved:
            os.environ[k] = str(bundle)
        info["ca"] = str(bundle)
        info["ssl"] = ssl.create_default_context(cafile=str(ca))
        yield info
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.terminate()
        proc.wait(timeout=10)


def control(emu, method, path, body=None):
    """Calls the emulator's /_emulator control API."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        emu["control_url"] + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, context=emu["ssl"]) as r:
        return json.loads(r.read())


def authority(emu):
    return f"{emu['login_url']}/{emu['tenant_id']}"


def test_msal_client_secret(emu):
    app = msal.ConfidentialClientApplication(
        emu["client_id"],
        client_credential=emu["client_secret"],
        authority=authority(emu),
        instance_discovery=False,
        verify=emu["ca"],
    )
    result = app.acquire_token_for_client(scopes=[SCOPE])
    assert "access_token" in result, result
    assert result["token_type"] == "Bearer"
    assert 3000 < result["expires_in"] <= 3599

    bad = msal.ConfidentialClientApplication(
        emu["client_id"],
        client_credential="not-the-secret",
        authority=authority(emu),
        instance_discovery=False,
        verify=emu["ca"],
    )
    err = bad.acquire_token_for_client(scopes=[SCOPE])
    assert err["error"] == "invalid_client"
    assert err["error_codes"] == [7000215]
    assert err["error_description"].startswith("AADSTS7000215: ")


def test_msal_certificate(emu):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "msal test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    control(emu, "POST", f"/apps/{emu['client_id']}/certificates", {"pem": cert_pem})
    thumb = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    for credential in (
        {"private_key": key_pem, "thumbprint": thumb},
        {"private_key": key_pem, "thumbprint": thumb, "public_certificate": cert_pem},
    ):
        app = msal.ConfidentialClientApplication(
            emu["client_id"],
            client_credential=credential,
            authority=authority(emu),
            instance_discovery=False,
            verify=emu["ca"],
        )
        result = app.acquire_token_for_client(scopes=[SCOPE])
        assert "access_token" in result, result


def test_azure_identity_client_secret(emu):
    cred = ClientSecretCredential(
        emu["tenant_id"],
        emu["client_id"],
        emu["client_secret"],
        authority=emu["login_url"],
        disable_instance_discovery=True,
        connection_verify=emu["ca"],
    )
    tok = cred.get_token(SCOPE)
    assert tok.token.count(".") == 2
    assert tok.expires_on > datetime.datetime.now().timestamp() + 3000


def graph_client(emu):
    cred = ClientSecretCredential(
        emu["tenant_id"],
        emu["client_id"],
        emu["client_secret"],
        authority=emu["login_url"],
        disable_instance_discovery=True,
        connection_verify=emu["ca"],
    )
    auth = AzureIdentityAuthenticationProvider(cred, scopes=[SCOPE], allowed_hosts=["127.0.0.1"])
    http = GraphClientFactory.create_with_default_middleware(client=httpx.AsyncClient(verify=emu["ssl"]))
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = emu["graph_url"]
    return GraphServiceClient(request_adapter=adapter), adapter


def test_msgraph_sdk_paging_users_groups_members(emu):
    async def run():
        client, adapter = graph_client(emu)
        params = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
            select=["id", "displayName", "userPrincipalName", "accountEnabled"], top=250
        )
        first = await client.users.get(request_configuration=RequestConfiguration(query_parameters=params))
        assert len(first.value) == 250
        assert first.odata_next_link.startswith(emu["graph_url"] + "/users?")
        seen = []

        def collect(user):
            seen.append(user)
            return True

        await PageIterator(first, adapter).iterate(collect)
        summary = control(emu, "GET", "/summary")
        assert len(seen) == summary["users"] == 1000
        assert len({u.id for u in seen}) == 1000
        assert all(u.user_principal_name for u in seen)

        groups = await client.groups.get()
        assert len(groups.value) == 100
        biggest = max(control(emu, "GET", "/groups?limit=100")["value"], key=lambda g: g["members"])
        members = await client.groups.by_group_id(biggest["id"]).members.get()
        count = len(members.value)
        page = members
        while page.odata_next_link:
            page = await client.groups.by_group_id(biggest["id"]).members.with_url(page.odata_next_link).get()
            count += len(page.value)
        assert count == biggest["members"] > 100
        types = {type(m).__name__ for m in members.value}
        assert "User" in types

    asyncio.run(run())


def test_msgraph_sdk_delta_two_rounds(emu):
    async def run():
        client, _ = graph_client(emu)
        users = []
        page = await client.users.delta.get()
        while True:
            users.extend(page.value)
            if page.odata_next_link:
                page = await client.users.delta.with_url(page.odata_next_link).get()
            else:
                break
        delta_link = page.odata_delta_link
        assert delta_link
        assert len({u.id for u in users}) == control(emu, "GET", "/summary")["users"]

        created = control(emu, "POST", "/users", {"displayName": "Delta Round Two"})["result"]["id"]
        victim = users[0].id
        control(emu, "DELETE", f"/users/{victim}?permanent=true")

        changes = []
        page = await client.users.delta.with_url(delta_link).get()
        while True:
            changes.extend(page.value)
            if page.odata_next_link:
                page = await client.users.delta.with_url(page.odata_next_link).get()
            else:
                break
        assert page.odata_delta_link
        by_id = {u.id: u for u in changes}
        assert by_id[created].display_name == "Delta Round Two"
        removed = by_id[victim].additional_data.get("@removed")
        assert removed == {"reason": "deleted"}

        # Group delta with members@delta.
        gpage = await client.groups.delta.get()
        with_members = [g for g in gpage.value if "members@delta" in g.additional_data]
        assert with_members

    asyncio.run(run())


def test_msgraph_sdk_retries_throttled_request(emu):
    """kiota's RetryHandler must understand the emulator's 429 + Retry-After."""

    async def run():
        client, _ = graph_client(emu)
        await client.groups.get()  # warm up: token acquired, connection open
        control(emu, "POST", "/stats/reset")
        control(emu, "PUT", "/faults", {"failRequests": [{"request": 1, "status": 429}], "retryAfterSecs": 1})
        try:
            groups = await client.groups.get()
        finally:
            control(emu, "PUT", "/faults", {})
        assert len(groups.value) == 100
        counts = control(emu, "GET", "/stats")["counts"]
        assert counts["throttled"] == 1
        assert counts["groups"] == 2

    asyncio.run(run())

"""The Ignition gateway simulator: endpoints, auth, lifecycle, scans, signatures, locks, TLS."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support.ignition_sim import GatewaySimulator
from support.ignition_sim_resources import (
    project_signature,
    token_hash,
    write_api_token,
    write_collection,
    write_project,
    write_resource,
    write_security_properties,
)

API = "/data/api/v1"
SHIFTS = "projects/blue/ignition/script-python/shifts"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory holding project ``blue`` with one script resource."""
    data = tmp_path / "data"
    write_project(data, "blue")
    write_resource(data / SHIFTS, {"code.py": "def shift():\n    return 1\n"})
    return data


@pytest.fixture
def key(data_dir: Path) -> str:
    """An administrator API key stored in the data directory (external collection)."""
    return write_api_token(data_dir, "stoker")


@pytest.fixture
def sim(data_dir: Path, key: str) -> Iterator[GatewaySimulator]:
    """A running simulator over ``data_dir``."""
    with GatewaySimulator(data_dir) as running:
        yield running


def call(sim: GatewaySimulator, method: str, path: str, key: str | None, **kw: object):
    """Send one request to the simulator with the API-key header (if any)."""
    headers = {"X-Ignition-API-Token": key} if key else {}
    return requests.request(method, sim.url + path, headers=headers, timeout=10, **kw)


def wait_for(predicate, timeout: float = 5.0) -> None:
    """Poll ``predicate`` until true or fail."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


# ---------------------------------------------------------------- lifecycle of the server


def test_simulator_serves_on_a_free_loopback_port_and_refuses_connections_after_stop(
    data_dir: Path,
) -> None:
    sim = GatewaySimulator(data_dir)
    sim.start()
    url = sim.url
    assert url.startswith("http://127.0.0.1:")
    assert requests.get(url + "/StatusPing", timeout=5).status_code == 200
    sim.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("ignition-sim")]
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/StatusPing", timeout=5)


def test_simulator_refuses_to_bind_anything_but_loopback(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        GatewaySimulator(data_dir, host="0.0.0.0")


def test_as_a_server_it_logs_each_scan_as_a_json_line_and_stops_on_sigterm(
    data_dir: Path,
) -> None:
    # How the e2e image runs it (adapters/images/images.toml): tests read the container log.
    write_project(data_dir, "blue")
    tests = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "support.ignition_sim", "--data-dir", str(data_dir), "--port", "0",
         "--refuse-project", "red"],
        cwd=tests, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [json.loads(proc.stdout.readline()) for _ in range(3)]
        assert lines[0]["scan"]["trigger"] == "boot"
        assert lines[0]["scan"]["projects"] == ["blue"]
        url = lines[2]["listening"]
        assert requests.get(url + "/StatusPing", timeout=5).json() == {"state": "RUNNING"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_stop_closes_idle_keep_alive_connections_promptly(sim: GatewaySimulator) -> None:
    session = requests.Session()
    assert session.get(sim.url + "/StatusPing", timeout=5).status_code == 200
    started = time.monotonic()
    sim.stop()
    session.close()
    assert time.monotonic() - started < 3


# ---------------------------------------------------------------- unauthenticated endpoints


def test_status_ping_and_gwinfo_answer_without_a_token(sim: GatewaySimulator) -> None:
    assert call(sim, "GET", "/StatusPing", None).json() == {"state": "RUNNING"}
    gwinfo = call(sim, "GET", "/system/gwinfo", None)
    assert gwinfo.status_code == 200
    assert "ContextStatus=RUNNING;" in gwinfo.text
    assert "RedundancyStatus=Independent;" in gwinfo.text


def test_gateway_info_has_the_reference_fields_and_the_configured_redundancy_role(
    sim: GatewaySimulator, key: str
) -> None:
    sim.redundancy_role = "Backup"
    info = call(sim, "GET", f"{API}/gateway-info", key).json()
    assert info["redundancyRole"] == "Backup"
    assert info["ignitionVersion"].startswith("8.3")
    assert "version" not in info
    assert info["deploymentMode"] == ""
    assert isinstance(info["port"], str)
    assert {"mode", "validForVersion", "expirationDate", "licenseRestrictions"} <= set(
        info["license"]
    )
    assert "RedundancyStatus=Backup;" in call(sim, "GET", "/system/gwinfo", None).text


def test_gateway_name_comes_from_the_resolved_system_properties(data_dir: Path, key: str) -> None:
    props = data_dir / "config/resources/core/ignition/system-properties"
    write_resource(props, {"config.json": {"systemName": "ignition-blue"}}, kind="config")
    with GatewaySimulator(data_dir, deployment_mode="dev") as sim:
        info = call(sim, "GET", f"{API}/gateway-info", key).json()
        assert info["name"] == "ignition-blue"
        assert info["deploymentMode"] == "dev"


def test_unknown_data_route_is_a_json_404(sim: GatewaySimulator, key: str) -> None:
    answer = call(sim, "GET", f"{API}/status", key)
    assert answer.status_code == 404
    assert answer.json() == {"message": f"No route match for path: {API}/status"}


# ---------------------------------------------------------------- auth


def test_token_hash_follows_the_published_example_key() -> None:
    assert (
        token_hash("CYCSdRgW6MHYkeIXhH-BMqo1oaqfTdFi8tXvHJeCKmY")
        == "hBdc6751HoqEcvCWt97KM4cqRQrJ4XwrL7J9J_Fdv7A"
    )


@pytest.mark.parametrize(
    "presented",
    [None, "", "secret-only", "stoker:wrong-secret", "nobody:AAAA"],
    ids=["missing", "empty", "secret-only", "wrong-secret", "unknown-name"],
)
def test_missing_or_unknown_token_gets_an_html_401(
    sim: GatewaySimulator, key: str, presented: str | None
) -> None:
    answer = call(sim, "GET", f"{API}/gateway-info", presented)
    assert answer.status_code == 401
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "Error 401" in answer.text


def test_token_stored_in_the_data_directory_is_accepted(sim: GatewaySimulator, key: str) -> None:
    assert call(sim, "GET", f"{API}/gateway-info", key).status_code == 200


def test_token_without_the_required_level_gets_403(data_dir: Path) -> None:
    weak = write_api_token(data_dir, "weak", levels=["Authenticated/Roles/Operator"])
    with GatewaySimulator(data_dir) as sim:
        assert call(sim, "GET", f"{API}/gateway-info", weak).status_code == 403


def test_read_and_write_permissions_are_checked_separately(data_dir: Path) -> None:
    write_security_properties(data_dir, read=["apiKeys", "Authenticated/Roles/Administrator"])
    reader = write_api_token(data_dir, "reader", levels=["apiKeys"])
    with GatewaySimulator(data_dir) as sim:
        assert call(sim, "GET", f"{API}/gateway-info", reader).status_code == 200
        assert call(sim, "POST", f"{API}/scan/projects", reader).status_code == 403


def test_secure_channel_token_is_refused_over_plain_http(data_dir: Path) -> None:
    strict = write_api_token(data_dir, "strict", secure_channel_required=True)
    with GatewaySimulator(data_dir) as sim:
        assert call(sim, "GET", f"{API}/gateway-info", strict).status_code == 403


def test_bearer_auth_is_refused_unless_enabled(data_dir: Path, key: str) -> None:
    bearer = {"Authorization": f"Bearer {key}"}
    with GatewaySimulator(data_dir) as sim:
        assert requests.get(sim.url + f"{API}/gateway-info", headers=bearer).status_code == 401
        sim.accept_bearer = True
        assert requests.get(sim.url + f"{API}/gateway-info", headers=bearer).status_code == 200


def test_token_written_after_boot_works_only_after_a_config_scan(
    sim: GatewaySimulator, data_dir: Path, key: str
) -> None:
    late = write_api_token(data_dir, "late")
    assert call(sim, "GET", f"{API}/gateway-info", late).status_code == 401
    call(sim, "POST", f"{API}/scan/config", key)
    sim.wait_idle()
    assert call(sim, "GET", f"{API}/gateway-info", late).status_code == 200


# ---------------------------------------------------------------- lifecycle states


def test_starting_gateway_answers_503_until_told_while_gwinfo_and_status_ping_answer(
    data_dir: Path, key: str
) -> None:
    with GatewaySimulator(data_dir, starting_for=None) as sim:
        assert call(sim, "GET", f"{API}/gateway-info", key).status_code == 503
        assert call(sim, "GET", "/StatusPing", None).json() == {"state": "STARTING"}
        assert "ContextStatus=STARTING;" in call(sim, "GET", "/system/gwinfo", None).text
        assert sim.scans == []
        sim.finish_starting()
        assert call(sim, "GET", f"{API}/gateway-info", key).status_code == 200
        assert [s.trigger for s in sim.scans] == ["boot", "boot"]


def test_starting_phase_ends_by_itself_after_its_duration(data_dir: Path, key: str) -> None:
    with GatewaySimulator(data_dir, starting_for=0.3) as sim:
        assert call(sim, "GET", f"{API}/gateway-info", key).status_code == 503
        wait_for(lambda: call(sim, "GET", f"{API}/gateway-info", key).status_code == 200)


def test_restart_needs_confirm_then_goes_through_starting(sim: GatewaySimulator, key: str) -> None:
    sim.restart_seconds = 0.3
    assert call(sim, "POST", f"{API}/restart-tasks/restart", key).status_code == 400
    answer = call(sim, "POST", f"{API}/restart-tasks/restart?confirm=true", key)
    assert answer.json() is True
    assert call(sim, "GET", f"{API}/gateway-info", key).status_code == 503
    wait_for(lambda: sim.state == "RUNNING")
    assert sim.scans[-1].trigger == "boot"


def test_uncommissioned_gateway_redirects_data_routes_to_welcome(data_dir: Path, key: str) -> None:
    with GatewaySimulator(data_dir, commissioned=False) as sim:
        answer = call(sim, "GET", f"{API}/gateway-info", key, allow_redirects=False)
        assert answer.status_code == 302
        assert answer.headers["Location"] == "/welcome"
        assert "ContextStatus=NEEDS_COMMISSIONING;" in call(sim, "GET", "/system/gwinfo", None).text
        ping = call(sim, "GET", "/StatusPing", None).json()
        assert ping == {"state": "RUNNING", "details": "COMMISSIONING"}
        sim.commission()
        assert call(sim, "GET", f"{API}/gateway-info", key).status_code == 200


def test_commissioning_writes_default_security_properties_that_lock_out_api_key_levels(
    data_dir: Path,
) -> None:
    api_only = write_api_token(data_dir, "api", levels=["apiKeys"])
    (data_dir / "commissioning.json").write_text("{}")
    with GatewaySimulator(data_dir, commissioned=False) as sim:
        assert sim.state == "RUNNING"
        assert (data_dir / "config/resources/core/ignition/security-properties").is_dir()
        assert call(sim, "GET", f"{API}/gateway-info", api_only).status_code == 403


# ---------------------------------------------------------------- scans


def test_scan_post_answers_at_once_and_get_shows_when_it_finished(
    sim: GatewaySimulator, key: str
) -> None:
    before = call(sim, "GET", f"{API}/scan/projects", key).json()
    sim.scan_delay = 0.3
    posted = call(sim, "POST", f"{API}/scan/projects", key).json()
    assert set(posted) == {"scanActive", "lastScanTimestamp", "lastScanDuration"}
    assert posted["scanActive"] is True
    wait_for(lambda: not call(sim, "GET", f"{API}/scan/projects", key).json()["scanActive"])
    after = call(sim, "GET", f"{API}/scan/projects", key).json()
    assert after["lastScanTimestamp"] > before["lastScanTimestamp"]
    assert after["lastScanDuration"] >= 300


def test_synchronous_scans_finish_before_the_post_answers(data_dir: Path, key: str) -> None:
    with GatewaySimulator(data_dir, sync_scans=True) as sim:
        posted = call(sim, "POST", f"{API}/scan/config", key).json()
        assert posted["scanActive"] is False
        assert sim.scans[-1].kind == "config"
        assert sim.scans[-1].trigger == "api"


def test_disk_changes_are_seen_only_after_a_scan(
    sim: GatewaySimulator, data_dir: Path, key: str
) -> None:
    write_project(data_dir, "red")
    write_resource(data_dir / "projects/red/ignition/named-query/q", {"query.sql": "select 1"})
    assert "red" not in sim.loaded_projects()
    call(sim, "POST", f"{API}/scan/projects", key)
    sim.wait_idle()
    record = sim.scans[-1]
    assert record.projects == ("blue", "red")
    assert record.added == ("projects/red/ignition/named-query/q",)
    assert sim.resource("projects/red/ignition/named-query/q").data("query.sql") == b"select 1"


def test_scan_record_lists_changed_and_removed_resources(
    sim: GatewaySimulator, data_dir: Path
) -> None:
    (data_dir / SHIFTS / "code.py").write_text("def shift():\n    return 2\n")
    record = sim.scan("projects")
    assert record.changed == (SHIFTS,)
    for child in (data_dir / SHIFTS).iterdir():
        child.unlink()
    (data_dir / SHIFTS).rmdir()
    assert sim.scan("projects").removed == (SHIFTS,)


def test_project_scan_leaves_config_alone_and_config_scan_leaves_projects_alone(
    sim: GatewaySimulator, data_dir: Path
) -> None:
    db = data_dir / "config/resources/external/ignition/database-connection/db"
    write_resource(db, {"config.json": {"url": "x"}}, kind="config")
    assert sim.scan("projects").resources == (SHIFTS,)
    assert sim.resource("config/resources/external/ignition/database-connection/db") is None
    config = sim.scan("config")
    assert "config/resources/external/ignition/database-connection/db" in config.resources
    assert config.projects == ()


def test_refused_project_is_missing_from_the_project_list_though_the_scan_post_is_200(
    sim: GatewaySimulator, key: str
) -> None:
    sim.refused_projects.add("blue")
    assert call(sim, "POST", f"{API}/scan/projects", key).status_code == 200
    sim.wait_idle()
    listed = call(sim, "GET", f"{API}/projects/list", key).json()
    assert listed["items"] == []
    assert listed["metadata"]["total"] == 0
    assert sim.scans[-1].skip_reason("projects/blue") == "project refused to load (injected)"


def test_project_list_items_carry_project_json_fields(sim: GatewaySimulator, key: str) -> None:
    item = call(sim, "GET", f"{API}/projects/list", key).json()["items"][0]
    assert item["name"] == "blue"
    assert {"title", "description", "enabled", "parent", "inheritable"} <= set(item)
    assert call(sim, "GET", f"{API}/projects/find/blue", key).json()["name"] == "blue"
    assert call(sim, "GET", f"{API}/projects/find/nope", key).status_code == 404


def test_invalid_project_json_and_missing_listed_file_are_skipped_with_reasons(
    sim: GatewaySimulator, data_dir: Path
) -> None:
    (data_dir / "projects/broken").mkdir()
    (data_dir / "projects/broken/project.json").write_text("{not json")
    (data_dir / SHIFTS / "code.py").unlink()
    record = sim.scan("projects")
    assert record.skip_reason("projects/broken").startswith("invalid project.json")
    assert record.skip_reason(SHIFTS) == "listed file code.py is missing"


def test_files_not_listed_in_resource_json_are_ignored(
    sim: GatewaySimulator, data_dir: Path
) -> None:
    (data_dir / SHIFTS / "extra.py").write_text("ignored")
    sim.scan("projects")
    assert set(sim.resource(SHIFTS).digests) == {"code.py"}


def test_scans_write_resources_caches_in_projects_and_each_collection(
    sim: GatewaySimulator, data_dir: Path
) -> None:
    assert (data_dir / "projects/.resources").is_dir()
    assert (data_dir / "config/resources/external/.resources").is_dir()


def test_unwritable_cache_faults_the_gateway_at_boot(data_dir: Path, key: str) -> None:
    (data_dir / "projects/.resources").symlink_to(data_dir.parent)
    with GatewaySimulator(data_dir) as sim:
        assert sim.state == "FAULTED"
        assert sim.scans[0].error is not None
        assert call(sim, "GET", f"{API}/gateway-info", key).status_code == 503


# ---------------------------------------------------------------- signatures


def test_project_signature_reproduces_the_published_8_1_sample() -> None:
    style = {
        "base": {
            "style": {
                "backgroundColor": "#E0E0E0",
                "borderRadius": "0",
                "color": "#303030",
                "marginTop": "4px",
            }
        },
        "variants": [{"pseudo": "hover", "style": {"backgroundColor": "#C1C1C1"}}],
    }
    manifest = {
        "scope": "G",
        "version": 1,
        "restricted": False,
        "overridable": True,
        "files": ["style.json"],
        "attributes": {
            "lastModificationSignature": "ignored",
            "lastModification": {"actor": "admin", "timestamp": "2020-05-06T18:13:04Z"},
        },
    }
    files = {"style.json": json.dumps(style, indent=2).encode()}
    assert project_signature(manifest, files) == (
        "80f1828576b95969e9eff06c337fa652f6e71fb4aa73394f8cb8cf08812276b6"
    )


def test_unsigned_resource_is_stamped_on_disk_with_actor_external(
    sim: GatewaySimulator, data_dir: Path
) -> None:
    written = json.loads((data_dir / SHIFTS / "resource.json").read_text())
    assert written["attributes"]["lastModification"]["actor"] == "external"
    assert len(written["attributes"]["lastModificationSignature"]) == 64
    assert sim.resource(SHIFTS).actor == "external"
    assert SHIFTS in sim.scans[0].stamped


def test_validly_signed_resource_is_not_rewritten(data_dir: Path, key: str) -> None:
    write_resource(data_dir / SHIFTS, {"code.py": "x = 1\n"}, signed="valid")
    before = (data_dir / SHIFTS / "resource.json").read_bytes()
    with GatewaySimulator(data_dir) as sim:
        assert SHIFTS not in sim.scans[0].stamped
        assert sim.resource(SHIFTS).actor == "admin"
    assert (data_dir / SHIFTS / "resource.json").read_bytes() == before


def test_mismatched_signature_is_restamped_by_default(data_dir: Path, key: str) -> None:
    write_resource(data_dir / SHIFTS, {"code.py": "x = 1\n"}, signed="bogus")
    with GatewaySimulator(data_dir) as sim:
        assert sim.resource(SHIFTS) is not None
        assert sim.resource(SHIFTS).actor == "external"
        assert sim.resource(SHIFTS).signature != "0" * 64


def test_mismatched_signature_is_skipped_silently_in_that_mode(data_dir: Path, key: str) -> None:
    write_resource(data_dir / SHIFTS, {"code.py": "x = 1\n"}, signed="bogus")
    before = (data_dir / SHIFTS / "resource.json").read_bytes()
    with GatewaySimulator(data_dir, signature_mode="skip_silently") as sim:
        assert sim.resource(SHIFTS) is None
        assert sim.scans[0].skip_reason(SHIFTS) == "signature mismatch (skipped silently)"
    assert (data_dir / SHIFTS / "resource.json").read_bytes() == before


def test_stamping_can_be_turned_off(data_dir: Path, key: str) -> None:
    before = (data_dir / SHIFTS / "resource.json").read_bytes()
    with GatewaySimulator(data_dir, stamp_resources=False) as sim:
        assert sim.resource(SHIFTS) is not None
    assert (data_dir / SHIFTS / "resource.json").read_bytes() == before


def test_external_collection_is_never_written_by_the_gateway(sim: GatewaySimulator) -> None:
    token = "config/resources/external/ignition/api-token/stoker"
    assert sim.resource(token) is not None
    assert token not in sim.scans[-1].stamped


def test_same_config_resource_signs_differently_per_collection(data_dir: Path, key: str) -> None:
    for collection in ("core", "dev"):
        folder = data_dir / f"config/resources/{collection}/ignition/system-properties"
        write_resource(folder, {"config.json": {"systemName": "gw"}}, kind="config")
    with GatewaySimulator(data_dir) as sim:
        core = sim.config_resource("ignition", "system-properties", collection="core")
        dev = sim.config_resource("ignition", "system-properties", collection="dev")
        assert core.signature != dev.signature


# ---------------------------------------------------------------- symlinks


def test_symlinks_are_never_followed_out_of_the_data_directory(
    tmp_path: Path, data_dir: Path, key: str
) -> None:
    outside = tmp_path / "outside"
    write_project(outside, "evil")
    (data_dir / "projects/evil").symlink_to(outside / "projects/evil")
    (outside / "secret.txt").write_text("secret")
    leak = data_dir / "projects/blue/ignition/script-python/leak"
    leak.mkdir(parents=True)
    (leak / "code.py").symlink_to(outside / "secret.txt")
    (leak / "resource.json").write_text(json.dumps({"scope": "A", "files": ["code.py"]}))
    with GatewaySimulator(data_dir) as sim:
        record = sim.scans[0]
        assert "evil" not in sim.loaded_projects()
        assert record.skip_reason("projects/evil") == "symlink not followed"
        assert record.skip_reason("projects/blue/ignition/script-python/leak") == (
            "listed file code.py is a symlink"
        )


# ---------------------------------------------------------------- config resolution


def test_find_reports_defining_collection_all_collections_and_the_resolved_value(
    data_dir: Path, key: str
) -> None:
    write_collection(data_dir, "dev", parent="core")
    for collection, url in (("external", "e"), ("core", "c"), ("dev", "d")):
        folder = data_dir / f"config/resources/{collection}/ignition/database-connection/db"
        write_resource(folder, {"config.json": {"url": url}}, kind="config")
    with GatewaySimulator(data_dir, deployment_mode="dev") as sim:
        found = call(sim, "GET", f"{API}/resources/find/ignition/database-connection/db", key)
        body = found.json()
        assert body["collection"] == "external"
        assert body["collections"] == ["external", "core", "dev"]
        assert body["config"] == {"url": "d"}
        one = call(
            sim, "GET", f"{API}/resources/find/ignition/database-connection/db?collection=core", key
        ).json()
        assert one["config"] == {"url": "c"}
        modes = call(sim, "GET", f"{API}/mode", key).json()["items"]
        assert [m["name"] for m in modes] == ["dev"]
        assert modes[0]["resourceCount"] == 1


def test_inactive_mode_does_not_override(data_dir: Path, key: str) -> None:
    for collection, url in (("core", "c"), ("prod", "p")):
        folder = data_dir / f"config/resources/{collection}/ignition/database-connection/db"
        write_resource(folder, {"config.json": {"url": url}}, kind="config")
    with GatewaySimulator(data_dir, deployment_mode="dev") as sim:
        resolved = sim.config_resource("ignition", "database-connection", "db")
        assert resolved.json() == {"url": "c"}


# ---------------------------------------------------------------- scan locks


def test_scan_lock_is_acquired_reported_and_released_by_the_next_scan(
    sim: GatewaySimulator, key: str
) -> None:
    assert call(sim, "GET", f"{API}/scan-lock/projects", key).status_code == 204
    taken = call(sim, "POST", f"{API}/scan-lock/projects", key, json={"holdTimeout": 30})
    assert taken.status_code == 200
    assert taken.json()["actor"] == "stoker"
    assert 29 <= taken.json()["remaining"] <= 30
    held = call(sim, "GET", f"{API}/scan-lock/projects", key)
    assert held.status_code == 200
    assert set(held.json()) == {"actor", "remaining", "timestamp"}
    assert call(sim, "GET", f"{API}/scan-lock/config", key).status_code == 204
    call(sim, "POST", f"{API}/scan/projects", key)
    assert call(sim, "GET", f"{API}/scan-lock/projects", key).status_code == 204


def test_scan_lock_conflicts_time_out_and_bad_bodies(sim: GatewaySimulator, data_dir: Path) -> None:
    first = write_api_token(data_dir, "first")
    other = write_api_token(data_dir, "other")
    sim.scan("config")
    assert call(sim, "POST", f"{API}/scan-lock/config", first).status_code == 200
    assert call(sim, "POST", f"{API}/scan-lock/config", first).status_code == 409
    late = call(sim, "POST", f"{API}/scan-lock/config", other, json={"acquireTimeout": 0.2})
    assert late.status_code == 408
    bad = call(sim, "POST", f"{API}/scan-lock/projects", first, json={"holdTimeout": "x"})
    assert bad.status_code == 400


def test_scan_lock_expires_after_its_hold_timeout(sim: GatewaySimulator, key: str) -> None:
    call(sim, "POST", f"{API}/scan-lock/projects", key, json={"holdTimeout": 0.2})
    wait_for(lambda: call(sim, "GET", f"{API}/scan-lock/projects", key).status_code == 204)


def test_periodic_project_scans_are_held_off_while_the_lock_is_held(
    sim: GatewaySimulator, key: str
) -> None:
    call(sim, "POST", f"{API}/scan-lock/projects", key)
    sim.scan_frequency = 0.05
    time.sleep(0.3)
    assert [s for s in sim.scans if s.trigger == "periodic"] == []
    call(sim, "POST", f"{API}/scan/projects", key)
    wait_for(lambda: any(s.trigger == "periodic" for s in sim.scans))


# ---------------------------------------------------------------- Designer sessions


def test_designer_sessions_are_listed_looked_up_and_pruned(sim: GatewaySimulator, key: str) -> None:
    assert call(sim, "GET", f"{API}/designers", key).json()["items"] == []
    sid = sim.add_designer(user="alice", project="blue", address="10.0.0.7")
    items = call(sim, "GET", f"{API}/designers", key).json()["items"]
    assert [(i["id"], i["user"], i["project"], i["address"]) for i in items] == [
        (sid, "alice", "blue", "10.0.0.7")
    ]
    assert {"uptime", "lastcomm", "timeout", "memory", "timezone"} <= set(items[0])
    assert call(sim, "GET", f"{API}/designer/{sid}", key).json()["user"] == "alice"
    assert call(sim, "DELETE", f"{API}/designer/{sid}", key).status_code == 200
    assert call(sim, "GET", f"{API}/designer/{sid}", key).status_code == 404


def test_set_designers_replaces_all_sessions(sim: GatewaySimulator, key: str) -> None:
    sim.add_designer()
    sim.set_designers([{"id": "d1", "user": "bob"}, {"user": "carol"}])
    users = [i["user"] for i in call(sim, "GET", f"{API}/designers", key).json()["items"]]
    assert users == ["bob", "carol"]


# ---------------------------------------------------------------- fault injection


def test_injected_500_answers_the_given_number_of_times(sim: GatewaySimulator, key: str) -> None:
    sim.fail(f"{API}/scan", status=500, times=2)
    assert call(sim, "POST", f"{API}/scan/projects", key).status_code == 500
    assert call(sim, "POST", f"{API}/scan/config", key).status_code == 500
    assert call(sim, "POST", f"{API}/scan/config", key).status_code == 200


def test_injected_drop_closes_the_connection_without_an_answer(
    sim: GatewaySimulator, key: str
) -> None:
    sim.fail("/StatusPing", status="drop", times=-1)
    with pytest.raises(requests.ConnectionError):
        call(sim, "GET", "/StatusPing", None)
    sim.clear_faults()
    assert call(sim, "GET", "/StatusPing", None).status_code == 200


def test_requests_are_recorded_in_order_with_the_token_name(
    sim: GatewaySimulator, key: str
) -> None:
    call(sim, "POST", f"{API}/scan/projects", key)
    call(sim, "POST", f"{API}/scan/config", key)
    posts = [(r.path, r.status, r.token) for r in sim.requests if r.method == "POST"]
    assert posts == [(f"{API}/scan/projects", 200, "stoker"), (f"{API}/scan/config", 200, "stoker")]


# ---------------------------------------------------------------- concurrency


def test_concurrent_scans_and_reads_keep_a_consistent_record(
    sim: GatewaySimulator, data_dir: Path, key: str
) -> None:
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(10):
                assert call(sim, "POST", f"{API}/scan/projects", key).status_code == 200
                sim.scan("config")
                assert "blue" in sim.loaded_projects()
                assert all(s.kind in ("projects", "config") for s in sim.scans)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sim.wait_idle()
    assert errors == []
    assert sim.scans[-1].kind in ("projects", "config")
    assert not list(data_dir.rglob("*.sim-*"))


# ---------------------------------------------------------------- HTTPS


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "gw.crt", directory / "gw.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_path, 0o600)
    return cert_path, key_path


def test_https_with_a_self_signed_certificate_satisfies_secure_channel_tokens(
    tmp_path: Path, data_dir: Path
) -> None:
    strict = write_api_token(data_dir, "strict", secure_channel_required=True)
    cert, private = _self_signed(tmp_path)
    with GatewaySimulator(data_dir, tls=(cert, private)) as sim:
        assert sim.url.startswith("https://127.0.0.1:")
        answer = requests.get(
            sim.url + f"{API}/gateway-info",
            headers={"X-Ignition-API-Token": strict},
            verify=str(cert),
            timeout=5,
        )
        assert answer.status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(sim.url + "/StatusPing", timeout=5)

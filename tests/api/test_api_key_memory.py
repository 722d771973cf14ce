"""Two API processes' worth of apps on one database: a key revoked through one is refused by the
other on its very next request, though the other remembered it (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.fixtures.api import OpenApi


def test_when_one_app_revokes_a_key_then_the_other_refuses_it_at_once(open_api: OpenApi) -> None:
    with open_api() as serving, open_api() as administering:
        agent = serving.keys["agent"]
        headers = {"Authorization": f"Bearer {agent}"}
        for _ in range(2):  # verified, then answered from memory
            assert serving.client.get("/v1/tools", headers=headers).status_code == 200
        key_id = serving.services.api_keys.authenticate(agent).id
        revoked = administering.client.delete(
            f"/v1/admin/principals/{key_id}", headers=administering.headers("admin")
        )
        assert revoked.status_code == 204
        refused = serving.client.get("/v1/tools", headers=headers)
        assert refused.status_code == 401
        assert agent not in refused.text

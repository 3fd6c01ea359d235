"""A token's lifecycle through a client generated from latchd's OpenAPI
document by openapi-python-client (tests/generated_client.rs): every call
is the generated code's, every answer parsed into the generated models."""
import os
import sys

from latch_client import AuthenticatedClient
from latch_client.api.accounts import create as create_account
from latch_client.api.accounts import disable as disable_account
from latch_client.api.accounts import show as show_account
from latch_client.api.policy import show as show_policy
from latch_client.api.roles import list_ as list_roles
from latch_client.api.tokens import introspect, issue, revoke, rotate
from latch_client.api.tokens import list_ as list_tokens
from latch_client.api.tokens import show as show_token
from latch_client.models import (
    AccountView, CreateAccount, DisableAccount, IntrospectRequest, IntrospectResponse,
    IssueToken, IssuedToken, PolicyView, Problem, RevokeToken, RoleList, RotateToken,
    TokenList, TokenView,
)


def expect(kind, answer, what):
    if not isinstance(answer, kind):
        sys.exit(f"{what}: expected {kind.__name__}, got {answer!r}")
    return answer


admin = AuthenticatedClient(base_url=os.environ["LATCH_URL"], token=os.environ["LATCH_TOKEN"],
                            raise_on_unexpected_status=True)
with admin as client:
    roles = expect(RoleList, list_roles.sync(client=client), "roles")
    assert any(role.name == "auditor" for role in roles.roles), roles
    expect(PolicyView, show_policy.sync(client=client), "policy")

    account = expect(AccountView, create_account.sync(
        client=client, body=CreateAccount(name=os.environ.get("ACCOUNT", "generated"), role="auditor")), "create")
    issued = expect(IssuedToken, issue.sync(
        account.id, client=client, body=IssueToken(name="first", ttl="1h")), "issue")
    secret = issued.token
    assert secret.startswith("latch_"), "a Latch token"

    seen = expect(IntrospectResponse, introspect.sync(
        client=client, body=IntrospectRequest(token=secret)), "introspect")
    assert seen.active, seen

    # The holder itself, through the same generated client.
    with AuthenticatedClient(base_url=os.environ["LATCH_URL"], token=secret) as holder:
        mine = expect(AccountView, show_account.sync(account.id, client=holder), "show as holder")
        assert mine.name == account.name
        refused = expect(Problem, create_account.sync(
            client=holder, body=CreateAccount(name="escalation", role="admin")), "escalation")
        assert refused.status == 403, refused

    rotated = expect(IssuedToken, rotate.sync(
        issued.id, client=client, body=RotateToken(grace="1m")), "rotate")
    tokens = expect(TokenList, list_tokens.sync(account.id, client=client), "list")
    assert {t.id for t in tokens.tokens} >= {issued.id, rotated.id}, tokens

    revoked = expect(TokenView, revoke.sync(
        rotated.id, client=client, body=RevokeToken(reason="generated client test")), "revoke")
    assert revoked.status == "revoked", revoked
    shown = expect(TokenView, show_token.sync(rotated.id, client=client), "show")
    assert shown.status == "revoked", shown
    gone = expect(IntrospectResponse, introspect.sync(
        client=client, body=IntrospectRequest(token=rotated.token)), "introspect revoked")
    assert not gone.active, gone

    missing = expect(Problem, show_token.sync(account.id, client=client), "unknown token")
    assert missing.status == 404, missing
    expect(AccountView, disable_account.sync(
        account.id, client=client, body=DisableAccount(reason="done")), "disable")
print("lifecycle ok")

"""A fake of the Mailchimp Marketing API 3.0 (lists, members, segments, campaigns).

Run it in-process (``with FakeMailchimp() as mc: mc.base_url``) or as a process:
``python -m tests.fakes.mailchimp --port 0`` prints the port it listens on.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from tests.fakes.http import (
    FakeServer,
    Fault,
    Request,
    Response,
    cli_parser,
    machine_clock,
    run_forever,
)
from tests.fakes.spec import MailchimpSpecValidator

DEFAULT_API_KEY = "0123456789abcdef0123456789abcdef-us1"
DEFAULT_LIST_ID = "a1b2c3d4e5"
BASE_PATH = "/3.0"
ERROR_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"
PROBLEM_JSON = "application/problem+json; charset=utf-8"

# Operations the fake serves that the spec files in ../shared/specs do not describe.
UNSPECIFIED_OPERATIONS = (("get", "/ping"),)

_TITLES = {
    400: "Invalid Resource",
    401: "API Key Invalid",
    404: "Resource Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_DEFAULT_MERGE_FIELDS = (("FNAME", "First Name", "text"), ("LNAME", "Last Name", "text"))
_GONE = ("unsubscribed", "cleaned")  # statuses the product must never undo
_JOINING = ("subscribed", "pending")


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 of the lower-cased email address."""
    return hashlib.md5(email.strip().lower().encode("utf-8")).hexdigest()


class MailchimpError(Exception):
    """Raised by the handlers; becomes Mailchimp's problem+json error answer."""

    def __init__(self, status: int, detail: str, title: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title or _TITLES.get(status, "Error")
        self.detail = detail
        self.extra = extra

    def response(self) -> Response:
        body = {
            "type": ERROR_TYPE,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": str(uuid.uuid4()),
            **self.extra,
        }
        return Response(self.status, body, content_type=PROBLEM_JSON)


class FakeMailchimp(FakeServer):
    """A fake Mailchimp Marketing API 3.0 with lists, members, segments and campaigns.

    JSON bodies and query parameters are checked against the Swagger files
    (``mailchimp_lists*.yml``, ``mailchimp_campaigns.yml``); a refused request gets a 400
    and lands in :attr:`spec_violations`. Auth is HTTP Basic with any user name and
    ``api_key`` as password. At most ``max_connections`` requests are served at once; one
    more gets 429 (counted in :attr:`too_many_requests`); :attr:`max_concurrency` is the
    highest number served at once.

    Unsubscribed and cleaned members stay so when an upsert says ``status_if_new``. An
    explicit attempt to bring one back (``status`` subscribed or pending) is what the real
    API allows for members unsubscribed through the API; the fake applies it too but
    records it in :attr:`violations` (the product must never do it). Members who left by
    themselves (:meth:`unsubscribe`) and cleaned members are refused with "Member In
    Compliance State", as the real API does. Each campaign send is appended to
    :attr:`sends` with its recipients (subscribed members, of the segment if any).
    Members, segments and campaigns are stamped (``last_changed``, ``create_time``, ...) on
    ``clock``, the provider's clock (see :class:`FakeServer`).

    A member deleted permanently (``POST .../members/{hash}/actions/delete-permanent``, 204)
    is gone from the list and its segments (a GET of it is 404) and, as in the real API,
    cannot be added again ("Forgotten Email Not Subscribed"); :attr:`deleted` lists the
    deletions (list id and subscriber hash). :meth:`fail_erasures` makes them fail.
    """

    name: ClassVar[str] = "FakeMailchimp"

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        list_ids: Sequence[str] = (DEFAULT_LIST_ID,),
        max_connections: int = 10,
        port: int = 0,
        strict: bool = True,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(port=port, strict=strict, clock=clock)
        self.api_key = api_key
        self.max_connections = max_connections
        self.lists: dict[str, dict[str, Any]] = {}
        self.campaigns: dict[str, dict[str, Any]] = {}
        self.sends: list[dict[str, Any]] = []
        self.deleted: list[dict[str, Any]] = []
        self.too_many_requests = 0
        self.max_concurrency = 0
        self._in_flight = 0
        self._gate = threading.Lock()
        self._ids = itertools.count(1)
        self._validator = MailchimpSpecValidator(UNSPECIFIED_OPERATIONS)
        self._routes: dict[tuple[str, str], Callable[[Request, dict[str, str]], Response]] = {
            ("get", "/ping"): self._ping,
            ("get", "/lists/{list_id}"): self._get_list,
            ("post", "/lists/{list_id}"): self._batch_members,
            ("get", "/lists/{list_id}/merge-fields"): self._get_merge_fields,
            ("post", "/lists/{list_id}/merge-fields"): self._add_merge_field,
            ("post", "/lists/{list_id}/members"): self._add_member,
            ("get", "/lists/{list_id}/members/{subscriber_hash}"): self._get_member,
            ("put", "/lists/{list_id}/members/{subscriber_hash}"): self._put_member,
            ("patch", "/lists/{list_id}/members/{subscriber_hash}"): self._patch_member,
            ("post", "/lists/{list_id}/members/{subscriber_hash}/tags"): self._member_tags,
            (
                "post",
                "/lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent",
            ): self._delete_member_permanent,
            ("post", "/lists/{list_id}/segments"): self._create_segment,
            ("get", "/lists/{list_id}/segments/{segment_id}"): self._get_segment,
            ("post", "/lists/{list_id}/segments/{segment_id}"): self._segment_members_batch,
            ("get", "/lists/{list_id}/segments/{segment_id}/members"): self._segment_members,
            ("post", "/campaigns"): self._create_campaign,
            ("get", "/campaigns/{campaign_id}"): self._get_campaign,
            ("put", "/campaigns/{campaign_id}/content"): self._set_content,
            ("post", "/campaigns/{campaign_id}/actions/send"): self._send_campaign,
        }
        for list_id in list_ids:
            self.add_list(list_id)

    # -- test API -------------------------------------------------------------------

    def add_list(self, list_id: str | None = None, name: str = "Fake audience") -> str:
        list_id = list_id or uuid.uuid4().hex[:10]
        with self.lock:
            self.lists[list_id] = {
                "id": list_id,
                "name": name,
                "members": {},
                "segments": {},
                "forgotten": set(),  # subscriber hashes deleted permanently
                "merge_fields": [
                    {"merge_id": i, "tag": tag, "name": label, "type": kind, "list_id": list_id}
                    for i, (tag, label, kind) in enumerate(_DEFAULT_MERGE_FIELDS, start=1)
                ],
            }
        return list_id

    def add_member(
        self,
        email: str,
        status: str = "subscribed",
        list_id: str = DEFAULT_LIST_ID,
        merge_fields: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Put a member on a list directly (no request, no checks)."""
        with self.lock:
            member = self._new_member(self._list(list_id), email, status, merge_fields or {})
            return dict(member)

    def unsubscribe(self, email: str, list_id: str = DEFAULT_LIST_ID) -> None:
        """The member clicked "unsubscribe": the real API then refuses to resubscribe them."""
        with self.lock:
            member = self._member(self._list(list_id), subscriber_hash(email))
            member.update(status="unsubscribed", compliance_state=True, last_changed=self._stamp())

    def clean(self, email: str, list_id: str = DEFAULT_LIST_ID) -> None:
        """The address bounced hard."""
        with self.lock:
            member = self._member(self._list(list_id), subscriber_hash(email))
            member.update(status="cleaned", last_changed=self._stamp())

    def member(self, email: str, list_id: str = DEFAULT_LIST_ID) -> dict[str, Any] | None:
        with self.lock:
            found = self._list(list_id)["members"].get(subscriber_hash(email))
            return dict(found) if found else None

    def status_of(self, email: str, list_id: str = DEFAULT_LIST_ID) -> str | None:
        found = self.member(email, list_id)
        return found["status"] if found else None

    def forgotten(self, email: str, list_id: str = DEFAULT_LIST_ID) -> bool:
        """Whether the member was deleted permanently from the list."""
        with self.lock:
            return subscriber_hash(email) in self._list(list_id)["forgotten"]

    def fail_erasures(self, n: int | None = 1, status: int = 503) -> Fault:
        """Answer ``status`` to the next ``n`` permanent deletions (``None``: until cleared)."""
        return self.fail_next(n, status, method="POST", path="/actions/delete-permanent")

    def recipients(self, campaign_id: str) -> list[str]:
        """Who received campaign ``campaign_id`` (over all its sends)."""
        with self.lock:
            return [
                e for s in self.sends if s["campaign_id"] == campaign_id for e in s["recipients"]
            ]

    def deliveries_by_email(self) -> collections.Counter[str]:
        """How many campaign emails each address received (all campaigns)."""
        with self.lock:
            return collections.Counter(e for s in self.sends for e in s["recipients"])

    def reset(self) -> None:
        super().reset()
        with self.lock:
            for mc_list in self.lists.values():
                mc_list["members"].clear()
                mc_list["segments"].clear()
                mc_list["forgotten"].clear()
            self.campaigns.clear()
            self.sends.clear()
            self.deleted.clear()
            self.too_many_requests = 0
            self.max_concurrency = 0

    def state(self) -> dict[str, Any]:
        state = super().state()
        with self.lock:
            state.update(
                lists={
                    list_id: {
                        "members": {
                            m["email_address"]: m["status"] for m in lst["members"].values()
                        },
                        "segments": {
                            str(sid): sorted(seg["members"]) for sid, seg in lst["segments"].items()
                        },
                        "forgotten": sorted(lst["forgotten"]),
                    }
                    for list_id, lst in self.lists.items()
                },
                campaigns={cid: self._campaign_view(c) for cid, c in self.campaigns.items()},
                sends=[dict(s, recipients=list(s["recipients"])) for s in self.sends],
                deleted=[dict(d) for d in self.deleted],
                too_many_requests=self.too_many_requests,
                max_concurrency=self.max_concurrency,
            )
        return state

    def admin_actions(self) -> dict[str, Callable[..., Any]]:
        return {
            **super().admin_actions(),
            "add_list": self.add_list,
            "add_member": self.add_member,
            "unsubscribe": self.unsubscribe,
            "clean": self.clean,
            "fail_erasures": lambda **kw: self.fail_erasures(**kw).as_dict(),
        }

    # -- HTTP -----------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        with self._gate:
            if self._in_flight >= self.max_connections:
                self.too_many_requests += 1
                admitted = False
            else:
                self._in_flight += 1
                self.max_concurrency = max(self.max_concurrency, self._in_flight)
                admitted = True
        if not admitted:
            return MailchimpError(
                429,
                f"You have exceeded the limit of {self.max_connections} simultaneous connections.",
            ).response()
        try:
            return self._handle(request)
        except MailchimpError as error:
            return error.response()
        finally:
            with self._gate:
                self._in_flight -= 1

    def _handle(self, request: Request) -> Response:
        auth = request.basic_auth()
        if auth is None or auth[1] != self.api_key:
            raise MailchimpError(
                401,
                "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            )
        path = (
            request.path.removeprefix(BASE_PATH) if request.path.startswith(BASE_PATH + "/") else ""
        )
        operation, params, path_known = self._validator.find(request.method, path)
        if operation is None:
            problem = "method not allowed on" if path_known else "no such path in the spec:"
            self.record_spec_violation(request, [f"{problem} {request.method} {request.path}"])
            raise MailchimpError(405 if path_known else 404, f"{problem} {request.path}")
        errors = operation.query_errors(request.query) + operation.body_errors(request.body)
        if errors:
            self.record_spec_violation(request, errors)
            raise MailchimpError(
                400,
                "The resource submitted could not be validated. "
                "For field-specific details, see the 'errors' array.",
                errors=[{"field": "", "message": e} for e in errors],
            )
        fault = self.apply_faults(request, target=self._fault_target(request))
        if fault is not None:
            return self._fault_response(fault)
        route = self._routes.get((operation.method, operation.template))
        if route is None:
            raise MailchimpError(501, f"{self.name} does not implement {operation.template}")
        with self.lock:
            return route(request, params)

    @staticmethod
    def _fault_target(request: Request) -> str | None:
        try:
            body = request.json()
        except ValueError:
            return None
        return body.get("email_address") if isinstance(body, dict) else None

    @staticmethod
    def _fault_response(fault: Fault) -> Response:
        if fault.kind == "drop":
            return Response.dropped()
        status = fault.status if fault.kind == "status" else 500
        detail = "An unexpected internal error has occurred (injected by the fake)."
        return MailchimpError(status, detail).response()

    # -- state helpers (called with self.lock held) -----------------------------------

    def _stamp(self) -> str:
        """Now on the provider's clock, as Mailchimp writes it: ``2026-11-24T09:00:00+00:00``."""
        return self.clock().astimezone(UTC).replace(microsecond=0).isoformat()

    def _list(self, list_id: str) -> dict[str, Any]:
        found = self.lists.get(list_id)
        if found is None:
            raise MailchimpError(404, "The requested resource could not be found.")
        return found

    @staticmethod
    def _member(mc_list: dict[str, Any], hash_or_email: str) -> dict[str, Any]:
        key = subscriber_hash(hash_or_email) if "@" in hash_or_email else hash_or_email.lower()
        found: dict[str, Any] | None = mc_list["members"].get(key)
        if found is None:
            raise MailchimpError(404, "The requested resource could not be found.")
        return found

    def _new_member(
        self, mc_list: dict[str, Any], email: str, status: str, merge_fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        if "@" not in email:
            raise MailchimpError(
                400, f"{email} looks fake or invalid, please enter a real email address."
            )
        member_id = subscriber_hash(email)
        if member_id in mc_list["forgotten"]:
            raise MailchimpError(
                400,
                f"{email} was permanently deleted and cannot be re-imported. "
                "The contact must re-subscribe to get back on the list.",
                title="Forgotten Email Not Subscribed",
            )
        now = self._stamp()
        member = {
            "id": member_id,
            "email_address": email.strip(),
            "unique_email_id": member_id[:10],
            "contact_id": member_id,
            "email_type": "html",
            "status": status,
            "merge_fields": {f["tag"]: "" for f in mc_list["merge_fields"]} | dict(merge_fields),
            "tags": [],
            "list_id": mc_list["id"],
            "timestamp_signup": now,
            "last_changed": now,
            "compliance_state": False,
        }
        mc_list["members"][member_id] = member
        return member

    def _change_status(self, member: dict[str, Any], status: str, via: str) -> None:
        old = member["status"]
        if status == old:
            return
        if old in _GONE and status in _JOINING:
            self.record_violation(
                "resubscribe", email=member["email_address"], old=old, new=status, via=via
            )
            if member["compliance_state"] or old == "cleaned":
                raise MailchimpError(
                    400,
                    f"{member['email_address']} is in a compliance state due to unsubscribe, "
                    "bounce, or compliance review and cannot be subscribed.",
                    title="Member In Compliance State",
                )
        member["status"] = status
        member["last_changed"] = self._stamp()

    def _update_member(self, member: dict[str, Any], body: Mapping[str, Any], via: str) -> None:
        if "status" in body:
            self._change_status(member, body["status"], via)
        if "merge_fields" in body:
            member["merge_fields"] = member["merge_fields"] | body["merge_fields"]
        for key in ("email_type", "language", "vip"):
            if key in body:
                member[key] = body[key]

    @staticmethod
    def _member_view(member: Mapping[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in member.items() if k != "compliance_state"}
        view["tags_count"] = len(member["tags"])
        return view

    # -- handlers (called with self.lock held) --------------------------------------

    def _ping(self, request: Request, params: dict[str, str]) -> Response:
        return Response(200, {"health_status": "Everything's Chimpy!"})

    def _get_list(self, request: Request, params: dict[str, str]) -> Response:
        mc_list = self._list(params["list_id"])
        statuses = collections.Counter(m["status"] for m in mc_list["members"].values())
        return Response(
            200,
            {
                "id": mc_list["id"],
                "name": mc_list["name"],
                "stats": {
                    "member_count": statuses["subscribed"],
                    "unsubscribe_count": statuses["unsubscribed"],
                    "cleaned_count": statuses["cleaned"],
                },
            },
        )

    def _get_merge_fields(self, request: Request, params: dict[str, str]) -> Response:
        fields = self._list(params["list_id"])["merge_fields"]
        return Response(
            200,
            {
                "merge_fields": [dict(f) for f in fields],
                "list_id": params["list_id"],
                "total_items": len(fields),
            },
        )

    def _add_merge_field(self, request: Request, params: dict[str, str]) -> Response:
        mc_list = self._list(params["list_id"])
        body = request.json()
        tag = (body.get("tag") or body["name"].replace(" ", "")[:10]).upper()
        if any(f["tag"] == tag for f in mc_list["merge_fields"]):
            raise MailchimpError(
                400, f'A Merge Field with the tag "{tag}" already exists for this list.'
            )
        field = {
            "merge_id": len(mc_list["merge_fields"]) + 1,
            "tag": tag,
            "name": body["name"],
            "type": body["type"],
            "required": body.get("required", False),
            "default_value": body.get("default_value", ""),
            "list_id": mc_list["id"],
        }
        mc_list["merge_fields"].append(field)
        for member in mc_list["members"].values():
            member["merge_fields"].setdefault(tag, "")
        return Response(200, dict(field))

    def _add_member(self, request: Request, params: dict[str, str]) -> Response:
        mc_list = self._list(params["list_id"])
        body = request.json()
        email = body["email_address"]
        if subscriber_hash(email) in mc_list["members"]:
            raise MailchimpError(
                400,
                f"{email} is already a list member. Use PUT to insert or update list members.",
                title="Member Exists",
            )
        member = self._new_member(mc_list, email, body["status"], body.get("merge_fields", {}))
        return Response(200, self._member_view(member))

    def _get_member(self, request: Request, params: dict[str, str]) -> Response:
        member = self._member(self._list(params["list_id"]), params["subscriber_hash"])
        return Response(200, self._member_view(member))

    def _put_member(self, request: Request, params: dict[str, str]) -> Response:
        mc_list = self._list(params["list_id"])
        body = request.json()
        email = body["email_address"]
        given = params["subscriber_hash"]
        if (subscriber_hash(given) if "@" in given else given.lower()) != subscriber_hash(email):
            self.record_violation("hash_mismatch", email=email, subscriber_hash=given)
            raise MailchimpError(400, f"The subscriber hash {given} does not match {email}.")
        member = mc_list["members"].get(subscriber_hash(email))
        if member is None:
            status = body.get("status") or body["status_if_new"]
            member = self._new_member(mc_list, email, status, body.get("merge_fields", {}))
        else:
            self._update_member(member, body, via="PUT member")
        return Response(200, self._member_view(member))

    def _patch_member(self, request: Request, params: dict[str, str]) -> Response:
        member = self._member(self._list(params["list_id"]), params["subscriber_hash"])
        self._update_member(member, request.json(), via="PATCH member")
        return Response(200, self._member_view(member))

    def _member_tags(self, request: Request, params: dict[str, str]) -> Response:
        member = self._member(self._list(params["list_id"]), params["subscriber_hash"])
        names = {t["name"] for t in member["tags"]}
        for tag in request.json()["tags"]:
            if tag["status"] == "active":
                names.add(tag["name"])
            else:
                names.discard(tag["name"])
        member["tags"] = [{"id": i, "name": n} for i, n in enumerate(sorted(names), start=1)]
        return Response(204)

    def _delete_member_permanent(self, request: Request, params: dict[str, str]) -> Response:
        mc_list = self._list(params["list_id"])
        member = self._member(mc_list, params["subscriber_hash"])
        del mc_list["members"][member["id"]]
        for segment in mc_list["segments"].values():
            segment["members"].discard(member["id"])
        mc_list["forgotten"].add(member["id"])
        self.deleted.append(
            {"seq": request.entry["seq"], "list_id": mc_list["id"], "subscriber_hash": member["id"]}
        )
        return Response(204)

    def _batch_members(self, request: Request, params: dict[str, str]) -> Response:
        mc_list = self._list(params["list_id"])
        body = request.json()
        update_existing = bool(body.get("update_existing", False))
        created: list[dict[str, Any]] = []
        updated: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for item in body["members"]:
            email = item.get("email_address", "")
            existing = mc_list["members"].get(subscriber_hash(email)) if email else None
            try:
                if existing is None:
                    if not email or "status" not in item:
                        raise MailchimpError(400, "email_address and status are required.")
                    member = self._new_member(
                        mc_list, email, item["status"], item.get("merge_fields", {})
                    )
                    created.append(self._member_view(member))
                elif update_existing:
                    self._update_member(existing, item, via="batch update_existing")
                    updated.append(self._member_view(existing))
                else:
                    errors.append(
                        {
                            "email_address": email,
                            "error": f"{email} is already a list member, do you want to update? "
                            "please provide update_existing:true in the request body",
                            "error_code": "ERROR_CONTACT_EXISTS",
                        }
                    )
            except MailchimpError as error:
                errors.append(
                    {"email_address": email, "error": error.detail, "error_code": "ERROR_GENERIC"}
                )
        return Response(
            200,
            {
                "new_members": created,
                "updated_members": updated,
                "errors": errors,
                "total_created": len(created),
                "total_updated": len(updated),
                "error_count": len(errors),
            },
        )

    def _segment(self, params: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
        mc_list = self._list(params["list_id"])
        segment = mc_list["segments"].get(params["segment_id"])
        if segment is None:
            raise MailchimpError(404, "The requested resource could not be found.")
        return mc_list, segment

    @staticmethod
    def _segment_view(mc_list: dict[str, Any], segment: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": int(segment["id"]),
            "name": segment["name"],
            "member_count": len(segment["members"]),
            "type": "static",
            "list_id": mc_list["id"],
            "created_at": segment["created_at"],
            "updated_at": segment["updated_at"],
        }

    def _create_segment(self, request: Request, params: dict[str, str]) -> Response:
        mc_list = self._list(params["list_id"])
        body = request.json()
        if "static_segment" not in body:
            raise MailchimpError(501, f"{self.name} only implements static segments")
        segment_id = str(next(self._ids))
        members = {
            subscriber_hash(e)
            for e in body["static_segment"]
            if subscriber_hash(e) in mc_list["members"]
        }
        now = self._stamp()
        segment = {
            "id": segment_id,
            "name": body["name"],
            "members": members,
            "created_at": now,
            "updated_at": now,
        }
        mc_list["segments"][segment_id] = segment
        return Response(200, self._segment_view(mc_list, segment))

    def _get_segment(self, request: Request, params: dict[str, str]) -> Response:
        mc_list, segment = self._segment(params)
        return Response(200, self._segment_view(mc_list, segment))

    def _segment_members_batch(self, request: Request, params: dict[str, str]) -> Response:
        mc_list, segment = self._segment(params)
        body = request.json()
        result: dict[str, list[Any]] = {"members_added": [], "members_removed": [], "errors": []}
        for key, out in (
            ("members_to_add", "members_added"),
            ("members_to_remove", "members_removed"),
        ):
            missing = []
            for email in body.get(key, []):
                member = mc_list["members"].get(subscriber_hash(email))
                if member is None:
                    missing.append(email)
                    continue
                if key == "members_to_add":
                    segment["members"].add(member["id"])
                else:
                    segment["members"].discard(member["id"])
                result[out].append(self._member_view(member))
            if missing:
                result["errors"].append(
                    {
                        "email_addresses": missing,
                        "error": "Email addresses do not belong to this list",
                    }
                )
        segment["updated_at"] = self._stamp()
        return Response(
            200,
            {
                **result,
                "total_added": len(result["members_added"]),
                "total_removed": len(result["members_removed"]),
                "error_count": sum(len(e["email_addresses"]) for e in result["errors"]),
            },
        )

    def _segment_members(self, request: Request, params: dict[str, str]) -> Response:
        mc_list, segment = self._segment(params)
        count = int(request.query.get("count", ["10"])[-1])
        offset = int(request.query.get("offset", ["0"])[-1])
        members = sorted(
            (mc_list["members"][h] for h in segment["members"]), key=lambda m: m["email_address"]
        )
        page = members[offset : offset + count]
        return Response(
            200,
            {"members": [self._member_view(m) for m in page], "total_items": len(members)},
        )

    def _create_campaign(self, request: Request, params: dict[str, str]) -> Response:
        body = request.json()
        recipients = body.get("recipients") or {}
        if recipients:
            mc_list = self._list(recipients["list_id"])
            segment_id = (recipients.get("segment_opts") or {}).get("saved_segment_id")
            if segment_id is not None and str(segment_id) not in mc_list["segments"]:
                raise MailchimpError(400, f"Segment {segment_id} does not exist on this list.")
            opts = recipients.get("segment_opts") or {}
            if set(opts) - {"saved_segment_id"}:
                raise MailchimpError(
                    501, f"{self.name} only implements saved_segment_id segmentation"
                )
        campaign_id = uuid.uuid4().hex[:10]
        campaign = {
            "id": campaign_id,
            "web_id": next(self._ids),
            "type": body["type"],
            "create_time": self._stamp(),
            "status": "save",
            "emails_sent": 0,
            "send_time": "",
            "content_type": "template",
            "recipients": recipients,
            "settings": body.get("settings") or {},
            "content": None,
        }
        self.campaigns[campaign_id] = campaign
        return Response(200, self._campaign_view(campaign))

    @staticmethod
    def _campaign_view(campaign: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in campaign.items() if k != "content"}

    def _campaign(self, campaign_id: str) -> dict[str, Any]:
        found = self.campaigns.get(campaign_id)
        if found is None:
            raise MailchimpError(404, "The requested resource could not be found.")
        return found

    def _get_campaign(self, request: Request, params: dict[str, str]) -> Response:
        return Response(200, self._campaign_view(self._campaign(params["campaign_id"])))

    def _set_content(self, request: Request, params: dict[str, str]) -> Response:
        campaign = self._campaign(params["campaign_id"])
        body = request.json()
        content = {"html": body.get("html", ""), "plain_text": body.get("plain_text", "")}
        if "template" in body:
            content["template"] = body["template"]
        campaign["content"] = content
        return Response(200, dict(content))

    def _send_campaign(self, request: Request, params: dict[str, str]) -> Response:
        campaign = self._campaign(params["campaign_id"])
        settings = campaign["settings"]
        ready = (
            campaign["status"] in ("save", "paused")
            and campaign["content"]
            and campaign["recipients"].get("list_id")
            and all(settings.get(k) for k in ("subject_line", "from_name", "reply_to"))
        )
        if not ready:
            raise MailchimpError(400, "Your Campaign is not ready to send.", title="Bad Request")
        mc_list = self._list(campaign["recipients"]["list_id"])
        segment_id = (campaign["recipients"].get("segment_opts") or {}).get("saved_segment_id")
        allowed: Iterable[str] = mc_list["members"]
        if segment_id is not None:
            allowed = mc_list["segments"][str(segment_id)]["members"]
        recipients = sorted(
            mc_list["members"][h]["email_address"]
            for h in allowed
            if mc_list["members"][h]["status"] == "subscribed"
        )
        entry = request.entry
        self.sends.append(
            {
                "seq": entry["seq"],
                "campaign_id": campaign["id"],
                "list_id": mc_list["id"],
                "segment_id": segment_id,
                "recipients": recipients,
                "t_monotonic": entry["t_monotonic"],
                "t_wall": entry["t_wall"],
            }
        )
        campaign.update(status="sent", emails_sent=len(recipients), send_time=self._stamp())
        return Response(204)


def main(argv: Sequence[str] | None = None) -> None:
    parser = cli_parser(FakeMailchimp.name)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--list-id", action="append", default=None, metavar="LIST_ID")
    parser.add_argument("--max-connections", type=int, default=10)
    args = parser.parse_args(argv)
    run_forever(
        FakeMailchimp(
            api_key=args.api_key,
            list_ids=args.list_id or (DEFAULT_LIST_ID,),
            max_connections=args.max_connections,
            port=args.port,
            clock=machine_clock,
        )
    )


if __name__ == "__main__":
    main()

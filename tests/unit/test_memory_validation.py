"""Memory request validation: what is refused, and that the message says why and how to fix it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from concierge.memory import validation
from concierge.memory.validation import InvalidArgument
from concierge.v1 import common_pb2, memory_pb2

SESSION = str(uuid.uuid4())


def request(**change: object) -> memory_pb2.AppendMessageRequest:
    r = memory_pb2.AppendMessageRequest(
        tenant="acme", session_id=SESSION, role=memory_pb2.ROLE_USER, text="Where is my order?", client_message_id="c1"
    )
    for key, value in change.items():
        if key == "citations":
            r.citations.extend(value)  # type: ignore[call-overload]  # repeated fields cannot be assigned
        else:
            setattr(r, key, value)
    return r


def test_valid_append_is_normalised() -> None:
    new = validation.append_message(
        request(citations=[common_pb2.Citation(index=1, chunk_id="k", score=0.5)]), max_chars=100
    )
    assert new.role == "user"
    assert new.session_id == uuid.UUID(SESSION)
    assert new.reply_to is None
    assert new.citations == [{"index": 1, "chunk_id": "k", "score": 0.5}]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"text": ""}, "text is empty: a message needs at least one non-whitespace character"),
        ({"text": " \n\t"}, "text is empty"),
        ({"text": "x" * 101}, "text is 101 characters long; the limit is 100 characters"),
        ({"client_message_id": ""}, "client_message_id is required"),
        ({"client_message_id": "x" * 201}, "client_message_id is 201 characters long; the limit is 200"),
        ({"session_id": ""}, "session_id is required"),
        ({"session_id": "1234"}, "session_id '1234' is not a valid UUID"),
        ({"reply_to": "nope"}, "reply_to 'nope' is not a valid UUID"),
        (
            {"role": memory_pb2.ROLE_UNSPECIFIED},
            "role 0 is not allowed: set ROLE_USER, ROLE_ASSISTANT, ROLE_SYSTEM or ROLE_HUMAN",
        ),
        ({"tenant": ""}, "tenant is required"),
        ({"tenant": "Acme_Corp"}, "tenant 'Acme_Corp' is not a valid namespace name"),
        ({"citations": [common_pb2.Citation(index=0)]}, "citations[0].index is 0"),
    ],
)
def test_invalid_append_names_the_field_and_the_fix(change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validation.append_message(request(**change), max_chars=100)
    assert message in str(caught.value)


def test_text_exactly_at_the_limit_is_accepted() -> None:
    assert validation.append_message(request(text="x" * 100), max_chars=100).text == "x" * 100


def test_page_size_defaults_to_fifty_and_is_capped_at_two_hundred() -> None:
    def page(limit: int) -> int:
        r = memory_pb2.ListMessagesRequest(tenant="acme", session_id=SESSION, limit=limit)
        return validation.list_messages(r).limit

    assert page(0) == 50
    assert page(7) == 7
    assert page(5000) == 200


def test_negative_paging_values_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="after_seq is -1"):
        validation.list_messages(memory_pb2.ListMessagesRequest(tenant="acme", session_id=SESSION, after_seq=-1))
    with pytest.raises(InvalidArgument, match="limit is -5"):
        validation.list_messages(memory_pb2.ListMessagesRequest(tenant="acme", session_id=SESSION, limit=-5))


def test_create_session_needs_a_valid_agent_name() -> None:
    with pytest.raises(InvalidArgument, match="agent is required"):
        validation.agent("")
    with pytest.raises(InvalidArgument, match="not a valid SupportAgent name"):
        validation.agent("Acme Support")


# New fields and requests -------------------------------------------------------------------------


def test_customer_id_may_be_empty_but_not_too_long_or_unprintable() -> None:
    def create(customer_id: str) -> validation.NewSession:
        return validation.create_session(
            memory_pb2.CreateSessionRequest(tenant="acme", agent="acme-support", customer_id=customer_id)
        )

    assert create("").customer_id == ""
    assert create("crm:0042 Jane").customer_id == "crm:0042 Jane"
    assert create("x" * 200).customer_id == "x" * 200
    with pytest.raises(InvalidArgument, match=r"customer_id 'xxx.*is 201 characters long; the limit is 200"):
        create("x" * 201)
    with pytest.raises(InvalidArgument, match=r"customer_id 'a\\nb' contains control or separator characters"):
        create("a\nb")


def test_human_message_needs_an_author_and_others_must_not_have_one() -> None:
    human = validation.append_message(request(role=memory_pb2.ROLE_HUMAN, author="Ana"), max_chars=100)
    assert (human.role, human.author) == ("human", "Ana")
    with pytest.raises(InvalidArgument, match="author is required for ROLE_HUMAN"):
        validation.append_message(request(role=memory_pb2.ROLE_HUMAN), max_chars=100)
    with pytest.raises(InvalidArgument, match=r"author 'xxx.*is 101 characters long; the limit is 100"):
        validation.append_message(request(role=memory_pb2.ROLE_HUMAN, author="x" * 101), max_chars=100)
    with pytest.raises(InvalidArgument, match="author '   ' is not a display name"):
        validation.append_message(request(role=memory_pb2.ROLE_HUMAN, author="   "), max_chars=100)
    with pytest.raises(
        InvalidArgument, match="author 'Ana' is only kept for ROLE_HUMAN messages; leave it empty for ROLE_USER"
    ):
        validation.append_message(request(author="Ana"), max_chars=100)


@pytest.mark.parametrize("value", [-1.0, 0.0, 0.42, 1.0])
def test_assistant_confidence_between_minus_one_and_one_is_kept(value: float) -> None:
    new = validation.append_message(request(role=memory_pb2.ROLE_ASSISTANT, confidence=value), max_chars=100)
    assert new.confidence == pytest.approx(value)


def test_confidence_is_optional_and_refused_outside_its_range_or_role() -> None:
    assert validation.append_message(request(role=memory_pb2.ROLE_ASSISTANT), max_chars=100).confidence is None
    for bad in (1.5, -1.01, float("nan")):
        with pytest.raises(InvalidArgument, match="it must be a similarity between -1 and 1"):
            validation.append_message(request(role=memory_pb2.ROLE_ASSISTANT, confidence=bad), max_chars=100)
    with pytest.raises(InvalidArgument, match=r"confidence is only kept for ROLE_ASSISTANT messages.*ROLE_USER"):
        validation.append_message(request(confidence=0.5), max_chars=100)


def test_newest_is_capped_and_overrides_paging() -> None:
    def page(**fields: int) -> validation.Page:
        return validation.list_messages(memory_pb2.ListMessagesRequest(tenant="acme", session_id=SESSION, **fields))

    assert page(newest=10, after_seq=-3, limit=-1).newest == 10  # paging fields are ignored, not checked
    assert page(newest=5000).newest == 200
    assert page().newest == 0
    with pytest.raises(InvalidArgument, match="newest is -2; use 1 to 200"):
        page(newest=-2)


def test_summary_has_a_length_limit_and_a_non_negative_through_seq() -> None:
    def update(summary: str, through_seq: int) -> validation.SummaryUpdate:
        return validation.update_summary(
            memory_pb2.UpdateSummaryRequest(tenant="acme", session_id=SESSION, summary=summary, through_seq=through_seq)
        )

    assert update("x" * 20_000, 3).summary == "x" * 20_000
    with pytest.raises(InvalidArgument, match="summary is 20001 characters long; the limit is 20000"):
        update("x" * 20_001, 3)
    with pytest.raises(InvalidArgument, match="through_seq is -1"):
        update("fine", -1)


def status_request(**fields: object) -> memory_pb2.SetSessionStatusRequest:
    return memory_pb2.SetSessionStatusRequest(tenant="acme", session_id=SESSION, **fields)  # type: ignore[arg-type]


def test_status_change_is_normalised() -> None:
    change = validation.set_session_status(
        status_request(
            status=memory_pb2.SESSION_STATUS_HUMAN,
            handler="Ana",
            expect=[memory_pb2.SESSION_STATUS_ESCALATED, memory_pb2.SESSION_STATUS_ESCALATED],
        )
    )
    assert (change.status, change.handler, change.expect) == ("human", "Ana", ("escalated",))
    escalate = validation.set_session_status(status_request(status=memory_pb2.SESSION_STATUS_ESCALATED, reason="r"))
    assert (escalate.status, escalate.reason, escalate.expect) == ("escalated", "r", ())


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "status 0 is not allowed: set SESSION_STATUS_BOT, SESSION_STATUS_ESCALATED or SESSION_STATUS_HUMAN"),
        ({"status": memory_pb2.SESSION_STATUS_HUMAN}, "handler is required for SESSION_STATUS_HUMAN"),
        ({"status": memory_pb2.SESSION_STATUS_HUMAN, "handler": "x" * 101}, "is 101 characters long; the limit is 100"),
        (
            {"status": memory_pb2.SESSION_STATUS_ESCALATED, "handler": "Ana"},
            "handler 'Ana' is only kept with SESSION_STATUS_HUMAN; leave it empty for SESSION_STATUS_ESCALATED",
        ),
        (
            {"status": memory_pb2.SESSION_STATUS_BOT, "reason": "done"},
            "reason is only kept while a session is escalated",
        ),
        ({"status": memory_pb2.SESSION_STATUS_ESCALATED, "reason": "r" * 1001}, "reason is 1001 characters long"),
        (
            {"status": memory_pb2.SESSION_STATUS_BOT, "expect": [0]},
            "expect[0] is 0, which is not one of SESSION_STATUS_BOT, SESSION_STATUS_ESCALATED, SESSION_STATUS_HUMAN",
        ),
    ],
)
def test_invalid_status_change_names_the_field_and_the_fix(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validation.set_session_status(status_request(**fields))
    assert message in str(caught.value)


def test_session_listing_filters_and_limits() -> None:
    query = validation.list_sessions(
        memory_pb2.ListSessionsRequest(tenant="acme", statuses=[memory_pb2.SESSION_STATUS_HUMAN], limit=999)
    )
    assert (query.statuses, query.agent, query.limit) == (("human",), "", 200)
    assert validation.list_sessions(memory_pb2.ListSessionsRequest(tenant="acme")).limit == 50
    with pytest.raises(InvalidArgument, match=r"statuses\[0\] is 7"):
        validation.list_sessions(memory_pb2.ListSessionsRequest(tenant="acme", statuses=[7]))  # type: ignore[list-item]
    with pytest.raises(InvalidArgument, match="not a valid SupportAgent name"):
        validation.list_sessions(memory_pb2.ListSessionsRequest(tenant="acme", agent="Bad Agent"))


def test_fact_text_is_collapsed_and_bounded() -> None:
    def remember(**fields: str) -> validation.NewFact:
        base = {"tenant": "acme", "customer_id": "c-1", "agent": "acme-support", "text": "Owns a Roomba"}
        return validation.remember_fact(memory_pb2.RememberFactRequest(**{**base, **fields}))

    assert remember(text="  Owns  a\n Roomba  ").text == "Owns a Roomba"
    assert remember().session_id is None
    assert len(remember(text="x" * 500).text) == 500
    with pytest.raises(InvalidArgument, match="text is 501 characters long; the limit for a fact is 500"):
        remember(text="x" * 501)
    with pytest.raises(InvalidArgument, match="text is empty"):
        remember(text=" \n ")
    with pytest.raises(InvalidArgument, match=r"customer_id is required.*'session:<session id>'"):
        remember(customer_id="")
    with pytest.raises(InvalidArgument, match="agent is required"):
        remember(agent="")
    with pytest.raises(InvalidArgument, match="customer_id is required"):
        validation.recall_facts(memory_pb2.RecallFactsRequest(tenant="acme"))
    assert validation.recall_facts(memory_pb2.RecallFactsRequest(tenant="acme", customer_id="c")).limit == 20


def attachment_request(**fields: object) -> memory_pb2.AddAttachmentRequest:
    base: dict[str, object] = {
        "tenant": "acme",
        "session_id": SESSION,
        "filename": "receipt.pdf",
        "content_type": "application/pdf",
        "size_bytes": 10,
        "text": "Total 10 EUR",
    }
    return memory_pb2.AddAttachmentRequest(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"filename": ""}, "filename is required"),
        ({"filename": "x" * 256}, "at most 255 printable characters"),
        ({"filename": "a\tb.pdf"}, "filename 'a\\tb.pdf' is not usable"),
        ({"size_bytes": -1}, "size_bytes is -1"),
        ({"text": "x" * 200_001}, "text is 200001 characters long; the limit is 200000"),
        ({"content_type": "x" * 256}, "is not a media type"),
    ],
)
def test_invalid_attachment_names_the_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validation.add_attachment(attachment_request(**fields))
    assert message in str(caught.value)


def test_attachment_limits_are_inclusive() -> None:
    new = validation.add_attachment(attachment_request(filename="x" * 255, text="x" * 200_000, size_bytes=0))
    assert (len(new.filename), len(new.text), new.size_bytes) == (255, 200_000, 0)
    with pytest.raises(InvalidArgument, match="attachment_id 'nope' is not a valid UUID"):
        validation.get_attachment(
            memory_pb2.GetAttachmentRequest(tenant="acme", session_id=SESSION, attachment_id="nope")
        )


def handoff_request(**fields: object) -> memory_pb2.EnqueueHandoffRequest:
    base: dict[str, object] = {
        "tenant": "acme",
        "session_id": SESSION,
        "agent": "acme-support",
        "url": "https://hooks.example.com/x",
        "payload_json": '{"type": "concierge.escalation"}',
        "idempotency_key": "escalation:1",
    }
    return memory_pb2.EnqueueHandoffRequest(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": ""}, "url is required"),
        ({"url": "ftp://hooks.example.com"}, "url 'ftp://hooks.example.com' is not a webhook URL"),
        ({"url": "https://"}, "is not a webhook URL"),
        ({"payload_json": "{not json"}, "payload_json is not valid JSON"),
        ({"payload_json": "[1, 2]"}, "payload_json is a JSON list; it must be a JSON object"),
        ({"idempotency_key": ""}, "idempotency_key is required"),
        ({"idempotency_key": "a\r\nInjected: 1"}, "is not usable as a header"),
        ({"agent": ""}, "agent is required"),
    ],
)
def test_invalid_handoff_names_the_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validation.enqueue_handoff(handoff_request(**fields))
    assert message in str(caught.value)


def test_payload_is_kept_byte_for_byte() -> None:
    payload = '{"b": 1,   "a": "é"}'
    assert validation.enqueue_handoff(handoff_request(payload_json=payload)).payload_json == payload


def test_claim_defaults_and_bounds() -> None:
    def request(**fields: Any) -> Any:
        return memory_pb2.ClaimHandoffsRequest(tenant="acme", agents=["acme-support"], **fields)

    claim = validation.claim_handoffs(request())
    assert (claim.limit, claim.lease_seconds, claim.agents) == (10, 60, ("acme-support",))
    assert validation.claim_handoffs(request(limit=500)).limit == 100
    with pytest.raises(InvalidArgument, match="lease_seconds is 7200; use 1 to 3600"):
        validation.claim_handoffs(request(lease_seconds=7200))
    with pytest.raises(InvalidArgument, match="limit is -1"):
        validation.claim_handoffs(request(limit=-1))
    with pytest.raises(InvalidArgument, match="agents is required"):
        validation.claim_handoffs(memory_pb2.ClaimHandoffsRequest(tenant="acme"))


def test_finish_outcome_is_checked_and_long_errors_are_cut() -> None:
    handoff_id = str(uuid.uuid4())

    def finish(**fields: object) -> validation.HandoffOutcome:
        return validation.finish_handoff(
            memory_pb2.FinishHandoffRequest(tenant="acme", handoff_id=handoff_id, **fields)  # type: ignore[arg-type]
        )

    assert len(finish(error="x" * 5000, retry_in_seconds=30).error) == 2000
    with pytest.raises(InvalidArgument, match="retry_in_seconds is 30 but delivered is true"):
        finish(delivered=True, retry_in_seconds=30)
    with pytest.raises(InvalidArgument, match="retry_in_seconds is -1"):
        finish(retry_in_seconds=-1)
    with pytest.raises(InvalidArgument, match="handoff_id is required"):
        validation.finish_handoff(memory_pb2.FinishHandoffRequest(tenant="acme"))
    with pytest.raises(InvalidArgument, match=r"states\[0\] is 9"):
        validation.list_handoffs(memory_pb2.ListHandoffsRequest(tenant="acme", states=[9]))  # type: ignore[list-item]


def test_privacy_requests_need_a_customer_and_a_sane_retention() -> None:
    assert validation.customer(memory_pb2.EraseCustomerRequest(tenant="acme", customer_id="c")).customer_id == "c"
    with pytest.raises(InvalidArgument, match="customer_id is required"):
        validation.customer(memory_pb2.ExportCustomerRequest(tenant="acme"))

    def purge(days: int) -> validation.Retention:
        return validation.purge_expired(
            memory_pb2.PurgeExpiredRequest(tenant="acme", agent="acme-support", retention_days=days)
        )

    assert purge(1).days == 1
    assert purge(3650).days == 3650
    for bad in (0, -5, 3651):
        with pytest.raises(InvalidArgument, match=f"retention_days is {bad}; use 1 to 3650"):
            purge(bad)

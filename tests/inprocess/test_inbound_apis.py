"""The Responses and Messages routes in process, on the demo provider, through the official
``openai`` and ``anthropic`` clients: each answer rendered in its format and recorded."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.inprocess.conftest import App

DEMO = "genledger/demo"


async def test_responses_create_answers_from_the_demo_model_and_records_a_generation(app: App):
    response = await app.client().responses.create(
        model=DEMO, input="hello there", instructions="Be brief.", max_output_tokens=5
    )
    assert response.output_text == "This is the genledger demo"
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.instructions == "Be brief." and response.max_output_tokens == 5
    record = app.generations.generations[response.id]
    assert record.api_type == "completions" and record.streamed is False
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (
        record.tokens_prompt,
        record.tokens_completion,
    )
    assert response.usage.model_extra is not None
    assert response.usage.model_extra["cost"] == record.charge_pico / 10**12 > 0


async def test_responses_stream_typed_events_ending_with_the_recorded_usage(app: App):
    stream = await app.client().responses.create(model=DEMO, input="hello there", stream=True)
    events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text.startswith("This is the genledger demo model. You said: hello there")
    completed = events[-1].response  # type: ignore[union-attr]
    assert completed.output_text == text and completed.status == "completed"
    record = app.generations.generations[completed.id]
    assert (record.streamed, record.cancelled, record.tokens_completion) == (True, False, 40)
    assert completed.usage is not None and completed.usage.output_tokens == 40


async def test_previous_response_id_is_refused_with_a_clear_400(app: App):
    with pytest.raises(openai.BadRequestError) as raised:
        await app.client().responses.create(model=DEMO, input="hi", previous_response_id="resp_1")
    assert "previous_response_id" in raised.value.message
    assert raised.value.body["metadata"] == {"param": "previous_response_id"}  # type: ignore[index]
    assert app.generations.generations == {}


async def test_messages_create_answers_in_anthropic_shape_and_records_a_generation(app: App):
    message = await app.anthropic().messages.create(
        model=DEMO,
        max_tokens=5,
        system="Be brief.",
        messages=[{"role": "user", "content": "hello there"}],
    )
    assert message.content[0].type == "text" and message.content[0].text == "This is the genledger demo"
    assert message.stop_reason == "max_tokens"
    record = app.generations.generations[message.id]
    assert record.api_type == "completions" and record.streamed is False
    assert (message.usage.input_tokens, message.usage.output_tokens) == (
        record.tokens_prompt,
        record.tokens_completion,
    )


async def test_messages_stream_through_the_anthropic_helper(app: App):
    async with app.anthropic().messages.stream(
        model=DEMO, max_tokens=100, messages=[{"role": "user", "content": "hello there"}]
    ) as stream:
        text = "".join([chunk async for chunk in stream.text_stream])
        message = await stream.get_final_message()
    assert text.startswith("This is the genledger demo model. You said: hello there")
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 40
    record = app.generations.generations[message.id]
    assert (record.streamed, record.tokens_completion, record.tokens_prompt) == (
        True,
        40,
        message.usage.input_tokens,
    )


async def test_messages_errors_come_in_anthropic_shape(app: App):
    with pytest.raises(anthropic.AuthenticationError) as unauthorized:
        await app.anthropic("not-a-key").messages.create(
            model=DEMO, max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert unauthorized.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "User not found."},
    }
    with pytest.raises(anthropic.BadRequestError) as refused:
        await app.anthropic().messages.create(
            model=DEMO,
            max_tokens=5,
            messages=[{"role": "user", "content": "hi"}],
            thinking={"type": "enabled", "budget_tokens": 1024},
        )
    assert refused.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "'thinking'" in refused.value.body["error"]["message"]  # type: ignore[index]
    # The router's own answers under the route too: a wrong method, a path it does not serve.
    wrong_method = await app.http.get("/api/v1/messages", headers={"x-api-key": app.secret})
    assert wrong_method.status_code == 405
    assert wrong_method.json()["type"] == "error"
    assert wrong_method.json()["error"]["message"] == "Method GET not allowed on /api/v1/messages"
    with pytest.raises(anthropic.NotFoundError) as missing:
        await app.anthropic().messages.count_tokens(model=DEMO, messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert app.generations.generations == {}


@pytest.mark.parametrize("header", ["x-api-key", "authorization"])
async def test_messages_take_the_key_as_anthropics_header_or_a_bearer_token(app: App, header: str):
    secret = app.secret if header == "x-api-key" else f"Bearer {app.secret}"
    response = await app.http.post(
        "/api/v1/messages",
        json={"model": DEMO, "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]},
        headers={header: secret},
    )
    assert response.status_code == 200 and response.json()["content"][0]["text"] == "This is"

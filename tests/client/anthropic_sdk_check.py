"""Drives a provider-host server with the official Anthropic Python SDK, as a user would.

    python anthropic_sdk_check.py BASE_URL API_KEY STEPS

BASE_URL is the server's root (`http://127.0.0.1:PORT`, no `/v1`: the SDK appends
`/v1/messages`), API_KEY the key the client sends. STEPS is a comma-separated list of
`step:model` (`create:mock/echo,stream_tools:mock/tool`). Every step goes through the
SDK's public API: `anthropic.Anthropic(base_url=..., api_key=...)`, `messages.create`,
`messages.stream` and its accumulator, `messages.count_tokens`.

Prints one JSON object on stdout, `{"sdk_version": ..., "steps": {step: observation}}`.
A step that raises where no error is expected is recorded as `{"unexpected": ...}`, its
traceback goes to stderr, the remaining steps still run, and the exit status is 1.
Used by tests/tests/anthropic_sdk.rs; installed by .ci/install-client-sdks.
"""

import json
import sys
import traceback

import anthropic

PROMPT = "Hello from the Anthropic SDK"
TOOL_PROMPT = "Weather in Paris?"

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather forecast for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "cache_control": {"type": "ephemeral"},
}


def dump(model):
    return None if model is None else model.model_dump(mode="json")


def user(text):
    # cache_control on a block, as Claude Code sends it.
    return [{"role": "user", "content": [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]}]


def message_summary(message):
    return {
        "id": message.id,
        "type": message.type,
        "role": message.role,
        "model": message.model,
        "content": [dump(b) for b in message.content],
        "stop_reason": message.stop_reason,
        "usage": dump(message.usage),
        "request_id": getattr(message, "_request_id", None),
    }


def create(c, model):
    message = c.messages.create(
        model=model,
        max_tokens=64,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=user(PROMPT),
        metadata={"user_id": "u-42"},
    )
    return message_summary(message)


def stream_text(c, model):
    texts = []
    with c.messages.stream(model=model, max_tokens=6, messages=user("go")) as stream:
        for text in stream.text_stream:
            texts.append(text)
        final = stream.get_final_message()
    return {"texts": texts, "final": message_summary(final)}


def stream_tools(c, model):
    events = []
    with c.messages.stream(
        model=model,
        max_tokens=256,
        messages=user(TOOL_PROMPT),
        tools=[WEATHER_TOOL],
        tool_choice={"type": "auto"},
    ) as stream:
        for event in stream:
            events.append(event.type)
        final = stream.get_final_message()
    return {"events": events, "final": message_summary(final)}


def tool_result(c, model):
    message = c.messages.create(
        model=model,
        max_tokens=64,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": TOOL_PROMPT},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "15 degrees and sunny"},
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
    )
    return message_summary(message)


def thinking(c, model):
    with c.messages.stream(
        model=model,
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=user("Are there infinitely many primes p with p mod 4 == 3?"),
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    return {"events": events, "final": message_summary(final)}


def count_tokens(c, model):
    counted = c.messages.count_tokens(model=model, messages=user(PROMPT))
    return {"input_tokens": counted.input_tokens}


def raised(call):
    try:
        result = call()
    except anthropic.APIStatusError as error:
        return {
            "raised": type(error).__name__,
            "status_code": error.status_code,
            "body": error.body,
            "message": error.message,
        }
    return {"raised": None, "result": repr(result)[:500]}


def not_found(c, model):
    return raised(lambda: c.messages.create(model=model, max_tokens=8, messages=user(PROMPT)))


def not_found_stream(c, model):
    def call():
        with c.messages.stream(model=model, max_tokens=8, messages=user(PROMPT)) as stream:
            return stream.get_final_message()

    return raised(call)


def bad_request(c, model):
    # A server tool only Anthropic can run, sent to a model that is not Anthropic's.
    return raised(
        lambda: c.messages.create(
            model=model,
            max_tokens=8,
            messages=user(PROMPT),
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )
    )


def wrong_key(c, model):
    return raised(lambda: c.messages.create(model=model, max_tokens=8, messages=user(PROMPT)))


STEPS = {
    "create": create,
    "stream_text": stream_text,
    "stream_tools": stream_tools,
    "tool_result": tool_result,
    "thinking": thinking,
    "count_tokens": count_tokens,
    "not_found": not_found,
    "not_found_stream": not_found_stream,
    "bad_request": bad_request,
    "wrong_key": wrong_key,
}


def main():
    base_url, api_key, steps = sys.argv[1:4]
    # max_retries 0: a test asserting an error must see the first answer, not a retry's.
    c = anthropic.Anthropic(base_url=base_url, api_key=api_key, timeout=30, max_retries=0)
    out, failed = {}, False
    for spec in steps.split(","):
        name, _, model = spec.partition(":")
        try:
            out[name] = STEPS[name](c, model)
        except Exception as error:  # noqa: BLE001 - reported, not hidden
            traceback.print_exc()
            out[name] = {"unexpected": f"{type(error).__name__}: {error}"}
            failed = True
    print(json.dumps({"sdk_version": anthropic.__version__, "steps": out}))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

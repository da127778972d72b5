"""Drives a provider-host server with the official OpenAI Python SDK, as a user would.

    python openai_sdk_check.py BASE_URL API_KEY MODE

BASE_URL is the server's API root (`http://127.0.0.1:PORT/v1`), API_KEY the key the
client sends (any string when the server has no keys). MODE is a preset (`mock`, `auth`,
`default`, see PRESETS) or a comma-separated list of steps, each `step` or `step:model`
(`chat:fast,stream:mock/echo`). Every step goes through the SDK's public API:
`openai.OpenAI(base_url=..., api_key=...)` and its resources and stream helpers.

Prints one JSON object on stdout, `{"sdk_version": ..., "steps": {step: observation}}`.
A step that raises where no error is expected is recorded as `{"unexpected": ...}`, its
traceback goes to stderr, the remaining steps still run, and the exit status is 1.
Used by tests/tests/openai_sdk.rs; installed by .ci/install-client-sdks.
"""

import json
import sys
import traceback

import openai

# The prompts the steps send; tests/tests/openai_sdk.rs expects the mock's answers to them.
CHAT_PROMPT = "Hello from the official SDK"
STREAM_PROMPT = "one two three four five six"
TOOL_PROMPT = "Weather in Paris?"
EMBED_INPUTS = ["a red fox", "a blue whale", "a red fox"]

# A strict function tool, so the SDK's stream helper also parses the arguments.
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather forecast for a city",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
            },
            "required": ["city", "days"],
            "additionalProperties": False,
        },
    },
}

PRESETS = {
    # The mock provider, no client keys.
    "mock": "models,chat,stream,tool_stream,not_found,not_found_stream",
    # A server with client keys; API_KEY is a valid one.
    "auth": "models,chat,stream,wrong_key",
    # The default config: the mock directly and through the alias `fast`.
    "default": "models,chat:mock/echo,chat:fast,stream:fast",
}

DEFAULT_MODELS = {
    "chat": "mock/echo",
    "stream": "mock/echo",
    "tool_stream": "mock/tool",
    "not_found": "mock/no-such-model",
    "not_found_stream": "no-such-provider-or-alias",
    "wrong_key": "mock/echo",
    "responses_create": "mock/echo",
    "responses_stream": "mock/tool",
    "responses_stream_text": "mock/echo",
    "responses_tool_loop": "mock/tool",
    "responses_previous": "mock/echo",
    "responses_no_store": "mock/echo",
    "responses_not_found": "mock/no-such-model",
    "embeddings": "mock/embed",
}


def client(base_url, api_key):
    # max_retries stays at the SDK's default (2), as a user's client would have it.
    return openai.OpenAI(base_url=base_url, api_key=api_key, timeout=30)


def dump(model):
    return None if model is None else model.model_dump(mode="json")


def user(text):
    return [{"role": "user", "content": text}]


def raised(call):
    """Calls `call`, expecting the SDK to raise one of its API errors; what it raised."""
    try:
        result = call()
    except openai.APIError as error:
        return {
            "raised": type(error).__name__,
            "classes": [c.__name__ for c in type(error).__mro__ if c.__module__.startswith("openai")],
            "is_not_found": isinstance(error, openai.NotFoundError),
            "is_authentication": isinstance(error, openai.AuthenticationError),
            "status_code": getattr(error, "status_code", None),
            "message": error.message,
            "str": str(error),
            "code": error.code,
            "type": error.type,
            "param": error.param,
            "body": error.body,
            "request_id": getattr(error, "request_id", None),
        }
    return {"raised": None, "result": repr(result)[:500]}


def rate_limited(c, model):
    """Two chats past a limit of one request a minute, without the SDK's own retries
    (it would wait out `retry-after`): the first answers, the second is refused."""
    quiet = c.with_options(max_retries=0)
    first = quiet.chat.completions.with_raw_response.create(model=model, messages=user("hi"))
    limits = {k: v for k, v in first.headers.items() if k.startswith("x-ratelimit-")}
    try:
        quiet.chat.completions.create(model=model, messages=user("hi"))
    except openai.APIError as error:
        refused = raised(lambda: (_ for _ in ()).throw(error))
        refused["is_rate_limit"] = isinstance(error, openai.RateLimitError)
        refused["retry_after"] = error.response.headers.get("retry-after")
        refused["remaining_requests"] = error.response.headers.get("x-ratelimit-remaining-requests")
        return {"first": limits, "second": refused}
    return {"first": limits, "second": {"raised": None}}


def models(c, _model):
    page = c.models.list()
    listed = list(page)
    return {
        "ids": [m.id for m in listed],
        "owned_by": {m.id: m.owned_by for m in listed},
        "objects": sorted({m.object for m in listed}),
    }


def chat(c, model):
    completion = c.chat.completions.create(model=model, messages=user(CHAT_PROMPT))
    choice = completion.choices[0]
    return {
        "prompt": CHAT_PROMPT,
        "id": completion.id,
        "object": completion.object,
        "model": completion.model,
        "choices": len(completion.choices),
        "role": choice.message.role,
        "content": choice.message.content,
        "tool_calls": dump_list(choice.message.tool_calls),
        "finish_reason": choice.finish_reason,
        "usage": dump(completion.usage),
    }


def dump_list(items):
    return None if items is None else [dump(i) for i in items]


def stream(c, model):
    chunks = c.chat.completions.create(
        model=model,
        messages=user(STREAM_PROMPT),
        stream=True,
        stream_options={"include_usage": True},
    )
    seen = []
    for chunk in chunks:
        seen.append(chunk)
    text, roles, finish_reasons = [], [], []
    for chunk in seen:
        for choice in chunk.choices:
            if choice.delta.role is not None:
                roles.append(choice.delta.role)
            if choice.delta.content is not None:
                text.append(choice.delta.content)
            if choice.finish_reason is not None:
                finish_reasons.append(choice.finish_reason)
    last = seen[-1] if seen else None
    return {
        "prompt": STREAM_PROMPT,
        "chunks": len(seen),
        "text": "".join(text),
        "pieces": text,
        "roles": roles,
        "finish_reasons": finish_reasons,
        "ids": sorted({c.id for c in seen}),
        "models": sorted({c.model for c in seen}),
        "objects": sorted({c.object for c in seen}),
        "chunks_with_usage": sum(1 for c in seen if c.usage is not None),
        "last_choices": None if last is None else len(last.choices),
        "usage": None if last is None else dump(last.usage),
    }


def tool_stream(c, model):
    # `client.chat.completions.stream` since openai 1.88 or so; `client.beta.chat...` before.
    completions = c.chat.completions
    helper = getattr(completions, "stream", None) or c.beta.chat.completions.stream
    events, done = [], []
    with helper(model=model, messages=user(TOOL_PROMPT), tools=[WEATHER_TOOL]) as s:
        for event in s:
            if not events or events[-1] != event.type:
                events.append(event.type)
            if event.type == "tool_calls.function.arguments.done":
                done.append(
                    {
                        "index": event.index,
                        "name": event.name,
                        "arguments": event.arguments,
                        "parsed_arguments": event.parsed_arguments,
                    }
                )
        final = s.get_final_completion()
    choice = final.choices[0]
    calls = [
        {
            "id": call.id,
            "type": call.type,
            "name": call.function.name,
            "arguments": call.function.arguments,
            "parsed_arguments": call.function.parsed_arguments,
        }
        for call in choice.message.tool_calls or []
    ]
    return {
        "prompt": TOOL_PROMPT,
        "events": events,
        "arguments_done": done,
        "model": final.model,
        "finish_reason": choice.finish_reason,
        "content": choice.message.content,
        "tool_calls": calls,
    }


def not_found(c, model):
    return raised(lambda: c.chat.completions.create(model=model, messages=user("hi")))


def not_found_stream(c, model):
    def call():
        for _ in c.chat.completions.create(model=model, messages=user("hi"), stream=True):
            pass

    return raised(call)


def wrong_key(c, model):
    wrong = client(str(c.base_url), c.api_key + "-but-wrong")
    return {
        "models": raised(lambda: wrong.models.list()),
        "chat": raised(lambda: wrong.chat.completions.create(model=model, messages=user("hi"))),
        "stream": raised(
            lambda: list(wrong.chat.completions.create(model=model, messages=user("hi"), stream=True))
        ),
    }


def stream_error(c, model):
    """A stream that fails after its first chunks: what the SDK yields, then raises."""
    text = []

    def call():
        for chunk in c.chat.completions.create(model=model, messages=user("hi"), stream=True):
            for choice in chunk.choices:
                if choice.delta.content is not None:
                    text.append(choice.delta.content)

    observed = raised(call)
    observed["text_before"] = "".join(text)
    return observed


# The Responses API's function tool is flat (no `function` wrapper).
RESPONSES_WEATHER_TOOL = {"type": "function", **WEATHER_TOOL["function"]}


def response_summary(r):
    return {
        "id": r.id,
        "object": r.object,
        "status": r.status,
        "model": r.model,
        "output_text": r.output_text,
        "output": [dump(item) for item in r.output],
        "usage": dump(r.usage),
        "previous_response_id": r.previous_response_id,
        "incomplete_details": dump(r.incomplete_details),
    }


def responses_create(c, model):
    r = c.responses.create(model=model, input=CHAT_PROMPT, instructions="Be brief.")
    return response_summary(r)


def responses_stream(c, model):
    events = []
    with c.responses.stream(model=model, input=TOOL_PROMPT, tools=[RESPONSES_WEATHER_TOOL]) as s:
        for event in s:
            events.append(event.type)
        final = s.get_final_response()
    calls = [
        {
            "name": item.name,
            "call_id": item.call_id,
            "arguments": item.arguments,
            "parsed_arguments": getattr(item, "parsed_arguments", None),
        }
        for item in final.output
        if item.type == "function_call"
    ]
    return {"events": events, "final": response_summary(final), "calls": calls}


def responses_stream_text(c, model):
    deltas = []
    with c.responses.stream(model=model, input=STREAM_PROMPT) as s:
        for event in s:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = s.get_final_response()
    return {"deltas": deltas, "final": response_summary(final)}


def responses_tool_loop(c, model):
    first = c.responses.create(model=model, input=TOOL_PROMPT, tools=[RESPONSES_WEATHER_TOOL])
    call = next(item for item in first.output if item.type == "function_call")
    second = c.responses.create(
        model="mock/echo",
        input=[
            {"role": "user", "content": TOOL_PROMPT},
            *first.output,
            {"type": "function_call_output", "call_id": call.call_id, "output": "15 degrees"},
        ],
        tools=[RESPONSES_WEATHER_TOOL],
    )
    return {"first": response_summary(first), "second": response_summary(second)}


def responses_previous(c, model):
    first = c.responses.create(model=model, input="one two")
    second = c.responses.create(model=model, input="three", previous_response_id=first.id)
    retrieved = c.responses.retrieve(first.id)
    c.responses.delete(first.id)
    return {
        "first": response_summary(first),
        "second": response_summary(second),
        "retrieved": response_summary(retrieved),
        "retrieve_deleted": raised(lambda: c.responses.retrieve(first.id)),
        "continue_deleted": raised(
            lambda: c.responses.create(model=model, input="four", previous_response_id=first.id)
        ),
    }


def responses_no_store(c, model):
    r = c.responses.create(model=model, input="keep nothing", store=False)
    return {"response": response_summary(r), "retrieve": raised(lambda: c.responses.retrieve(r.id))}


def responses_stream_error(c, model):
    """A Responses stream that fails after its first text: what the SDK yields, then raises."""
    text = []

    def call():
        for event in c.responses.create(model=model, input="hi", stream=True):
            if event.type == "response.output_text.delta":
                text.append(event.delta)

    observed = raised(call)
    observed["text_before"] = "".join(text)
    return observed


def responses_not_found(c, model):
    return raised(lambda: c.responses.create(model=model, input="hi"))


def embeddings(c, model):
    """`client.embeddings.create` as a user calls it: the SDK's default encoding (it asks
    for base64 and decodes it itself), then floats, a single string with `dimensions`,
    and a bad request."""
    # The raw response shows what crossed the wire; `parse()` is what `create` returns.
    raw = c.embeddings.with_raw_response.create(model=model, input=EMBED_INPUTS)
    default = raw.parse()
    floats = c.embeddings.create(model=model, input=EMBED_INPUTS, encoding_format="float")
    single = c.embeddings.create(model=model, input=EMBED_INPUTS[0], dimensions=3)

    def vectors(response):
        return [item.embedding for item in response.data]

    return {
        "inputs": EMBED_INPUTS,
        "sent": json.loads(raw.http_request.content),
        "wire_types": [type(item["embedding"]).__name__ for item in raw.http_response.json()["data"]],
        "object": default.object,
        "model": default.model,
        "indexes": [item.index for item in default.data],
        "item_objects": sorted({item.object for item in default.data}),
        "default_vectors": vectors(default),
        "float_vectors": vectors(floats),
        "usage": dump(default.usage),
        "single": vectors(single),
        "empty_input": raised(lambda: c.embeddings.create(model=model, input=[])),
    }


STEPS = {
    f.__name__: f
    for f in [
        models,
        chat,
        stream,
        tool_stream,
        not_found,
        not_found_stream,
        wrong_key,
        stream_error,
        responses_create,
        responses_stream,
        responses_stream_text,
        responses_tool_loop,
        responses_previous,
        responses_no_store,
        responses_not_found,
        responses_stream_error,
        embeddings,
        rate_limited,
    ]
}


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    base_url, api_key, mode = argv[1:]
    c = client(base_url, api_key)
    out = {"sdk_version": openai.__version__, "steps": {}}
    ok = True
    for step in PRESETS.get(mode, mode).split(","):
        name, _, model = step.partition(":")
        if name not in STEPS:
            print(f"unknown step {name!r}; steps: {', '.join(STEPS)}", file=sys.stderr)
            return 2
        try:
            out["steps"][step] = STEPS[name](c, model or DEFAULT_MODELS.get(name))
        except Exception as error:  # noqa: BLE001  (reported, and the exit status says so)
            ok = False
            print(f"step {step}: unexpected {type(error).__name__}", file=sys.stderr)
            traceback.print_exc()
            out["steps"][step] = {
                "unexpected": {
                    "type": type(error).__name__,
                    "message": str(error),
                    "status_code": getattr(error, "status_code", None),
                }
            }
    print(json.dumps(out, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

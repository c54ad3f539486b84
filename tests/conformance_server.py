"""An MCP server with the fixtures the official conformance suite's server scenarios call
(`test_simple_text`, `test://static-text`, `test_simple_prompt`...), so that its tool, resource,
prompt, sampling and elicitation scenarios test something: server-everything has none of them.

Written for signoff's tests from the suite's scenario names (not the suite's own reference
server, which npm does not ship). The same server runs over stdio (wrapped by signoff) and over
streamable HTTP (the suite against it directly):

    python tests/conformance_server.py stdio
    python tests/conformance_server.py http PORT
"""

from __future__ import annotations

import json
import sys
import warnings
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp_types import (
    AudioContent,
    CallToolResult,
    Completion,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)

warnings.simplefilter("ignore")  # logging and sampling are deprecated in the SDK's newest revision; the suite tests them

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="  # 1×1
WAV = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA="  # empty 8 kHz mono

server: MCPServer = MCPServer("signoff-conformance-fixtures", version="1.0.0")


def text(value: str) -> TextContent:
    return TextContent(type="text", text=value)


def image() -> ImageContent:
    return ImageContent(type="image", data=PNG, mime_type="image/png")


def embedded(uri: str, body: str, mime: str = "text/plain") -> EmbeddedResource:
    return EmbeddedResource(type="resource", resource=TextResourceContents(uri=uri, mime_type=mime, text=body))


# ---- tools ----


@server.tool(description="Answers with one text block.")
def test_simple_text() -> CallToolResult:
    return CallToolResult(content=[text("A simple text answer.")])


@server.tool(description="Answers with an image.")
def test_image_content() -> CallToolResult:
    return CallToolResult(content=[image()])


@server.tool(description="Answers with audio.")
def test_audio_content() -> CallToolResult:
    return CallToolResult(content=[AudioContent(type="audio", data=WAV, mime_type="audio/wav")])


@server.tool(description="Answers with an embedded resource.")
def test_embedded_resource() -> CallToolResult:
    return CallToolResult(content=[embedded("test://embedded-resource", "Embedded text.")])


@server.tool(description="Answers with text, an image and a resource.")
def test_multiple_content_types() -> CallToolResult:
    blob = json.dumps({"mixed": True})
    return CallToolResult(content=[text("Mixed content:"), image(), embedded("test://mixed", blob, "application/json")])


@server.tool(description="Sends log messages while it runs.")
async def test_tool_with_logging(ctx: Context) -> CallToolResult:
    for step in ("started", "working", "done"):
        await ctx.log("info", f"logging tool {step}")
    return CallToolResult(content=[text("Logged three messages.")])


@server.tool(description="Reports progress while it runs.")
async def test_tool_with_progress(ctx: Context) -> CallToolResult:
    for progress in (0, 50, 100):
        await ctx.report_progress(progress, 100, f"{progress}%")
    return CallToolResult(content=[text("Progress reported.")])


@server.tool(description="Always fails.")
def test_error_handling() -> CallToolResult:
    return CallToolResult(content=[text("This tool fails on purpose.")], is_error=True)


@server.tool(description="Asks the client's model for a completion.")
async def test_sampling(prompt: str, ctx: Context) -> CallToolResult:
    message = SamplingMessage(role="user", content=text(prompt))
    answer = await ctx.session.create_message([message], max_tokens=100, related_request_id=ctx.request_id)
    content = answer.content
    return CallToolResult(content=[text(f"Model said: {getattr(content, 'text', content)}")])


async def elicit(ctx: Context, message: str, schema: dict[str, Any]) -> CallToolResult:
    answer = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
    return CallToolResult(content=[text(f"action={answer.action} content={json.dumps(answer.content or {})}")])


@server.tool(description="Asks the user for input.")
async def test_elicitation(message: str, ctx: Context) -> CallToolResult:
    schema = {"type": "object", "properties": {"response": {"type": "string"}}, "required": ["response"]}
    return await elicit(ctx, message, schema)


@server.tool(description="Asks the user with a default for each primitive type (SEP-1034).")
async def test_elicitation_sep1034_defaults(ctx: Context) -> CallToolResult:
    fields = {
        "name": {"type": "string", "default": "John Doe"},
        "age": {"type": "integer", "default": 30},
        "score": {"type": "number", "default": 95.5},
        "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
        "verified": {"type": "boolean", "default": True},
    }
    return await elicit(ctx, "Check the defaults", {"type": "object", "properties": fields, "required": []})


@server.tool(description="Asks the user with each enum form (SEP-1330).")
async def test_elicitation_sep1330_enums(ctx: Context) -> CallToolResult:
    options = ["option1", "option2", "option3"]
    titled = [{"const": f"value{n}", "title": f"Option {n}"} for n in (1, 2, 3)]
    fields = {
        "untitledSingle": {"type": "string", "enum": options},
        "titledSingle": {"type": "string", "oneOf": titled},
        "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"], "enumNames": ["One", "Two", "Three"]},
        "untitledMulti": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "string", "enum": options}},
        "titledMulti": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"anyOf": titled}},
    }
    return await elicit(ctx, "Pick options", {"type": "object", "properties": fields, "required": []})


@server.tool(description="Takes arguments described by a JSON Schema 2020-12 document (SEP-1613).")
def json_schema_2020_12_tool(name: str = "", address: dict[str, Any] | None = None) -> CallToolResult:
    return CallToolResult(content=[text(json.dumps({"name": name, "address": address}))])


# tools/list must carry the schema as written: `$schema`, `$defs`, `additionalProperties`
server._tool_manager.get_tool("json_schema_2020_12_tool").parameters = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}


# ---- resources ----


@server.resource("test://static-text", name="static-text", mime_type="text/plain")
def static_text() -> str:
    return "Static text resource."


@server.resource("test://static-binary", name="static-binary", mime_type="image/png")
def static_binary() -> bytes:
    import base64

    return base64.b64decode(PNG)


@server.resource("test://template/{id}/data", name="template", mime_type="application/json")
def template(id: str) -> str:
    return json.dumps({"id": id, "templateTest": True})


@server.resource("test://watched-resource", name="watched-resource", mime_type="text/plain")
def watched() -> str:
    return "Watched resource."


async def subscribed(ctx: Any, params: SubscribeRequestParams | UnsubscribeRequestParams) -> EmptyResult:
    return EmptyResult()


async def set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
    return EmptyResult()


server._lowlevel_server.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribed)
server._lowlevel_server.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, subscribed)
server._lowlevel_server.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)


# ---- prompts and completion ----


@server.prompt(description="A prompt without arguments.")
def test_simple_prompt() -> list[UserMessage]:
    return [UserMessage("A simple prompt.")]


@server.prompt(description="A prompt with two arguments.")
def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
    return [UserMessage(f"arg1={arg1} arg2={arg2}")]


@server.prompt(description="A prompt embedding a resource.")
def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
    return [UserMessage(embedded(resourceUri, "Embedded prompt text.")), UserMessage("Use the resource above.")]


@server.prompt(description="A prompt with an image.")
def test_prompt_with_image() -> list[UserMessage]:
    return [UserMessage(image()), UserMessage("Describe the image above.")]


@server.completion()
async def complete(ref: Any, argument: Any, context: Any) -> Completion:
    return Completion(values=[], total=0, has_more=False)


def main(argv: list[str]) -> None:
    if argv[:1] == ["http"]:
        anyio.run(lambda: server.run_streamable_http_async(port=int(argv[1])))
    else:
        anyio.run(server.run_stdio_async)


if __name__ == "__main__":
    main(sys.argv[1:])

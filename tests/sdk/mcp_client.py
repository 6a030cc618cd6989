#!/usr/bin/env python3
"""Drive oxvault's MCP endpoint with the official MCP Python SDK (Streamable HTTP client) and
print one JSON object of what happened; the Rust e2e test (tests/tests/api/mcp.rs) decides
what is right.

usage: mcp_client.py URL --token TOKEN [--call NAME JSON_ARGS]...

Every call's result (structuredContent, isError) or error is recorded; a failure of the whole
session (refused at the HTTP level: 401, 403) is printed as {"fatal": ...} with exit code 1.
"""
import argparse
import json
import sys

import anyio
import httpx2  # the MCP SDK 2.x transport's HTTP client
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client


def error_json(error: BaseException) -> dict:
    if isinstance(error, MCPError):
        return {"kind": "jsonrpc_error", "code": error.code, "message": error.message}
    return {"kind": type(error).__name__, "message": str(error)}


async def run(args) -> dict:
    out: dict = {}
    headers = {"Authorization": f"Bearer {args.token}"}
    # Longer than the session's per-request timeout: an HTTP timeout would end the session.
    timeout = httpx2.Timeout(args.timeout + 10, connect=5.0)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        async with streamable_http_client(args.url, http_client=http) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=args.timeout) as session:
                init = await session.initialize()
                out["protocolVersion"] = init.protocol_version
                out["serverInfo"] = init.server_info.model_dump(mode="json", exclude_none=True)
                tools = await session.list_tools()
                out["tools"] = [
                    tool.model_dump(mode="json", by_alias=True, exclude_none=True)
                    for tool in tools.tools
                ]
                out["calls"] = []
                for name, raw in args.call or []:
                    entry: dict = {"name": name}
                    try:
                        result = await session.call_tool(name, json.loads(raw))
                        entry["result"] = result.model_dump(
                            mode="json", by_alias=True, exclude_none=True
                        )
                    except Exception as error:  # MCPError, or the SDK's schema validation
                        entry["error"] = error_json(error)
                    out["calls"].append(entry)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--token", required=True)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--call", nargs=2, action="append", metavar=("NAME", "JSON_ARGS"))
    args = parser.parse_args()
    try:
        out = anyio.run(run, args)
    except BaseException as error:  # task groups wrap failures in ExceptionGroups
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
        print(json.dumps({"fatal": error_json(error)}))
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

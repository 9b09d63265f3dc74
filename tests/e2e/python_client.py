"""Drives the server with the Python MCP SDK (2.x), as an assistant would.

Usage: python_client.py <server-binary> <mode>   (mode: legacy or auto)

Lists the tools and calls each one against the built-in demo data; the SDK
validates every structured result against the tool's outputSchema. Prints
one JSON line per check and exits non-zero on the first mismatch.
"""

import asyncio
import json
import sys

from mcp import Client
from mcp.client.stdio import StdioServerParameters

EXPECTED_TOOLS = [
    "find_voucher_codes",
    "get_voucher_pool",
    "get_voucher_pool_stats",
    "list_projects",
    "list_voucher_codes",
    "list_voucher_pools",
]


def check(condition, what):
    if not condition:
        raise SystemExit(f"FAILED: {what}")
    print(json.dumps({"ok": what}))


def structured(result):
    return result.structured_content if hasattr(result, "structured_content") else result.structuredContent


def is_error(result):
    return bool(getattr(result, "is_error", getattr(result, "isError", False)))


async def main(binary, mode):
    params = StdioServerParameters(command=binary, args=["--demo"], env={"RUST_LOG": "warn"})
    async with Client(params, mode=mode, read_timeout_seconds=30) as client:
        listed = await client.list_tools()
        names = sorted(t.name for t in listed.tools)
        check(names == EXPECTED_TOOLS, f"{mode}: tools/list names {names}")

        projects = await client.call_tool("list_projects", {})
        data = structured(projects)
        check(not is_error(projects) and data["success"] is True, f"{mode}: list_projects succeeds")
        check(data["data"][0]["id"] == "demo", f"{mode}: list_projects lists demo")

        pools = await client.call_tool("list_voucher_pools", {"project_id": "demo"})
        data = structured(pools)
        check(not is_error(pools) and data["error"] is None, f"{mode}: list_voucher_pools succeeds")
        check(
            [p["id"] for p in data["data"]] == ["summer20", "welcome10", "ete-bienvenue", "black-friday"],
            f"{mode}: list_voucher_pools ids",
        )
        text = pools.content[0].text
        check(json.loads(text) == data, f"{mode}: text block equals structuredContent")

        pool = await client.call_tool("get_voucher_pool", {"project_id": "demo", "pool_id": "ete-bienvenue"})
        data = structured(pool)
        check(data["data"]["name"].startswith("Été"), f"{mode}: get_voucher_pool keeps non-ASCII names")

        codes = await client.call_tool(
            "list_voucher_codes",
            {"project_id": "demo", "pool_id": "summer20", "count": 5, "status": "redeemed"},
        )
        data = structured(codes)
        check(len(data["data"]) == 5 and data["limit"] == 5, f"{mode}: list_voucher_codes pages")
        check(all(c["status"] == "redeemed" and c["redeemed_at"].endswith("Z") for c in data["data"]),
              f"{mode}: list_voucher_codes filters by status with RFC 3339 times")

        bad = await client.call_tool("list_voucher_codes", {"project_id": "demo", "pool_id": "summer20", "count": 5000})
        data = structured(bad)
        check(is_error(bad) and data["success"] is False and data["data"] == [], f"{mode}: bad count is a failure envelope")
        check(data["error"] == "count must be between 1 and 1000 (got 5000)", f"{mode}: bad count message")

        stats = await client.call_tool("get_voucher_pool_stats", {"project_id": "demo", "pool_id": "summer20"})
        data = structured(stats)
        check(not is_error(stats) and data["data"]["redeemed"] == 576, f"{mode}: get_voucher_pool_stats counts")

        found = await client.call_tool(
            "find_voucher_codes",
            {"project_id": "demo", "pool_id": "summer20", "status": "redeemed", "limit": 3},
        )
        data = structured(found)
        check(not is_error(found) and len(data["data"]) == 3 and data["next_skip"] is not None,
              f"{mode}: find_voucher_codes stops at the limit with a place to resume")

        missing = await client.call_tool("get_voucher_pool", {"project_id": "demo", "pool_id": "nope"})
        data = structured(missing)
        check(is_error(missing) and data["data"] is None, f"{mode}: unknown pool is a failure envelope")
    print(json.dumps({"done": mode}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

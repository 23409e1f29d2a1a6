"""One client process of the mass-CVE burst: `python -m tests.benchmarks.burstclient < job.json`.

Sends its share of submissions (submitPatch one by one, or submitPatches in batches) as fast as the server
answers, starting at the monotonic time `start_at` (CLOCK_MONOTONIC is comparable across processes), and prints
one JSON line: latencies (s), errors, and the monotonic times of its first request and last response."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from tests.benchmarks.httpclient import GraphQLClient

SUBMIT = "mutation($input: SubmitPatchInput!) { submitPatch(input: $input) { created patch { id version } } }"
SUBMIT_MANY = "mutation($inputs: [SubmitPatchInput!]!) { submitPatches(inputs: $inputs) { created patch { id version } } }"


async def main(job: dict) -> dict:
    client = GraphQLClient("127.0.0.1", job["port"], api_key=job["api_key"])
    inputs, batch = job["inputs"], job["batch"]
    latencies, errors = [], []
    await client.connection.open()
    await asyncio.sleep(max(0.0, job["start_at"] - time.monotonic()))
    first = time.monotonic()
    try:
        for index in range(0, len(inputs), batch):
            chunk = inputs[index:index + batch]
            variables = {"input": chunk[0]} if batch == 1 else {"inputs": chunk}
            elapsed, body = await client.call(SUBMIT if batch == 1 else SUBMIT_MANY, variables)
            if "errors" in body:
                errors.append(body["errors"][0].get("message", "?")[:200])
            else:
                latencies.append(elapsed)
    finally:
        last = time.monotonic()
        await client.close()
    return {"latencies": latencies, "errors": errors[:3], "error_count": len(errors), "first": first, "last": last}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.stdin.read())))), flush=True)

#!/usr/bin/env node
// Runs every `serverAudits` check of the pinned graphql-http package against a running server and
// prints one JSON list: [{name, id, status, reason}], status "ok" | "notice" (MAY) | "warn" (SHOULD) |
// "error" (MUST). Exit code 0 whenever the audits ran (judging them is the caller's business), 2 on
// usage errors, 1 on fatal errors (e.g. the server is unreachable).
//
//   node run-audits.js http://127.0.0.1:8027/graphql
//   HITL_AUDIT_AUTHORIZATION="Bearer <jwt>" node run-audits.js http://127.0.0.1:8027/graphql
//
// HITL_AUDIT_AUTHORIZATION, when set, is added as the Authorization header of every audit request
// (through the audits' own `fetchFn` option); the requests are otherwise sent exactly as written.
'use strict';

// graphql-http/lib/audits, re-exported from the package root (its "exports" map hides lib/audits).
const { serverAudits } = require('graphql-http');

async function main() {
  const url = process.argv[2];
  if (!url || process.argv.length > 3) {
    process.stderr.write('usage: node run-audits.js <graphql-url>\n');
    process.exit(2);
  }
  const authorization = process.env.HITL_AUDIT_AUTHORIZATION || '';

  async function fetchFn(input, init = {}) {
    if (!authorization) return fetch(input, init);
    const headers = new Headers(init.headers || {});
    headers.set('authorization', authorization);
    return fetch(input, { ...init, headers });
  }

  const audits = serverAudits({ url, fetchFn });
  // Sequential: the results do not depend on ordering, and the server log stays readable.
  const results = [];
  for (const { fn } of audits) {
    const result = await fn();
    results.push({
      name: result.name,
      id: result.id,
      status: result.status,
      reason: result.status === 'ok' ? null : await describe(result),
    });
  }
  process.stdout.write(JSON.stringify(results, null, 2) + '\n');
}

// The audit's reason plus what the server actually answered, so a failure explains itself.
async function describe(result) {
  const res = result.response;
  if (!res) return result.reason;
  let body = '';
  try {
    body = (await res.text()).slice(0, 300);
  } catch (err) {
    body = `<body unreadable: ${err.message}>`;
  }
  const type = res.headers.get('content-type') || '<none>';
  return `${result.reason} (got ${res.status} ${type}: ${body})`;
}

main().catch((err) => {
  process.stderr.write(`graphql-http audit failed to run: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});

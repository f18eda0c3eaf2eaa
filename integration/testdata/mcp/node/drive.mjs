// drive.mjs — the official MCP TypeScript SDK's client, driven by a JSON plan,
// for integration/mcp_ts_test.go.
//
//   node drive.mjs '<plan JSON>'   |   node drive.mjs plan.json   |   node drive.mjs < plan.json
//
// The plan:
//
//   {
//     "client":    {"name": "ts-agent", "version": "1.0.0"},   // clientInfo sent in initialize
//     "transport": {"http": "http://127.0.0.1:6480/mcp", "token": "..."}          // token optional
//              or  {"stdio": {"command": "pgwarden", "args": ["mcp", ...], "env": {"PGWARDEN_TOKEN": "..."}}},
//     "calls":     [{"tool": "query", "arguments": {"sql": "SELECT 1"}}, ...],
//                  // a step {"wait_for_file": "/path"} instead of a call pauses until
//                  // that file exists (the test acts meanwhile, e.g. approves a held
//                  // statement); it adds no entry to "results"
//     "timeout_ms": 30000                                       // per request, optional
//   }
//
// It connects, lists the tools, runs the calls in order and prints one JSON
// document on stdout:
//
//   {
//     "server":  {"name", "version"},                 // from initialize
//     "tools":   [{"name", "description", "input_schema", "output_schema"}],
//     "results": [{"tool", "is_error", "structured", "text", "error"}],
//                 // error: a JSON-RPC or client-side failure of that call ({name, code, message})
//     "transport_error": {"name", "code", "message"} | null,   // connect failed (code: HTTP status)
//     "transport_events": ["..."],                    // errors the transport reported meanwhile
//     "http":    [{"method", "status", "www_authenticate", "content_type"}],   // every HTTP response
//     "stderr":  "..."                                // stdio: the server's stderr
//   }
//
// The exit code is 0 whatever the server did; 1 only when the plan is
// unusable or this script itself failed.

import { existsSync, readFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

function readPlan() {
  const arg = process.argv[2];
  let text;
  if (arg === undefined || arg === '-') {
    text = readFileSync(0, 'utf8');
  } else if (arg.trimStart().startsWith('{')) {
    text = arg;
  } else {
    text = readFileSync(arg, 'utf8');
  }
  const plan = JSON.parse(text);
  if (!plan.transport || (!plan.transport.http && !plan.transport.stdio)) {
    throw new Error('plan.transport must have "http" or "stdio"');
  }
  if (plan.calls !== undefined && plan.calls !== null && !Array.isArray(plan.calls)) {
    throw new Error('plan.calls must be an array');
  }
  return plan;
}

// errorJSON is what the output says about a thrown error: the SDK's
// StreamableHTTPError and McpError both carry a numeric code (an HTTP status
// or a JSON-RPC error code).
function errorJSON(err) {
  if (err === null || err === undefined) return null;
  const out = { name: err.name ?? 'Error', message: String(err.message ?? err) };
  if (typeof err.code === 'number') out.code = err.code;
  if (err.data !== undefined) out.data = err.data;
  return out;
}

async function waitForFile(path, timeout) {
  const deadline = Date.now() + timeout;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new Error(`wait_for_file: ${path} did not appear within ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function textOf(content) {
  return (content ?? [])
    .filter((c) => c.type === 'text')
    .map((c) => c.text)
    .join('\n');
}

async function main() {
  const plan = readPlan();
  const timeout = plan.timeout_ms ?? 30000;
  const out = {
    server: null,
    tools: [],
    results: [],
    transport_error: null,
    transport_events: [],
    http: [],
  };

  let transport;
  let stderr = [];
  if (plan.transport.http) {
    const headers = {};
    if (plan.transport.token !== undefined && plan.transport.token !== null) {
      headers.Authorization = `Bearer ${plan.transport.token}`;
    }
    // A fetch that notes every response, so that a 401's status and
    // WWW-Authenticate reach the test (the SDK's error carries the status only).
    const noting = async (url, init) => {
      const res = await fetch(url, init);
      out.http.push({
        method: init?.method ?? 'GET',
        status: res.status,
        www_authenticate: res.headers.get('www-authenticate'),
        content_type: res.headers.get('content-type'),
      });
      return res;
    };
    transport = new StreamableHTTPClientTransport(new URL(plan.transport.http), {
      requestInit: { headers },
      fetch: noting,
    });
  } else {
    const s = plan.transport.stdio;
    transport = new StdioClientTransport({
      command: s.command,
      args: s.args ?? [],
      env: s.env ?? {},
      cwd: s.cwd,
      stderr: 'pipe',
    });
    transport.stderr?.on('data', (chunk) => stderr.push(chunk.toString('utf8')));
  }

  const client = new Client(plan.client ?? { name: 'pgwarden-mcp-ts', version: '0.0.0' });
  client.onerror = (err) => out.transport_events.push(String(err?.message ?? err));

  try {
    await client.connect(transport, { timeout });
  } catch (err) {
    out.transport_error = errorJSON(err);
    await transport.close().catch(() => {});
    return finish(out, plan, stderr);
  }
  out.server = client.getServerVersion() ?? null;

  try {
    const listed = await client.listTools(undefined, { timeout });
    out.tools = listed.tools.map((t) => ({
      name: t.name,
      description: t.description ?? '',
      input_schema: t.inputSchema ?? null,
      output_schema: t.outputSchema ?? null,
    }));
  } catch (err) {
    out.transport_error = errorJSON(err);
  }

  for (const call of plan.calls ?? []) {
    if (call.wait_for_file !== undefined) {
      try {
        await waitForFile(call.wait_for_file, timeout);
        continue;
      } catch (err) {
        out.transport_events.push(err.message);
        break;
      }
    }
    const r = { tool: call.tool, is_error: false, structured: null, text: '', error: null };
    try {
      // callTool validates structuredContent against the tool's
      // outputSchema when it declares one (listTools): a mismatch lands in r.error.
      const res = await client.callTool({ name: call.tool, arguments: call.arguments ?? {} }, undefined, { timeout });
      r.is_error = res.isError === true;
      r.structured = res.structuredContent ?? null;
      r.text = textOf(res.content);
      r.content_types = (res.content ?? []).map((c) => c.type);
    } catch (err) {
      r.error = errorJSON(err);
    }
    out.results.push(r);
  }

  if (plan.transport.http) {
    // End the MCP session (HTTP DELETE), as a well-behaved client does.
    await transport.terminateSession().catch((err) => out.transport_events.push(`terminate: ${err.message}`));
  }
  await client.close().catch((err) => out.transport_events.push(`close: ${err.message}`));
  return finish(out, plan, stderr);
}

async function finish(out, plan, stderr) {
  if (plan.transport.stdio) {
    // Give the child's last stderr lines a moment to arrive after close.
    await new Promise((r) => setTimeout(r, 100));
    out.stderr = stderr.join('');
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`drive.mjs: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);

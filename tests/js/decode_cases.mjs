// Differential helper for tests/test_client_js.py (not a test file itself): reads
// [[base64 chunk, ...], ...] on stdin, parses each case with client.js's SSEParser, and prints
// [[{event, data, id, retry}, ...], ...] as JSON.
import { readFile, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const source = await readFile(new URL("../../llm_sse_mount/static/client.js", import.meta.url));
const copy = join(await mkdtemp(join(tmpdir(), "llm-client-")), "client.mjs");
await writeFile(copy, source);
const { SSEParser } = await import(pathToFileURL(copy).href);

let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).map((chunks) => {
  const parser = new SSEParser();
  const events = [];
  for (const chunk of chunks) events.push(...parser.feed(Buffer.from(chunk, "base64")));
  events.push(...parser.end());
  return events;
});
process.stdout.write(JSON.stringify(out));

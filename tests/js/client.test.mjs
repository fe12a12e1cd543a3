// client.js without a browser: `node --test tests/js/` (Node 20+, no packages).
// The SSE parser is fed byte streams split at awkward places; chat() runs against a fetch stub.
import assert from "node:assert/strict";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";

// client.js is an ES module in a folder without package.json "type": "module": load a .mjs copy.
const source = await readFile(new URL("../../llm_sse_mount/static/client.js", import.meta.url));
const copy = join(await mkdtemp(join(tmpdir(), "llm-client-")), "client.mjs");
await writeFile(copy, source);
const { SSEParser, LLMClient, LLMError, parseEventStream, streamChat } = await import(
  pathToFileURL(copy).href
);

const utf8 = (text) => new TextEncoder().encode(text);

/** Parse `bytes` delivered as the given chunks; return the events (without retry when null). */
function parse(chunks) {
  const parser = new SSEParser();
  const events = [];
  for (const chunk of chunks) events.push(...parser.feed(chunk));
  events.push(...parser.end());
  return events.map(({ event, data, id, retry }) =>
    retry === null ? { event, data, id } : { event, data, id, retry },
  );
}

function splitAt(bytes, ...offsets) {
  const cuts = [0, ...offsets, bytes.length];
  return cuts.slice(1).map((end, i) => bytes.slice(cuts[i], end));
}

// --- the parser: the WHATWG examples --------------------------------------------------------------

test("spec example: data lines join with LF", () => {
  assert.deepEqual(parse([utf8("data: YHOO\ndata: +2\ndata: 10\n\n")]), [
    { event: "message", data: "YHOO\n+2\n10", id: "" },
  ]);
});

test("spec example: comments are ignored and the id stays in force", () => {
  const stream = ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n";
  assert.deepEqual(parse([utf8(stream)]), [
    { event: "message", data: "first event", id: "1" },
    { event: "message", data: "second event", id: "" },
    { event: "message", data: " third event", id: "" },
  ]);
});

test("spec example: empty data fields, and an unterminated last event is dropped", () => {
  assert.deepEqual(parse([utf8("data\n\ndata\ndata\n\ndata:")]), [
    { event: "message", data: "", id: "" },
    { event: "message", data: "\n", id: "" },
  ]);
});

test("spec example: one optional space after the colon", () => {
  assert.deepEqual(parse([utf8("data:test\n\ndata: test\n\n")]), [
    { event: "message", data: "test", id: "" },
    { event: "message", data: "test", id: "" },
  ]);
});

test("event names, retry, unknown fields, NUL in id, and a leading BOM", () => {
  const stream = "\uFEFFevent: delta\nretry: 2500\nfoo: bar\ndata: x\n\nid: a\0b\nretry: 1x\ndata: y\n\n";
  assert.deepEqual(parse([utf8(stream)]), [
    { event: "delta", data: "x", id: "", retry: 2500 },
    { event: "message", data: "y", id: "" },
  ]);
  // A BOM is stripped once, at the start only.
  assert.deepEqual(parse([utf8("\uFEFF\uFEFFdata: z\n\n")]), []);
});

test("CR, LF and CRLF all end lines, mixed in one stream", () => {
  const stream = "event: a\rdata: 1\r\rdata: 2\r\n\r\nid: 7\ndata: 3\r\n\n";
  assert.deepEqual(parse([utf8(stream)]), [
    { event: "a", data: "1", id: "" },
    { event: "message", data: "2", id: "" },
    { event: "message", data: "3", id: "7" },
  ]);
});

// --- the parser: awkward splits -------------------------------------------------------------------

const TRICKY = utf8(
  ": ping\r\n" +
    "id: s:0\r\nevent: start\r\ndata: {\"stream_id\":\"s\"}\r\n\r\n" +
    "id: s:1\revent: delta\rdata: 你好, wörld 🎉\r\r" + // CR only, 2-, 3- and 4-byte characters
    "id: s:2\nevent: delta\ndata: line one\ndata: line two 第二\n\n" +
    "data: é\r\n\r\n" +
    "event: done\ndata: {}\n\n",
);

test("the same events for every split of the stream into two chunks", () => {
  const expected = parse([TRICKY]);
  assert.equal(expected.length, 5);
  assert.equal(expected[1].data, "你好, wörld 🎉");
  assert.equal(expected[2].data, "line one\nline two 第二");
  for (let i = 1; i < TRICKY.length; i++) {
    assert.deepEqual(parse(splitAt(TRICKY, i)), expected, `split at byte ${i}`);
  }
});

test("the same events fed one byte at a time, and as a string", () => {
  const expected = parse([TRICKY]);
  const bytes = Array.from(TRICKY, (b) => Uint8Array.of(b));
  assert.deepEqual(parse(bytes), expected);
  assert.deepEqual(parse([new TextDecoder().decode(TRICKY)]), expected);
});

test("a CR ending one chunk and the LF opening the next are one line end", () => {
  // Counting the LF as a second line end would dispatch "a" on its own.
  assert.deepEqual(parse([utf8("data: a\r"), utf8("\ndata: b\r"), utf8("\n\r"), utf8("\n")]), [
    { event: "message", data: "a\nb", id: "" },
  ]);
});

test("a character split inside its bytes comes out whole", () => {
  const bytes = utf8("data: 世界🎉\n\n");
  for (const cut of [7, 8, 10, 11, 13, 14, 15]) {
    assert.deepEqual(parse(splitAt(bytes, cut)), [{ event: "message", data: "世界🎉", id: "" }]);
  }
  assert.deepEqual(parse(splitAt(bytes, 7, 8, 13, 14, 15)), [
    { event: "message", data: "世界🎉", id: "" },
  ]);
});

test("invalid UTF-8 becomes U+FFFD, as in the Python decoder", () => {
  const bytes = Uint8Array.of(...utf8("data: a"), 0xff, 0xe4, 0xbd, ...utf8("b\n\n"));
  assert.deepEqual(parse([bytes]), [{ event: "message", data: "a\uFFFD\uFFFDb", id: "" }]);
});

test("parseEventStream reads a ReadableStream", async () => {
  const events = [];
  for await (const event of parseEventStream(bodyOf(splitAt(TRICKY, 5, 50, 51, 100)))) {
    events.push(event.data);
  }
  assert.deepEqual(
    events,
    parse([TRICKY]).map((e) => e.data),
  );
});

// --- chat() against a fetch stub ------------------------------------------------------------------

function bodyOf(chunks, { hang = false, signal } = {}) {
  const queue = chunks.map((c) => (typeof c === "string" ? utf8(c) : c));
  return new ReadableStream({
    start(controller) {
      signal?.addEventListener("abort", () =>
        controller.error(new DOMException("The operation was aborted.", "AbortError")),
      );
    },
    pull(controller) {
      if (queue.length) controller.enqueue(queue.shift());
      else if (!hang) controller.close();
      else return new Promise(() => {}); // an answer still being generated
    },
  });
}

/** A fetch that answers with `chunks` (an event stream) or a plain body; records its calls. */
function stubFetch(chunks, { status = 200, headers = {}, hang = false } = {}) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, init, body: init.body ? JSON.parse(init.body) : null });
    if (init.signal?.aborted) throw new DOMException("aborted", "AbortError");
    const type = status === 200 ? "text/event-stream; charset=utf-8" : "application/json";
    return new Response(status === 200 ? bodyOf(chunks, { hang, signal: init.signal }) : chunks, {
      status,
      headers: { "content-type": type, ...headers },
    });
  };
  fetch.calls = calls;
  return fetch;
}

const frame = (seq, event, data) => `id: s1:${seq}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
const STREAM = [
  ": ping\n\n",
  frame(0, "start", { stream_id: "s1", model: "m1" }),
  frame(1, "reasoning", { text: "Think " }),
  frame(2, "delta", { text: "Hel" }),
  frame(3, "delta", { text: "lo\n世界" }),
  frame(4, "tool_call", { index: 0, id: "c1", name: "f", arguments: '{"a":' }),
  frame(5, "tool_call", { index: 0, id: null, name: null, arguments: "1}" }),
  frame(6, "usage", { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 }),
  frame(7, "done", { finish_reason: "stop" }),
].join("");

function recorder() {
  const log = [];
  const on = (name) => (...args) => log.push([name, ...args]);
  return {
    log,
    callbacks: {
      onStart: on("start"),
      onReasoning: on("reasoning"),
      onDelta: (text) => log.push(["delta", text]),
      onToolCall: (fragment, call) => log.push(["tool_call", { ...call }]),
      onUsage: on("usage"),
      onError: (err) => log.push(["error", err.code, err.status, err.retryable]),
      onDone: (result) => log.push(["done", result.finishReason]),
    },
  };
}

test("chat POSTs the conversation and calls back frame by frame", async () => {
  const fetch = stubFetch(splitAt(utf8(STREAM), 3, 60, 61, 150, 151, 152));
  const { log, callbacks } = recorder();
  const llm = new LLMClient("/llm/", { fetch, headers: { "X-Host": "1" } });
  const messages = [{ role: "user", content: "hi" }];
  const result = await llm.chat(messages, { model: "m1", temperature: 0, ...callbacks }).done;

  const [call] = fetch.calls;
  assert.equal(call.url, "/llm/chat");
  assert.equal(call.init.method, "POST");
  assert.equal(call.init.headers.Accept, "text/event-stream");
  assert.equal(call.init.headers["X-Host"], "1");
  assert.deepEqual(call.body, { messages, model: "m1", temperature: 0 });
  assert.deepEqual(log, [
    ["start", { stream_id: "s1", model: "m1" }],
    ["reasoning", "Think ", { text: "Think " }],
    ["delta", "Hel"],
    ["delta", "lo\n世界"],
    ["tool_call", { id: "c1", name: "f", arguments: '{"a":' }],
    ["tool_call", { id: "c1", name: "f", arguments: '{"a":1}' }],
    ["usage", { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 }],
    ["done", "stop"],
  ]);
  assert.equal(result.text, "Hello\n世界");
  assert.equal(result.reasoning, "Think ");
  assert.equal(result.streamId, "s1");
  assert.equal(result.lastEventId, "s1:7");
  assert.equal(result.error, null);
});

test("the stream is also an async iterator of frames", async () => {
  const stream = streamChat("/llm", "hi", { fetch: stubFetch([STREAM]) });
  const frames = [];
  for await (const f of stream) frames.push([f.id, f.event]);
  assert.deepEqual(frames.map(([, e]) => e), [
    "start", "reasoning", "delta", "delta", "tool_call", "tool_call", "usage", "done",
  ]);
  assert.deepEqual(frames[0], ["s1:0", "start"]);
  // Iterating again replays from the start.
  const again = [];
  for await (const f of stream) again.push(f.event);
  assert.equal(again.length, 8);
});

test("a refused request reports the mount's error code and status", async () => {
  const body = JSON.stringify({ error: { code: "upstream_rate_limited", message: "slow down" } });
  const fetch = stubFetch(body, { status: 429, headers: { "retry-after": "2" } });
  const { log, callbacks } = recorder();
  const stream = new LLMClient("/llm", { fetch }).chat("hi", callbacks);
  const result = await stream.done;
  assert.ok(result.error instanceof LLMError);
  assert.equal(result.error.code, "upstream_rate_limited");
  assert.equal(result.error.message, "slow down");
  assert.equal(result.error.status, 429);
  assert.equal(result.error.retryAfter, 2);
  assert.deepEqual(log, [["error", "upstream_rate_limited", 429, true], ["done", "error"]]);
  await assert.rejects(async () => {
    for await (const _ of stream);
  }, (err) => err instanceof LLMError && err.code === "upstream_rate_limited");
});

test("a non-JSON error page still gets a code", async () => {
  const fetch = stubFetch("<html>Bad gateway</html>", { status: 502 });
  const result = await streamChat("/llm", "hi", { fetch }).done;
  assert.equal(result.error.code, "http_502");
  assert.equal(result.error.status, 502);
  assert.match(result.error.message, /HTTP 502.*HTML page/);
});

test("an error frame is reported with its code, then done", async () => {
  const stream = [
    frame(0, "start", { stream_id: "s1", model: "m" }),
    frame(1, "delta", { text: "Part" }),
    frame(2, "error", { code: "upstream_error", message: "overloaded", retryable: true }),
    frame(3, "done", { finish_reason: "error" }),
  ];
  const { log, callbacks } = recorder();
  const chat = streamChat("/llm", "hi", { fetch: stubFetch(stream), ...callbacks });
  const events = [];
  for await (const f of chat) events.push(f.event); // does not throw: the frame is data
  const result = await chat.done;
  assert.deepEqual(events, ["start", "delta", "error", "done"]);
  assert.equal(result.text, "Part");
  assert.equal(result.error.code, "upstream_error");
  assert.equal(result.error.status, undefined);
  assert.deepEqual(log.slice(-2), [["error", "upstream_error", undefined, true], ["done", "error"]]);
});

test("cancel stops the stream by its id, aborts the request, ends as cancelled", async () => {
  const fetch = stubFetch([frame(0, "start", { stream_id: "s", model: "m" }), frame(1, "delta", { text: "a" })], {
    hang: true,
  });
  const { log, callbacks } = recorder();
  let stream;
  const firstDelta = new Promise((resolve) => {
    stream = streamChat("/llm", "hi", { fetch, ...callbacks, onDelta: (t) => resolve(t) });
  });
  assert.equal(await firstDelta, "a");
  stream.cancel();
  const result = await stream.done;
  assert.equal(fetch.calls[0].init.signal.aborted, true);
  // A stop, not just a disconnect (which a resume grace would survive).
  assert.equal(fetch.calls[1].url, "/llm/chat/s/stop");
  assert.equal(fetch.calls[1].init.method, "POST");
  assert.equal(fetch.calls[1].init.keepalive, true);
  assert.equal(result.finishReason, "cancelled");
  assert.equal(result.error, null);
  assert.equal(result.text, "a");
  assert.deepEqual(log.filter(([name]) => name === "error"), []);
});

test("leaving a for-await loop early cancels the stream", async () => {
  const fetch = stubFetch([frame(0, "start", { stream_id: "s", model: "m" })], { hang: true });
  const stream = streamChat("/llm", "hi", { fetch });
  for await (const f of stream) {
    assert.equal(f.event, "start");
    break;
  }
  assert.equal((await stream.done).finishReason, "cancelled");
  assert.equal(fetch.calls[0].init.signal.aborted, true);
});

test("an AbortSignal of the caller's cancels too", async () => {
  const controller = new AbortController();
  const fetch = stubFetch([frame(0, "start", { stream_id: "s", model: "m" })], { hang: true });
  const stream = streamChat("/llm", "hi", { fetch, signal: controller.signal, onStart: () => controller.abort() });
  assert.equal((await stream.done).finishReason, "cancelled");
});

test("an AbortSignal that is already aborted cancels before anything is sent", async () => {
  const fetch = stubFetch([frame(0, "start", { stream_id: "s", model: "m" })], { hang: true });
  const stream = streamChat("/llm", "hi", { fetch, signal: AbortSignal.abort() });
  const result = await stream.done;
  assert.equal(result.finishReason, "cancelled");
  assert.equal(result.error, null);
});

test("a stream cut before its done frame is an error", async () => {
  const result = await streamChat("/llm", "hi", {
    fetch: stubFetch([frame(0, "start", { stream_id: "s", model: "m" }), frame(1, "delta", { text: "x" })]),
  }).done;
  assert.equal(result.error.code, "stream_incomplete");
  assert.equal(result.text, "x");
});

test("a failed connection is a network_error", async () => {
  const fetch = async () => {
    throw new TypeError("Failed to fetch");
  };
  const stream = streamChat("/llm", "hi", { fetch });
  const result = await stream.done;
  assert.equal(result.error.code, "network_error");
  await assert.rejects(async () => {
    for await (const _ of stream);
  }, /Failed to fetch/);
});

test("models() reads the mount's model list", async () => {
  const fetch = async (url) => {
    assert.equal(url, "/llm/models");
    return Response.json({ default: "a", models: ["a", "b"] });
  };
  assert.deepEqual(await new LLMClient("/llm", { fetch }).models(), { default: "a", models: ["a", "b"] });
});

// Read one response of the mount's /ai-sdk/chat with the Vercel AI SDK's own code, exactly as
// useChat does: DefaultChatTransport.sendMessages() posts the body and hands the response to
// its processResponseStream() = parseJsonEventStream({stream, schema: uiMessageChunkSchema});
// readUIMessageStream() then builds the UIMessage the way useChat's Chat does.
//
//   node validate.mjs [--sdk ai|ai-v5-strict] [--exact | --chat [--echo-tools]] URL BODY_JSON
//
// BODY_JSON is the body useChat would send ({id, messages, trigger, messageId?} plus what the
// transport's `body` option adds, e.g. model). By default the transport rebuilds it from those
// fields (so the request is byte-for-byte useChat's); --exact posts BODY_JSON unchanged
// (through the transport's prepareSendMessagesRequest hook), for malformed bodies. --chat runs
// the conversation through the SDK's Chat class itself (AbstractChat: the engine useChat wraps
// in React state) and prints what a useChat user would see: {chatStatus, chatError, messages}.
// --echo-tools makes that Chat run every tool call in the "browser" (output: {echo: input}) and
// send the conversation back automatically, as a useChat app with client-side tools does.
//
// Prints one JSON object: {sdk, version, status, headers, chunks, errors, message} for a stream,
// {sdk, version, status, headers, httpError} for an HTTP error. Exits 1 when the SDK rejected
// anything that was not an `error` chunk (a schema violation, an out-of-order chunk, ...).

import { readFileSync } from "node:fs";

const args = process.argv.slice(2);
let sdk = "ai";
let exact = false;
let chatMode = false;
let echoTools = false;
const positional = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--sdk") sdk = args[++i];
  else if (args[i] === "--exact") exact = true;
  else if (args[i] === "--chat") chatMode = true;
  else if (args[i] === "--echo-tools") echoTools = true;
  else positional.push(args[i]);
}
if (positional.length !== 2) {
  console.error("usage: node validate.mjs [--sdk ai|ai-v5-strict] [--exact] URL BODY_JSON");
  process.exit(2);
}
const [url, bodyText] = positional;
const body = JSON.parse(bodyText);

// A stuck stream must fail the test, not hang it.
setTimeout(() => {
  console.error("validate.mjs: timed out after 20 s");
  process.exit(3);
}, 20_000).unref();

const {
  AbstractChat,
  DefaultChatTransport,
  lastAssistantMessageIsCompleteWithToolCalls,
  readUIMessageStream,
} = await import(sdk);
const pkg = JSON.parse(
  readFileSync(new URL(`./node_modules/${sdk}/package.json`, import.meta.url), "utf8"),
);

// Record what the server answered, before the transport looks at it.
const seen = { status: 0, headers: {}, requests: 0 };
async function recordingFetch(input, init) {
  seen.requests += 1;
  const response = await fetch(input, init);
  seen.status = response.status;
  for (const name of ["content-type", "x-vercel-ai-ui-message-stream", "cache-control"]) {
    seen.headers[name] = response.headers.get(name);
  }
  return response;
}

const { id, messages, trigger, messageId, ...extra } = body;
const transport = new DefaultChatTransport({
  api: url,
  body: extra,
  fetch: recordingFetch,
  ...(exact ? { prepareSendMessagesRequest: () => ({ body }) } : {}),
});

const result = { sdk, version: pkg.version };

if (chatMode) {
  // useChat's state, minus React: the same ChatState interface ReactChatState implements.
  class MemoryState {
    constructor(messages) {
      this.status = "ready";
      this.error = undefined;
      this.messages = messages;
    }
    pushMessage(message) {
      this.messages = this.messages.concat(message);
    }
    popMessage() {
      this.messages = this.messages.slice(0, -1);
    }
    replaceMessage(index, message) {
      this.messages = this.messages.with(index, this.snapshot(message));
    }
    snapshot(thing) {
      return structuredClone(thing);
    }
  }
  const tools = echoTools
    ? {
        // Not awaited, as the SDK's docs say: the result is applied once the stream settles.
        onToolCall: ({ toolCall }) => {
          const { toolName, toolCallId, input } = toolCall;
          // addToolResult was renamed addToolOutput in AI SDK 6.
          const addOutput = chat.addToolOutput ?? chat.addToolResult;
          addOutput({ tool: toolName, toolCallId, output: { echo: input } });
        },
        sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithToolCalls,
      }
    : {};
  const chat = new (class extends AbstractChat {})({
    id: id ?? "chat",
    transport,
    state: new MemoryState(structuredClone(messages)),
    ...tools,
  });
  // No new message: submit the conversation as it stands, as useChat does after the user's
  // message has been added to its state.
  await chat.sendMessage();
  console.log(
    JSON.stringify({
      ...result,
      ...seen,
      chatStatus: chat.status,
      chatError: chat.error ? String(chat.error.message) : null,
      messages: chat.messages,
    }),
  );
  process.exit(0);
}
let stream;
try {
  stream = await transport.sendMessages({
    chatId: id ?? "chat",
    messages: Array.isArray(messages) ? messages : [],
    trigger: trigger ?? "submit-message",
    messageId,
    abortSignal: undefined,
  });
} catch (error) {
  // The transport throws the response text for any non-2xx answer.
  let httpError;
  try {
    httpError = JSON.parse(error.message);
  } catch {
    httpError = { unparsed: String(error.message) };
  }
  console.log(JSON.stringify({ ...result, ...seen, httpError }));
  process.exit(seen.status >= 400 ? 0 : 1);
}

const chunks = [];
const recorded = stream.pipeThrough(
  new TransformStream({
    transform(chunk, controller) {
      chunks.push(structuredClone(chunk));
      controller.enqueue(chunk);
    },
  }),
);

// Like Chat: an assistant message at the end of the conversation is continued, not replaced.
const last = Array.isArray(messages) ? messages.at(-1) : undefined;
const errors = [];
let message;
for await (const snapshot of readUIMessageStream({
  stream: recorded,
  message: last?.role === "assistant" ? structuredClone(last) : undefined,
  onError: (error) => errors.push(error),
})) {
  message = snapshot;
}

const errorTexts = new Set(chunks.filter((c) => c.type === "error").map((c) => c.errorText));
const unexpected = errors.filter((e) => !errorTexts.has(e?.message));
console.log(
  JSON.stringify({
    ...result,
    ...seen,
    chunks,
    errors: errors.map((e) => String(e?.message ?? e)),
    message,
  }),
);
if (unexpected.length) {
  for (const e of unexpected) console.error(`AI SDK ${pkg.version} rejected the stream:`, e);
  process.exit(1);
}

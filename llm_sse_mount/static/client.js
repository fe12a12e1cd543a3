// llm_sse_mount browser client: an ES module with no dependencies, served by the mount itself
// at GET <base>/client.js (for example /llm/client.js).
//
//   import { LLMClient } from "/llm/client.js";
//   const llm = new LLMClient("/llm");
//   const stream = llm.chat([{ role: "user", content: "Hello" }], {
//     onDelta: (text) => { answer.textContent += text; },
//     onError: (err) => { console.error(err.code, err.message); },
//   });
//   stopButton.onclick = () => stream.cancel();    // stops the answer: the upstream call ends
//   const result = await stream.done;             // { text, reasoning, finishReason, usage, ... }
//
// or, without callbacks:
//
//   for await (const frame of llm.chat(messages)) {
//     if (frame.event === "delta") answer.textContent += frame.data.text;
//   }
//
// Why fetch and not EventSource: EventSource can only GET, so it cannot send a conversation.
// The event stream is parsed here with the WHATWG rules, as the Python decoder does
// (llm_sse_mount/sse_decoder.py): CR, LF and CRLF line ends (also split across chunks),
// comments, id, retry, multi-line data, and UTF-8 characters split across network chunks
// (TextDecoder in stream mode).

/** Errors carry a stable `code` (the mount's error codes; see the README). */
export class LLMError extends Error {
  /**
   * @param {string} code      e.g. "upstream_rate_limited", "invalid_request", "network_error"
   * @param {string} message   human-readable
   * @param {{status?: number, retryable?: boolean, retryAfter?: number|null}} [extra]
   *   status: the HTTP status of a refused request (undefined for errors inside the stream)
   */
  constructor(code, message, { status, retryable = false, retryAfter = null } = {}) {
    super(message);
    this.name = "LLMError";
    this.code = code;
    this.status = status;
    this.retryable = retryable;
    this.retryAfter = retryAfter;
  }
}

// --- the event stream parser --------------------------------------------------------------------

/**
 * Incremental text/event-stream parser. Feed it byte chunks (Uint8Array) or strings as they
 * arrive; each call returns the events those chunks completed, as
 * `{ event, data, id, retry }` (event defaults to "message"; id is the last event ID in force).
 * `end()` finishes the stream: an unterminated last event is discarded, as the spec says.
 */
export class SSEParser {
  constructor() {
    // fatal: false replaces invalid bytes with U+FFFD; stream mode keeps a character that is
    // split across chunks until its last byte arrives; a leading BOM is stripped.
    this._decoder = new TextDecoder("utf-8");
    this._buffer = ""; // text of the unfinished line
    this._skipLF = false; // the last chunk ended in CR: a LF opening the next one ends nothing
    this._data = [];
    this._eventType = "";
    this._idBuffer = "";
    this._blockRetry = null;
    this.lastEventId = "";
    this.retry = null;
  }

  /** @param {Uint8Array|ArrayBuffer|string} chunk @returns {Array<{event: string, data: string, id: string, retry: number|null}>} */
  feed(chunk) {
    const text =
      typeof chunk === "string" ? chunk : this._decoder.decode(chunk, { stream: true });
    return this._text(text);
  }

  /** End of input; returns the events still pending (always none, by the spec). */
  end() {
    const rest = this._decoder.decode();
    const events = rest ? this._text(rest) : [];
    this._buffer = "";
    this._skipLF = false;
    this._data = [];
    this._eventType = "";
    this._blockRetry = null;
    return events;
  }

  _text(text) {
    const events = [];
    if (!text) return events;
    if (this._skipLF) {
      this._skipLF = false;
      if (text[0] === "\n") text = text.slice(1);
    }
    let start = 0;
    for (;;) {
      const cr = text.indexOf("\r", start);
      const lf = text.indexOf("\n", start);
      let end;
      if (cr < 0 && lf < 0) break;
      if (cr < 0 || (lf >= 0 && lf < cr)) end = lf;
      else end = cr;
      this._line(this._buffer + text.slice(start, end), events);
      this._buffer = "";
      if (text[end] === "\r") {
        if (end + 1 === text.length) {
          this._skipLF = true; // the LF of a CRLF may come in the next chunk
          start = end + 1;
          break;
        }
        start = text[end + 1] === "\n" ? end + 2 : end + 1;
      } else {
        start = end + 1;
      }
    }
    this._buffer += text.slice(start);
    return events;
  }

  _line(line, events) {
    if (line === "") {
      this.lastEventId = this._idBuffer;
      const retry = this._blockRetry;
      this._blockRetry = null;
      if (this._data.length > 0) {
        events.push({
          event: this._eventType || "message",
          data: this._data.join("\n"),
          id: this.lastEventId,
          retry,
        });
        this._data = [];
      }
      this._eventType = "";
      return;
    }
    const colon = line.indexOf(":");
    if (colon === 0) return; // a comment (keep-alive pings are comments)
    let field = line;
    let value = "";
    if (colon > 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value[0] === " ") value = value.slice(1);
    }
    if (field === "data") {
      this._data.push(value);
    } else if (field === "event") {
      this._eventType = value;
    } else if (field === "id") {
      if (!value.includes("\0")) this._idBuffer = value;
    } else if (field === "retry") {
      if (/^[0-9]+$/.test(value)) {
        this.retry = Number(value);
        this._blockRetry = this.retry;
      }
    }
  }
}

/**
 * The events of a byte stream (a fetch Response body), as an async iterator.
 * @param {ReadableStream<Uint8Array>} body
 */
export async function* parseEventStream(body) {
  const parser = new SSEParser();
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield* parser.feed(value);
    }
    yield* parser.end();
  } finally {
    // Leaving early (break, cancel, error) releases the connection.
    reader.cancel().catch(() => {});
  }
}

// --- one chat stream ----------------------------------------------------------------------------

function parseJSON(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

async function httpError(response) {
  // The mount answers {"error": {"code", "message"}}; a proxy in between may answer anything.
  const text = await response.text().catch(() => "");
  const body = parseJSON(text);
  const err = body && typeof body === "object" ? body.error : null;
  const retryAfterHeader = Number(response.headers.get("retry-after"));
  const retryAfter = Number.isFinite(retryAfterHeader) && retryAfterHeader > 0 ? retryAfterHeader : null;
  const status = response.status;
  const retryable = status === 429 || status === 502 || status === 503 || status === 504;
  if (err && typeof err === "object" && typeof err.code === "string") {
    return new LLMError(err.code, String(err.message ?? err.code), { status, retryable, retryAfter });
  }
  const detail = text.trim().startsWith("<") ? "an HTML page" : text.trim().slice(0, 200);
  return new LLMError(
    `http_${status}`,
    `HTTP ${status} ${response.statusText}`.trim() + (detail ? `: ${detail}` : ""),
    { status, retryable, retryAfter },
  );
}

/**
 * One streamed answer: callbacks fire as frames arrive, `done` resolves with the result
 * (it never rejects: a failure is `result.error`), and the stream is an async iterable of the
 * native frames `{ event, data, id }`. Iterating throws an LLMError when the request was refused
 * or the connection broke; an `error` frame is yielded like any frame (then `done`).
 * Leaving a `for await` loop early cancels the stream.
 */
export class ChatStream {
  constructor(url, body, options) {
    this._options = options;
    this._url = url;
    this._controller = new AbortController();
    this._frames = [];
    this._waiters = [];
    this._finished = false;
    this._failure = null; // an LLMError that ends iteration by being thrown
    this.cancelled = false;
    if (options.signal) {
      if (options.signal.aborted) this.cancel();
      else options.signal.addEventListener("abort", () => this.cancel(), { once: true });
    }
    /** The result so far (complete once `done` resolves). */
    this.result = {
      streamId: null,
      model: null,
      text: "",
      reasoning: "",
      toolCalls: [],
      usage: null,
      finishReason: null,
      error: null,
      lastEventId: null,
    };
    this.done = this._run(url, body);
  }

  /**
   * Stop the answer. A stop is not a disconnect: with a resume grace the mount keeps an
   * answer going when the connection merely drops, so once the stream id is known this asks
   * the mount to stop it (`POST <base>/chat/<id>/stop`, any worker), then aborts the request.
   */
  cancel() {
    if (this._finished || this.cancelled) return;
    this.cancelled = true;
    const streamId = this.result?.streamId;
    if (streamId) {
      const fetchImpl = this._options.fetch ?? globalThis.fetch.bind(globalThis);
      // keepalive: the stop still goes out when the page is closing.
      fetchImpl(`${this._url}/${encodeURIComponent(streamId)}/stop`, {
        method: "POST",
        headers: { ...this._options.headers },
        keepalive: true,
        cache: "no-store",
      }).catch(() => {}); // best effort: the abort below still ends a stream without grace
    }
    this._controller.abort();
  }

  async _run(url, body) {
    const fetchImpl = this._options.fetch ?? globalThis.fetch.bind(globalThis);
    const result = this.result;
    let sawDone = false;
    try {
      const response = await fetchImpl(url, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          Accept: "text/event-stream",
          ...this._options.headers,
        },
        body: JSON.stringify(body),
        signal: this._controller.signal,
        cache: "no-store",
      });
      if (!response.ok) throw await httpError(response);
      const type = response.headers.get("content-type") ?? "";
      if (!type.includes("text/event-stream") || !response.body) {
        throw new LLMError(
          "bad_response",
          `expected an event stream, got ${type || "no content type"}`,
          { status: response.status },
        );
      }
      for await (const sse of parseEventStream(response.body)) {
        const frame = { event: sse.event, data: parseJSON(sse.data), id: sse.id };
        if (frame.data === null) continue; // not one of ours: ignore rather than fail
        result.lastEventId = sse.id || result.lastEventId;
        if (frame.event === "done") {
          sawDone = true;
          result.finishReason = frame.data.finish_reason ?? null;
          this._push(frame);
          break; // exactly once, always last
        }
        this._apply(frame);
        this._push(frame);
      }
      if (!sawDone && !this.cancelled) {
        throw new LLMError("stream_incomplete", "the stream ended before its last frame", {
          retryable: true,
        });
      }
    } catch (exc) {
      if (this.cancelled) {
        result.finishReason = "cancelled";
      } else {
        const err =
          exc instanceof LLMError
            ? exc
            : new LLMError("network_error", `the connection failed: ${exc?.message ?? exc}`, {
                retryable: true,
              });
        result.error = err;
        result.finishReason = "error";
        this._failure = err;
        this._call("onError", err);
      }
    }
    if (this.cancelled && result.finishReason !== "cancelled" && !sawDone) {
      result.finishReason = "cancelled";
    }
    this._finished = true;
    this._wake();
    this._call("onDone", result);
    return result;
  }

  _apply(frame) {
    const { event, data } = frame;
    const result = this.result;
    if (event === "start") {
      result.streamId = data.stream_id ?? null;
      result.model = data.model ?? null;
      this._call("onStart", data);
    } else if (event === "delta") {
      result.text += data.text;
      this._call("onDelta", data.text, data);
    } else if (event === "reasoning") {
      result.reasoning += data.text;
      this._call("onReasoning", data.text, data);
    } else if (event === "tool_call") {
      const calls = result.toolCalls;
      const call = (calls[data.index] ??= { id: null, name: null, arguments: "" });
      call.id = data.id ?? call.id;
      call.name = data.name ?? call.name;
      call.arguments += data.arguments ?? "";
      this._call("onToolCall", data, call);
    } else if (event === "usage") {
      result.usage = data;
      this._call("onUsage", data);
    } else if (event === "error") {
      const err = new LLMError(String(data.code), String(data.message ?? data.code), {
        retryable: Boolean(data.retryable),
      });
      result.error = err;
      this._call("onError", err);
    }
  }

  _call(name, ...args) {
    const fn = this._options[name];
    if (typeof fn !== "function") return;
    try {
      fn(...args);
    } catch (exc) {
      // A page's callback bug must not break the stream; surface it in the console.
      console.error(`llm client: ${name} callback failed`, exc);
    }
  }

  _push(frame) {
    this._frames.push(frame);
    this._wake();
  }

  _wake() {
    const waiters = this._waiters;
    this._waiters = [];
    for (const wake of waiters) wake();
  }

  async *[Symbol.asyncIterator]() {
    let i = 0;
    try {
      for (;;) {
        if (i < this._frames.length) {
          yield this._frames[i++];
          continue;
        }
        if (this._finished) break;
        await new Promise((wake) => this._waiters.push(wake));
      }
      if (this._failure) throw this._failure;
    } finally {
      if (!this._finished) this.cancel(); // the loop was left early
    }
  }
}

// --- the client ---------------------------------------------------------------------------------

/**
 * A client for one mount.
 * @param {string} [base] where the mount is (default "/llm"); absolute URLs work too
 * @param {{fetch?: typeof fetch, headers?: Record<string, string>}} [options]
 *   fetch: a fetch implementation (tests, or one that adds credentials);
 *   headers: sent with every request (for example an Authorization header of the host's)
 */
export class LLMClient {
  constructor(base = "/llm", options = {}) {
    this.base = String(base).replace(/\/+$/, "");
    this.options = options;
  }

  /**
   * Stream an answer to a conversation.
   * @param {Array<{role: string, content: string}>|string} messages  (a string is one user message)
   * @param {object} [options] model, temperature, top_p, max_tokens, stop; signal (an
   *   AbortSignal); callbacks onStart(data), onDelta(text), onReasoning(text),
   *   onToolCall(fragment, call), onUsage(usage), onError(LLMError), onDone(result)
   * @returns {ChatStream}
   */
  chat(messages, options = {}) {
    if (typeof messages === "string") messages = [{ role: "user", content: messages }];
    const body = { messages };
    for (const key of ["model", "temperature", "top_p", "max_tokens", "stop"]) {
      if (options[key] !== undefined && options[key] !== null && options[key] !== "") {
        body[key] = options[key];
      }
    }
    return new ChatStream(`${this.base}/chat`, body, {
      ...options,
      fetch: options.fetch ?? this.options.fetch,
      headers: { ...this.options.headers, ...options.headers },
    });
  }

  /** `{ default, models }` from `<base>/models`. */
  async models() {
    const fetchImpl = this.options.fetch ?? globalThis.fetch.bind(globalThis);
    const response = await fetchImpl(`${this.base}/models`, {
      headers: { Accept: "application/json", ...this.options.headers },
    });
    if (!response.ok) throw await httpError(response);
    return response.json();
  }
}

/** Shorthand: `streamChat("/llm", messages, options)`. */
export function streamChat(base, messages, options = {}) {
  return new LLMClient(base, options).chat(messages, options);
}

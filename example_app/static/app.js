// The example page: a chat over /llm/client.js. Everything it shows comes from the callbacks.
import { LLMClient } from "/llm/client.js";

const llm = new LLMClient("/llm");
const $ = (selector) => document.querySelector(selector);
const form = $("#ask");
const prompt = $("#prompt");
const send = $("#send");
const stop = $("#stop");
const log = $("#log");
const modelPicker = $("#model");
const template = $("#turn");

/** The conversation so far, sent back with every question. */
const conversation = [];
let current = null; // the ChatStream being shown
let chatNumber = 0; // "New chat" starts another: a late answer must not join the new one

async function loadModels() {
  try {
    const { default: preferred, models } = await llm.models();
    modelPicker.replaceChildren(
      ...models.map((name) => new Option(name, name, false, name === preferred)),
    );
    modelPicker.disabled = models.length < 2;
  } catch (err) {
    modelPicker.replaceChildren(new Option("(default)", ""));
    console.warn("could not list models", err);
  }
}

function formatStats({ started, firstTokenAt, lastTokenAt, tokens, usage, finishReason }) {
  const parts = [];
  const now = performance.now();
  if (firstTokenAt === null) {
    parts.push(`waiting ${((now - started) / 1000).toFixed(1)} s`);
  } else {
    parts.push(`first token ${Math.round(firstTokenAt - started)} ms`);
    const seconds = ((lastTokenAt ?? now) - firstTokenAt) / 1000;
    const count = usage?.completion_tokens ?? tokens;
    if (seconds > 0 && count > 1) {
      const approx = usage ? "" : "≈";
      parts.push(`${approx}${(count / seconds).toFixed(1)} tokens/s`);
    }
  }
  if (usage) {
    parts.push(
      `${usage.total_tokens} tokens (${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion)`,
    );
  } else if (tokens) {
    parts.push(`${tokens} chunks`);
  }
  // "stopped" and errors are shown elsewhere; a length or content-filter stop is worth a word.
  if (finishReason && !["stop", "cancelled", "error"].includes(finishReason)) {
    parts.push(`finish reason: ${finishReason}`);
  }
  return parts.join(" · ");
}

function setBusy(busy) {
  send.disabled = busy;
  stop.disabled = !busy;
}

function ask(question) {
  $("#empty")?.remove();
  const turn = template.content.firstElementChild.cloneNode(true);
  const el = (id) => turn.querySelector(`[data-testid=${id}]`);
  const answer = el("answer");
  const reasoning = el("reasoning");
  const details = turn.querySelector("details");
  const error = el("error");
  const stats = el("stats");
  turn.querySelector(".question").textContent = question;
  log.append(turn);
  turn.scrollIntoView({ block: "end" });

  const chat = chatNumber;
  conversation.push({ role: "user", content: question });
  const figures = {
    started: performance.now(),
    firstTokenAt: null,
    lastTokenAt: null,
    tokens: 0,
    usage: null,
    finishReason: null,
  };
  const token = () => {
    const now = performance.now();
    figures.firstTokenAt ??= now;
    figures.lastTokenAt = now;
    figures.tokens += 1;
  };
  const showStats = () => {
    stats.textContent = formatStats(figures);
  };
  const ticker = setInterval(showStats, 250); // keeps "waiting" and tokens/s moving

  setBusy(true);
  current = llm.chat([...conversation], {
    model: modelPicker.value || undefined,
    onStart(data) {
      turn.dataset.model = data.model;
    },
    onReasoning(text) {
      token();
      details.hidden = false;
      reasoning.append(text);
      showStats();
    },
    onDelta(text) {
      token();
      // append() adds a text node: no HTML is ever parsed, and pre-wrap keeps the newlines.
      answer.append(text);
      turn.scrollIntoView({ block: "end" });
      showStats();
    },
    onUsage(usage) {
      figures.usage = usage;
      showStats();
    },
    onError(err) {
      // The code first (stable, searchable in the docs), then the status, then the message.
      const code = document.createElement("code");
      code.textContent = err.code;
      const status = err.status ? ` · HTTP ${err.status}` : "";
      error.replaceChildren(code, `${status}: ${err.message}`);
      error.hidden = false;
    },
    onDone(result) {
      clearInterval(ticker);
      figures.finishReason = result.finishReason;
      showStats();
      const status =
        result.finishReason === "cancelled" ? "stopped" : result.error ? "error" : "done";
      if (status === "stopped") stats.textContent += " · stopped";
      if (chat !== chatNumber) {
        // this answer belonged to a conversation that "New chat" cleared
      } else if (result.text) {
        conversation.push({ role: "assistant", content: result.text });
      } else {
        conversation.pop(); // nothing came back: the question can simply be asked again
        if (status === "error") prompt.value ||= question;
      }
      turn.dataset.status = status;
      current = null;
      setBusy(false);
      prompt.focus();
    },
  });
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const question = prompt.value.trim();
  if (!question || current) return;
  prompt.value = "";
  ask(question);
});

prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

stop.addEventListener("click", () => current?.cancel());

$("#clear").addEventListener("click", () => {
  chatNumber += 1;
  current?.cancel();
  conversation.length = 0;
  log.replaceChildren();
  prompt.focus();
});

loadModels();
prompt.focus();

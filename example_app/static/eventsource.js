// The simplest use: EventSource on GET /llm/chat?prompt=..., no library at all.
const form = document.querySelector("#ask");
const prompt = document.querySelector("#prompt");
const send = document.querySelector("#send");
const stop = document.querySelector("#stop");
const turn = document.querySelector("#turn");
const answer = turn.querySelector("[data-testid=answer]");
const error = turn.querySelector("[data-testid=error]");
let source = null;

function finish(status) {
  source?.close(); // without close(), EventSource reconnects by itself
  source = null;
  turn.dataset.status = status;
  send.disabled = false;
  stop.disabled = true;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (source || !prompt.value.trim()) return;
  answer.textContent = "";
  error.hidden = true;
  turn.dataset.status = "streaming";
  send.disabled = true;
  stop.disabled = false;
  source = new EventSource(`/llm/chat?prompt=${encodeURIComponent(prompt.value)}`);
  source.addEventListener("delta", (e) => answer.append(JSON.parse(e.data).text));
  source.addEventListener("error", (e) => {
    if (e.data) {
      // An "error" frame from the mount; its "done" frame follows.
      const data = JSON.parse(e.data);
      error.textContent = `${data.message} (${data.code})`;
      error.hidden = false;
    } else if (source.readyState === EventSource.CONNECTING) {
      // The connection dropped: EventSource reconnects by itself with Last-Event-ID, and the
      // mount resumes the stream after the last frame this page saw.
      turn.dataset.status = "reconnecting";
    } else {
      // Refused (an HTTP error status): EventSource gives up and cannot read why.
      error.textContent = "the request failed (connection_failed)";
      error.hidden = false;
      finish("error");
    }
  });
  source.addEventListener("delta", () => {
    if (turn.dataset.status === "reconnecting") turn.dataset.status = "streaming";
  });
  source.addEventListener("done", (e) => {
    const reason = JSON.parse(e.data).finish_reason;
    finish(reason === "error" ? "error" : reason === "cancelled" ? "stopped" : "done");
  });
});
stop.addEventListener("click", () => finish("stopped"));
prompt.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    form.requestSubmit();
  }
});

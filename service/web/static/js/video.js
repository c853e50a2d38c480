/**
 * A video page: the player; the summary with key points and chapters; the transcript, following
 * the player; questions with answers streamed as they are written, each citation playing its
 * moment; and the video's actions.
 */
import { ApiError, api, events, session } from "./api.js";
import { announce, errorNotice, fill, formatSpan, formatTime, h, isAbort } from "./dom.js";
import { createPlayer } from "./player.js";
import { FINAL_STATUSES, describeProgress, followProgress } from "./progress.js";

/** Beside a segment the speech recognizer was unsure of (`low_confidence`). */
const UNSURE_LABEL = "(unsure)";

const KEY_POINT_MATCH = 0.6;
const CHAT_PAGE_SIZE = 100;

export async function renderVideo(main, route, signal) {
  const path = `/videos/${encodeURIComponent(route.id)}`;
  const video = await api(path, { signal });
  const player = createPlayer(video);
  const page = new VideoPage(video, path, player, signal);
  await page.render();
  document.title = `${video.filename} · Video Analyzer`;
  main.replaceChildren(page.element);
  if (route.at !== null) player.seek(route.at, { play: false });
  return { seek: (seconds) => player.seek(seconds, { play: false }) };
}

class VideoPage {
  constructor(video, path, player, signal) {
    this.video = video;
    this.path = path;
    this.player = player;
    this.signal = signal;
    this.status = h("p", { class: "status", "aria-live": "polite" });
    this.bar = h("progress", { max: 1, "aria-label": "Processing" });
    this.actions = h("div", { class: "actions" });
    this.summary = h("section", { class: "summary", "aria-labelledby": "summary-title" });
    this.transcript = h("section", { class: "transcript", "aria-labelledby": "transcript-title" });
    this.chat = h("section", { class: "chat", "aria-labelledby": "chat-title" });
    this.element = h(
      "article",
      { class: "video-page" },
      h("h1", { tabindex: -1 }, video.filename),
      this.status,
      this.bar,
      this.actions,
      h(
        "div",
        { class: "columns" },
        h("div", { class: "primary" }, player.element, this.summary),
        h("div", { class: "secondary" }, this.transcript, this.chat),
      ),
    );
  }

  async render() {
    this.showStatus();
    this.showActions();
    if (this.video.status !== "completed") {
      this.summary.replaceChildren(
        h("h2", { id: "summary-title" }, "Summary"),
        h("p", { class: "notice" }, "The summary, the transcript and questions come once processing completes."),
      );
      this.transcript.replaceChildren();
      this.chat.replaceChildren();
      if (!FINAL_STATUSES.has(this.video.status)) this.follow();
      return;
    }
    this.showSummary();
    this.showTranscript();
    await this.showChat();
  }

  showStatus() {
    const { status, job } = this.video;
    this.status.textContent = describeProgress({ status, ...job }) + (job.note ? ` (${job.note})` : "");
    this.status.dataset.status = status;
    this.bar.hidden = FINAL_STATUSES.has(status);
    this.bar.value = job.progress;
  }

  async follow() {
    try {
      const last = await followProgress(
        this.video.id,
        (event) => {
          this.video = { ...this.video, status: event.status, job: { ...this.video.job, ...event } };
          this.showStatus();
        },
        this.signal,
      );
      if (last && FINAL_STATUSES.has(last.status)) {
        this.video = await api(this.path, { signal: this.signal });
        await this.render();
        announce(`${this.video.filename}: ${describeProgress({ status: this.video.status, ...this.video.job })}`);
      }
    } catch (error) {
      if (!isAbort(error)) this.status.textContent = `Progress unavailable: ${error.message}`;
    }
  }

  /** With users off every video is everyone's, so making one public is offered to a signed-in user only. */
  showActions() {
    const { status, is_public: isPublic } = this.video;
    const busy = !FINAL_STATUSES.has(status);
    fill(
      this.actions,
      session.token
        ? h(
            "button",
            { type: "button", onclick: () => this.act(() => this.togglePublic()) },
            isPublic ? "Make private" : "Make public",
          )
        : null,
      h(
        "button",
        { type: "button", disabled: busy || !this.video.file, onclick: () => this.act(() => this.reprocess()) },
        "Process again",
      ),
      h("button", { type: "button", class: "danger", onclick: () => this.act(() => this.remove()) }, "Delete"),
    );
  }

  async act(action) {
    try {
      await action();
    } catch (error) {
      if (!isAbort(error)) this.actions.append(errorNotice(error.message));
    }
  }

  async togglePublic() {
    this.video = await api(this.path, {
      method: "PATCH",
      json: { is_public: !this.video.is_public },
      signal: this.signal,
    });
    this.showActions();
    announce(this.video.is_public ? "The video is public" : "The video is private");
  }

  async reprocess() {
    this.video = await api(`${this.path}/reprocess`, { method: "POST", signal: this.signal });
    await this.render();
    announce("Processing again");
  }

  async remove() {
    if (!window.confirm(`Delete “${this.video.filename}” and its file? This cannot be undone.`)) return;
    await api(this.path, { method: "DELETE", signal: this.signal });
    announce(`${this.video.filename} deleted`);
    window.location.hash = "#/";
  }

  showSummary() {
    const summary = this.video.summary;
    const parts = [h("h2", { id: "summary-title" }, "Summary")];
    if (summary?.error || !summary) {
      parts.push(
        errorNotice(summary?.error ? `The summary failed: ${summary.error}` : "There is no summary."),
        h("button", { type: "button", onclick: () => this.act(() => this.summarize()) }, "Summarize again"),
      );
    }
    if (summary?.text) parts.push(h("p", { class: "summary-text" }, summary.text));
    if (summary?.key_points.length) {
      parts.push(
        h("h3", {}, "Key points"),
        h(
          "ul",
          { class: "key-points" },
          summary.key_points.map((point) => this.keyPoint(point)),
        ),
      );
    }
    if (summary?.chapters.length) {
      parts.push(
        h("h3", {}, "Chapters"),
        h(
          "ol",
          { class: "chapters" },
          summary.chapters.map((chapter) =>
            h(
              "li",
              {},
              this.seekButton(
                chapter.start,
                h("span", { class: "time" }, formatTime(chapter.start)),
                h("span", {}, chapter.title),
              ),
            ),
          ),
        ),
      );
    }
    this.summary.replaceChildren(...parts);
  }

  async summarize() {
    this.video.summary = await api(`${this.path}/summarize`, { method: "POST", signal: this.signal });
    this.showSummary();
  }

  /** A key point that is (mostly) the words of one transcript segment seeks to it, as the local
   * provider's key points are; one in other words (a language model's) is text alone. */
  keyPoint(point) {
    const segment = matchingSegment(point, this.video.transcript.segments);
    return h(
      "li",
      {},
      segment
        ? this.seekButton(segment.start, h("span", { class: "time" }, formatTime(segment.start)), h("span", {}, point))
        : h("span", {}, point),
    );
  }

  seekButton(seconds, ...content) {
    return h(
      "button",
      { type: "button", class: "seek", dataset: { start: seconds }, onclick: () => this.player.seek(seconds) },
      ...content,
    );
  }

  showTranscript() {
    const segments = this.video.transcript?.segments ?? [];
    const title = h("h2", { id: "transcript-title" }, "Transcript");
    if (!segments.length) {
      this.transcript.replaceChildren(
        title,
        h("p", { class: "notice" }, this.video.transcript?.text || "No speech was found."),
      );
      return;
    }
    const buttons = segments.map((segment) =>
      this.seekButton(
        segment.start,
        h("span", { class: "time" }, formatTime(segment.start)),
        h("span", {}, segment.text),
        segment.low_confidence ? h("span", { class: "unsure" }, UNSURE_LABEL) : null,
      ),
    );
    const list = h(
      "ol",
      { class: "segments" },
      buttons.map((button) => h("li", {}, button)),
    );
    this.transcript.replaceChildren(title, list);
    followPlayback(this.player.media, segments, buttons, list);
  }

  async showChat() {
    const entries = h("ol", { class: "chat-entries", "aria-label": "Questions and answers, oldest first" });
    const input = h("input", {
      id: "question",
      name: "question",
      type: "text",
      maxlength: 2000,
      required: true,
      autocomplete: "off",
    });
    const ask = h("button", { type: "submit" }, "Ask");
    const form = h(
      "form",
      { class: "ask" },
      h("label", { for: "question" }, "Your question"),
      h("div", { class: "ask-row" }, input, ask),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const question = input.value.trim();
      if (!question) return;
      input.value = "";
      ask.disabled = true;
      this.ask(question, entries).finally(() => {
        ask.disabled = false;
        input.focus();
      });
    });
    entries.append(...(await this.history()).map((entry) => this.chatEntry(entry)));
    this.chat.replaceChildren(h("h2", { id: "chat-title" }, "Ask about this video"), entries, form);
  }

  async history() {
    const entries = [];
    let cursor = null;
    do {
      const query = new URLSearchParams({ limit: CHAT_PAGE_SIZE });
      if (cursor) query.set("cursor", cursor);
      const page = await api(`${this.path}/chat?${query}`, { signal: this.signal });
      entries.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    return entries;
  }

  chatEntry(entry) {
    const citations = entry.citations.map((citation) => h("li", {}, this.citationChip(citation)));
    return h(
      "li",
      { class: "chat-entry", dataset: { entryId: entry.id } },
      h("p", { class: "question" }, entry.question),
      h("p", { class: "answer" }, entry.answer),
      entry.note ? h("p", { class: "note" }, entry.note) : null,
      citations.length ? h("ul", { class: "citations", "aria-label": "Moments cited" }, citations) : null,
    );
  }

  /** A cited moment that plays it; marked when it quotes speech the recognizer was unsure of. */
  citationChip(citation) {
    const span = formatSpan(citation.start, citation.end);
    const doubt = citation.low_confidence ? " (transcribed with low confidence)" : "";
    return h(
      "button",
      {
        type: "button",
        class: "chip",
        dataset: { start: citation.start },
        title: citation.text,
        "aria-label": `Play ${span}${doubt}: ${citation.text}`,
        onclick: () => this.player.seek(citation.start),
      },
      `▶ ${span}`,
      citation.low_confidence ? h("span", { class: "unsure" }, UNSURE_LABEL) : null,
    );
  }

  /** POST .../chat?stream=true: `delta` events as the answer is written, then the stored `entry`. */
  async ask(question, entries) {
    const answer = h("p", { class: "answer", "aria-busy": "true" });
    const pending = h("li", { class: "chat-entry pending" }, h("p", { class: "question" }, question), answer);
    entries.append(pending);
    try {
      const stream = events(`${this.path}/chat?stream=true`, {
        method: "POST",
        json: { question },
        signal: this.signal,
      });
      for await (const { event, data } of stream) {
        if (event === "delta") answer.append(data.text);
        else if (event === "entry") {
          pending.replaceWith(this.chatEntry(data));
          announce(`Answered: ${data.answer}`);
          return;
        } else if (event === "error") throw new ApiError(data.status, data.detail);
      }
      throw new ApiError(0, "the answer was cut off before it was complete; ask again");
    } catch (error) {
      if (isAbort(error)) return;
      answer.removeAttribute("aria-busy");
      pending.classList.replace("pending", "failed");
      pending.append(errorNotice(`No answer: ${error.message}`));
    }
  }
}

/** Highlights the segment being played, keeping it in view inside the transcript's own scroll. */
function followPlayback(player, segments, buttons, list) {
  let current = -1;
  player.addEventListener("timeupdate", () => {
    const index = segmentAt(segments, player.currentTime);
    if (index === current) return;
    buttons[current]?.removeAttribute("aria-current");
    current = index;
    const button = buttons[current];
    if (!button) return;
    button.setAttribute("aria-current", "true");
    const item = button.parentElement;
    if (item.offsetTop < list.scrollTop || item.offsetTop + item.offsetHeight > list.scrollTop + list.clientHeight) {
      list.scrollTop = item.offsetTop - list.clientHeight / 3;
    }
  });
}

/** The index of the segment holding `seconds` (segments are in time order), or -1. */
function segmentAt(segments, seconds) {
  let low = 0;
  let high = segments.length - 1;
  let found = -1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    if (segments[middle].start <= seconds) {
      found = middle;
      low = middle + 1;
    } else high = middle - 1;
  }
  return found !== -1 && seconds < segments[found].end ? found : -1;
}

function words(text) {
  return new Set(text.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? []);
}

function matchingSegment(point, segments) {
  const wanted = words(point);
  let best = null;
  let bestShare = 0;
  for (const segment of segments) {
    const present = words(segment.text);
    const share = [...wanted].filter((word) => present.has(word)).length / (wanted.size || 1);
    if (share > bestShare) {
      best = segment;
      bestShare = share;
    }
  }
  return bestShare >= KEY_POINT_MATCH ? best : null;
}

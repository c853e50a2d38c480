/** The library: newest first, with thumbnails and live progress, and the upload panel. */
import { api, mediaAddress } from "./api.js";
import { errorNotice, formatTime, h, isAbort } from "./dom.js";
import { FINAL_STATUSES, describeProgress, followProgress } from "./progress.js";
import { uploadPanel } from "./uploads.js";

const PAGE_SIZE = 20;

export async function renderLibrary(main, route, signal) {
  const list = h("ul", { class: "library", "aria-label": "Videos, newest first" });
  const more = h("button", { type: "button", class: "more", hidden: true }, "Show older videos");
  const empty = h("p", { class: "notice", hidden: true }, "No videos yet: upload one above.");
  let cursor = null;

  async function loadPage() {
    const query = new URLSearchParams({ limit: PAGE_SIZE });
    if (cursor) query.set("cursor", cursor);
    const page = await api(`/videos?${query}`, { signal });
    list.append(...page.items.map((video) => videoCard(video, signal)));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    empty.hidden = list.children.length > 0;
  }

  more.addEventListener("click", () =>
    loadPage().catch((error) => isAbort(error) || more.after(errorNotice(error.message))),
  );
  const onUploaded = (video) => {
    if (signal.aborted) return;
    list.prepend(videoCard(video, signal));
    empty.hidden = true;
  };
  await loadPage();
  document.title = "Library · Video Analyzer";
  main.replaceChildren(
    h("h1", { tabindex: -1 }, "Library"),
    uploadPanel(onUploaded),
    h("h2", {}, "Videos"),
    empty,
    list,
    more,
  );
}

function videoCard(video, signal) {
  const link = `#/videos/${encodeURIComponent(video.id)}`;
  const status = h("p", { class: "status" });
  const bar = h("progress", { max: 1, "aria-label": `Processing of ${video.filename}` });
  const card = h(
    "li",
    { class: "card", dataset: { videoId: video.id } },
    h(
      "a",
      { href: link, class: "card-link" },
      h("span", { class: "thumb" }, video.file ? thumbnail(video.id) : null),
      h("span", { class: "title" }, video.filename),
    ),
    status,
    bar,
  );
  showState(video, status, bar);
  if (!FINAL_STATUSES.has(video.status)) follow(video, card, status, bar, signal);
  return card;
}

function showState(video, status, bar) {
  const duration = video.metadata?.duration;
  const done = FINAL_STATUSES.has(video.status);
  status.textContent =
    describeProgress({ status: video.status, ...video.job }) + (done && duration ? ` · ${formatTime(duration)}` : "");
  status.dataset.status = video.status;
  bar.hidden = done;
  bar.value = video.job?.progress ?? 0;
}

/** The poster frame; the empty frame it sits in when there is none to show. */
function thumbnail(videoId) {
  const image = h("img", { alt: "", width: 320, height: 180, loading: "lazy" });
  image.addEventListener("error", () => image.remove(), { once: true });
  mediaAddress(videoId, "thumbnail")
    .then((address) => (image.src = address))
    .catch(() => image.remove());
  return image;
}

async function follow(video, card, status, bar, signal) {
  try {
    const last = await followProgress(
      video.id,
      (event) => showState({ ...video, status: event.status, job: event }, status, bar),
      signal,
    );
    if (last && FINAL_STATUSES.has(last.status))
      card.replaceWith(videoCard(await api(`/videos/${encodeURIComponent(video.id)}`, { signal }), signal));
  } catch (error) {
    if (!isAbort(error)) status.textContent = `Progress unavailable: ${error.message}`;
  }
}

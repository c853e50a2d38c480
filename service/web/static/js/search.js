/** Search across the library: ranked videos, each matching moment opening its video at its time. */
import { api } from "./api.js";
import { errorNotice, fill, formatTime, h, isAbort } from "./dom.js";

const PAGE_SIZE = 10;

export async function renderSearch(main, route, signal) {
  document.getElementById("search-input").value = route.q;
  const title = h("h1", { tabindex: -1 }, `Search: ${route.q}`);
  document.title = `Search: ${route.q} · Video Analyzer`;
  if (!route.q.trim()) {
    main.replaceChildren(title, h("p", { class: "notice" }, "Type words to look for in every transcript."));
    return;
  }
  const results = h("ol", { class: "results", "aria-label": "Videos, best match first" });
  const more = h("button", { type: "button", class: "more", hidden: true }, "More results");
  let cursor = null;

  async function loadPage() {
    const query = new URLSearchParams({ q: route.q, limit: PAGE_SIZE });
    if (cursor) query.set("cursor", cursor);
    const page = await api(`/search?${query}`, { signal });
    results.append(...page.items.map(hit));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  }

  more.addEventListener("click", () =>
    loadPage().catch((error) => isAbort(error) || more.after(errorNotice(error.message))),
  );
  await loadPage();
  const summary = results.children.length ? null : h("p", { class: "notice" }, `Nothing matches “${route.q}”.`);
  fill(main, title, summary, results, more);
}

function hit({ video, matches }) {
  const base = `#/videos/${encodeURIComponent(video.id)}`;
  const moments = matches.map((moment) =>
    h(
      "li",
      {},
      h(
        "a",
        { href: `${base}?t=${moment.start}`, class: "moment", dataset: { start: moment.start } },
        h("span", { class: "time" }, formatTime(moment.start)),
        h("span", {}, moment.text),
      ),
    ),
  );
  return h(
    "li",
    { class: "result" },
    h("h2", {}, h("a", { href: base }, video.filename)),
    moments.length
      ? h("ul", { class: "moments", "aria-label": `Moments in ${video.filename}` }, moments)
      : h("p", { class: "notice" }, "Matches its name or summary."),
  );
}

/**
 * The upload panel: choose files or drop them on it; each is sent in turn with its own progress
 * bar. The panel outlives the library view that shows it, so an upload carries on, and reports,
 * while the user looks at another page.
 */
import { ApiError, api, upload } from "./api.js";
import { announce, h } from "./dom.js";

let panel = null;
let queue = Promise.resolve();
let uploadedListener = () => {};

/** The panel; `onUploaded(video)` is told of each video the service accepted while it is shown. */
export function uploadPanel(onUploaded) {
  uploadedListener = onUploaded;
  panel ??= buildPanel();
  return panel;
}

/** At sign-out: the next user starts with an empty panel (uploads under way still finish). */
export function forgetUploadPanel() {
  panel = null;
}

function buildPanel() {
  const input = h("input", { type: "file", id: "file-input", accept: "video/*,audio/*", multiple: true });
  const language = h("select", { id: "upload-language" }, h("option", { value: "auto" }, "Detect automatically"));
  addLanguages(language);
  const rows = h("ul", { class: "upload-rows", "aria-label": "Uploads" });
  const zone = h(
    "div",
    { class: "drop-zone" },
    h("label", { for: "file-input" }, "Choose videos to upload, or drop them here"),
    input,
    h("label", { for: "upload-language" }, "Spoken language"),
    language,
  );
  input.addEventListener("change", () => {
    enqueue([...input.files], language.value, rows);
    input.value = "";
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    enqueue([...event.dataTransfer.files], language.value, rows);
  });
  return h(
    "section",
    { class: "upload", "aria-labelledby": "upload-title" },
    h("h2", { id: "upload-title" }, "Upload"),
    zone,
    rows,
  );
}

/** The languages the service's model transcribes; without the list, `auto` still detects the language. */
async function addLanguages(select) {
  try {
    const { languages } = await api("/supported-languages/");
    const enabled = Object.entries(languages).filter(([, language]) => language.enabled);
    enabled.sort(([, a], [, b]) => a.name.localeCompare(b.name));
    for (const [code, { name, native_name: native }] of enabled) {
      select.append(h("option", { value: code }, native === name ? name : `${name} (${native})`));
    }
  } catch {
    // the upload works with `auto` alone
  }
}

function enqueue(files, language, rows) {
  for (const file of files) {
    const row = uploadRow(file);
    rows.prepend(row.element);
    queue = queue.then(() => send(file, language, row));
  }
}

function uploadRow(file) {
  const bar = h("progress", { max: 1, value: 0, "aria-label": `Upload of ${file.name}` });
  const status = h("span", { class: "upload-status" }, "Waiting");
  const element = h("li", {}, h("span", { class: "upload-name" }, file.name), bar, status);
  return { element, bar, status };
}

async function send(file, language, row) {
  row.status.textContent = "Uploading 0%";
  try {
    const video = await upload(file, language, (share) => {
      row.bar.value = share;
      row.status.textContent = `Uploading ${Math.round(share * 100)}%`;
    });
    row.bar.value = 1;
    row.status.replaceChildren(
      "Uploaded: ",
      h("a", { href: `#/videos/${encodeURIComponent(video.id)}` }, `open ${file.name}`),
    );
    announce(`${file.name} uploaded; it is queued for processing`);
    uploadedListener(video);
  } catch (error) {
    row.bar.remove();
    const detail = error instanceof ApiError ? error.message : String(error);
    row.status.replaceChildren(h("span", { class: "error", role: "alert" }, `Not uploaded: ${detail}`));
  }
}

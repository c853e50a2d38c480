/**
 * The app's start and its routes, kept in the address's fragment so that the service serves one
 * page: `#/` the library, `#/search?q=...`, `#/videos/{id}` and `#/videos/{id}?t=seconds`.
 */
import { ApiError, SIGNED_OUT, api, session } from "./api.js";
import { errorNotice, h, isAbort } from "./dom.js";
import { renderLibrary } from "./library.js";
import { renderSearch } from "./search.js";
import { renderSignIn } from "./signin.js";
import { forgetUploadPanel } from "./uploads.js";
import { renderVideo } from "./video.js";

const VIEWS = { library: renderLibrary, search: renderSearch, video: renderVideo };
const main = document.getElementById("main");
let current = null;

function parseRoute(fragment) {
  const [path, query = ""] = fragment.replace(/^#/, "").split("?", 2);
  const parameters = new URLSearchParams(query);
  const video = path.match(/^\/videos\/([^/]+)$/);
  if (video) {
    const at = Number.parseFloat(parameters.get("t"));
    return { view: "video", id: decoded(video[1]), at: Number.isFinite(at) && at >= 0 ? at : null };
  }
  if (path === "/search") return { view: "search", q: parameters.get("q") ?? "" };
  return { view: "library" };
}

/** A segment of the address with its escapes decoded; as written when they do not decode (a
 * mistyped or cut address), so that the service answers that there is no such video. */
function decoded(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** Renders the route in the address. After a navigation (not at the first load, where the first Tab
 * stop is "Skip to content") the focus moves to the new page's heading, as a page load would. A
 * fragment that is no route (`#main`) leaves the page shown as it is; with none shown yet, the
 * library. */
async function show({ moveFocus = true } = {}) {
  if (current && location.hash && !location.hash.startsWith("#/")) return;
  const route = parseRoute(location.hash);
  if (current?.view && route.view === "video" && current.route.view === "video" && current.route.id === route.id) {
    current.route = route;
    if (route.at !== null) current.view.seek(route.at);
    return;
  }
  current?.controller.abort();
  const controller = new AbortController();
  current = { route, controller, view: null };
  main.setAttribute("aria-busy", "true");
  try {
    current.view = await VIEWS[route.view](main, route, controller.signal);
    if (moveFocus) main.querySelector("h1")?.focus();
  } catch (error) {
    if (isAbort(error) || controller.signal.aborted) return;
    if (error instanceof ApiError && error.status === 401) showSignIn(null);
    else main.replaceChildren(h("h1", { tabindex: -1 }, "Something went wrong"), errorNotice(describe(error)));
  } finally {
    main.removeAttribute("aria-busy");
  }
  showAccount();
}

function describe(error) {
  return error instanceof ApiError ? error.message : `The service could not be reached (${error.message}).`;
}

function showSignIn(reason) {
  current?.controller.abort();
  current = null;
  document.getElementById("account").hidden = true;
  renderSignIn(main, reason, () => show());
}

/** Who is signed in, asked once per sign-in; nothing with users off (no token is ever held). */
async function showAccount() {
  const account = document.getElementById("account");
  if (!session.token || !account.hidden) return;
  try {
    const user = await api("/auth/me");
    document.getElementById("account-name").textContent = user.username;
    account.hidden = false;
  } catch {
    account.hidden = true;
  }
}

document.getElementById("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const query = new FormData(event.target).get("q").trim();
  if (query) location.hash = `#/search?${new URLSearchParams({ q: query })}`;
});
document.getElementById("sign-out").addEventListener("click", () => {
  session.clear();
  forgetUploadPanel();
  showSignIn("You are signed out.");
});
document.getElementById("skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  (main.querySelector("h1") ?? main).focus();
});
window.addEventListener(SIGNED_OUT, () => showSignIn("Your session has ended; sign in again."));
window.addEventListener("hashchange", () => show());
show({ moveFocus: false });

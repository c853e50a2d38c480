/**
 * The service's API as the page uses it: JSON requests with the signed-in user's bearer token,
 * event streams, uploads with progress, and media addresses a <video> or <img> can load.
 *
 * The bearer token lives in sessionStorage: it survives a reload of the tab, ends with the tab,
 * and is never written into a URL. Media elements cannot send it, so they get a short-lived
 * media token of one video instead (POST /videos/{id}/media-token).
 */
import { readEvents } from "./sse.js";

const SESSION_KEY = "video-analyzer.session";
const MEDIA_TOKEN_MARGIN_MS = 30_000;
export const SIGNED_OUT = "video-analyzer:signed-out";
const SESSION_EXPIRED = "the session has expired";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
  }
}

export const session = {
  get token() {
    const saved = readSession();
    return saved && saved.expiresAt > Date.now() ? saved.token : null;
  },
  /** Whether this tab keeps a sign-in, its token in date or not. */
  get kept() {
    return readSession() !== null;
  },
  save(token, expiresInSeconds) {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify({ token, expiresAt: Date.now() + expiresInSeconds * 1000 }));
  },
  clear() {
    sessionStorage.removeItem(SESSION_KEY);
    mediaTokens.clear();
  },
};

function readSession() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY));
  } catch {
    return null;
  }
}

/**
 * The request's Authorization header. A sign-in whose token has run out ends here, before a
 * request the service would refuse (an upload would send its whole file first).
 */
function credentials() {
  const token = session.token;
  if (token) return { Authorization: `Bearer ${token}` };
  if (session.kept) {
    endSession(SESSION_EXPIRED);
    throw new ApiError(401, SESSION_EXPIRED);
  }
  return {};
}

/** The `{"detail": ...}` of a refusal. A 401 to a request that carried the token ends the session. */
async function refusal(response, sentToken) {
  let detail = `the service answered ${response.status} ${response.statusText}`;
  try {
    const answer = await response.json();
    if (typeof answer.detail === "string") detail = answer.detail;
  } catch {
    // an answer that is not JSON (a proxy's error page, say) keeps the status line
  }
  if (response.status === 401 && sentToken) endSession(detail);
  return new ApiError(response.status, detail);
}

function endSession(detail) {
  session.clear();
  window.dispatchEvent(new CustomEvent(SIGNED_OUT, { detail }));
}

async function send(path, { method = "GET", json, signal, accept = "application/json" } = {}) {
  const headers = { Accept: accept, ...credentials() };
  const init = { method, headers, signal };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await refusal(response, "Authorization" in headers);
  return response;
}

/** A JSON request; resolves with the answer's JSON (null for 204). */
export async function api(path, options) {
  const response = await send(path, options);
  return response.status === 204 ? null : response.json();
}

/** The server-sent events of a request, each `{event, data}` with its data parsed as JSON. */
export async function* events(path, options = {}) {
  const response = await send(path, { ...options, accept: "text/event-stream" });
  for await (const { event, data } of readEvents(response.body)) {
    yield { event, data: JSON.parse(data) };
  }
}

/** OAuth2 password flow; keeps the token for this tab. */
export async function signIn(username, password) {
  const response = await fetch("/auth/token", {
    method: "POST",
    headers: { Accept: "application/json" },
    body: new URLSearchParams({ username, password }),
  });
  if (!response.ok) {
    const answer = await response.json().catch(() => ({}));
    throw new ApiError(response.status, answer.detail || `the service answered ${response.status}`);
  }
  const { access_token: token, expires_in: expiresIn } = await response.json();
  session.save(token, expiresIn);
}

/**
 * Uploads `file` as POST /videos does it, reporting the share sent (0..1) as it goes; resolves
 * with the queued video. XMLHttpRequest, because fetch() reports no upload progress.
 */
export function upload(file, language, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    const headers = { Accept: "application/json", ...credentials() };
    request.open("POST", "/videos");
    for (const [name, value] of Object.entries(headers)) request.setRequestHeader(name, value);
    request.responseType = "json";
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    request.addEventListener("load", () => {
      if (request.status === 202) resolve(request.response);
      else reject(uploadRefusal(request, "Authorization" in headers));
    });
    request.addEventListener("error", () =>
      reject(new ApiError(0, "the upload was cut off: the service refused it (too large?) or could not be reached")),
    );
    const form = new FormData();
    form.append("file", file);
    form.append("language", language);
    request.send(form);
  });
}

function uploadRefusal(request, sentToken) {
  const detail =
    typeof request.response?.detail === "string" ? request.response.detail : `the service answered ${request.status}`;
  if (request.status === 401 && sentToken) endSession(detail);
  return new ApiError(request.status, detail);
}

const mediaTokens = new Map();

/**
 * The address of a video's file (`media`) or poster frame (`thumbnail`). Signed in, it carries a
 * media token of that video, fetched once and again shortly before it expires (or at once with
 * `fresh`); with users off no token is needed.
 */
export async function mediaAddress(videoId, kind, { fresh = false } = {}) {
  const path = `/videos/${encodeURIComponent(videoId)}/${kind}`;
  if (!session.kept) return path;
  let pending = mediaTokens.get(videoId);
  const stale = pending && (await pending.catch(() => null))?.expiresAt - Date.now() < MEDIA_TOKEN_MARGIN_MS;
  if (fresh || !pending || stale) {
    pending = api(`/videos/${encodeURIComponent(videoId)}/media-token`, { method: "POST" }).then((answer) => ({
      token: answer.token,
      expiresAt: Date.parse(answer.expires_at),
    }));
    const requested = pending;
    mediaTokens.set(videoId, requested);
    requested.catch(() => mediaTokens.get(videoId) === requested && mediaTokens.delete(videoId));
  }
  const { token } = await pending;
  return `${path}?token=${encodeURIComponent(token)}`;
}

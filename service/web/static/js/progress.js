/**
 * Live processing progress from GET /videos/{id}/events. A browser opens at most six HTTP/1.1
 * connections to one host, and each stream holds one for as long as the video processes, so at
 * most MAX_STREAMS are open at once; the others wait their turn, and the page's own requests
 * and the player keep the rest.
 */
import { events } from "./api.js";
import { sleep } from "./dom.js";

const MAX_STREAMS = 3;
const RECONNECT_MS = 2000;
export const FINAL_STATUSES = new Set(["completed", "failed", "cancelled"]);

let open = 0;
const waiting = [];

function acquire(signal) {
  if (open < MAX_STREAMS) {
    open += 1;
    return Promise.resolve();
  }
  return new Promise((resolve, reject) => {
    const turn = () => {
      signal.removeEventListener("abort", leave);
      open += 1;
      resolve();
    };
    const leave = () => {
      waiting.splice(waiting.indexOf(turn), 1);
      reject(signal.reason);
    };
    waiting.push(turn);
    signal.addEventListener("abort", leave, { once: true });
  });
}

function release() {
  open -= 1;
  waiting.shift()?.();
}

async function streamOnce(videoId, onEvent, signal) {
  await acquire(signal);
  try {
    let last = null;
    for await (const { event, data } of events(`/videos/${encodeURIComponent(videoId)}/events`, { signal })) {
      if (event !== "progress") continue;
      last = data;
      onEvent(data);
    }
    return last;
  } finally {
    release();
  }
}

/**
 * Calls `onEvent` with each progress event of the video until it completes or fails, and
 * resolves with that last event. A stream that ends early or breaks (the service restarted, the
 * network dropped) is opened again, for as long as the service cannot be reached; one the service
 * refuses (the video was deleted or went private) rejects.
 */
export async function followProgress(videoId, onEvent, signal) {
  for (;;) {
    const last = await streamOnce(videoId, onEvent, signal).catch(unlessNetworkError);
    if (last === null || FINAL_STATUSES.has(last?.status)) return last;
    await sleep(RECONNECT_MS, signal);
  }
}

/** fetch() and a body's reader reject with a TypeError when the connection fails or breaks. */
function unlessNetworkError(error) {
  if (error instanceof TypeError) return undefined;
  throw error;
}

/** "Processing: transcribing 42%", for a status line. */
export function describeProgress({ status, stage, progress, error }) {
  if (status === "failed") return `Failed${error ? `: ${error}` : ""}`;
  if (status === "completed") return "Completed";
  if (status === "cancelled") return "Cancelled";
  if (status === "queued") return "Queued";
  return `Processing${stage ? `: ${stage}` : ""} ${Math.round(progress * 100)}%`;
}

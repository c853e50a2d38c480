/**
 * The <video> element of a video page, loading the file through its media address. A media token
 * is short-lived: when the element fails to load more of the file, it is given a fresh address
 * once and resumes where it was.
 */
import { mediaAddress, session } from "./api.js";
import { h } from "./dom.js";

export function createPlayer(video) {
  const element = h("video", { controls: true, preload: "metadata", playsinline: true, class: "player" });
  element.append("Your browser cannot play this video here.");
  let retried = false;

  async function load({ fresh }) {
    const resumeAt = element.currentTime;
    const [source, poster] = await Promise.all([
      mediaAddress(video.id, "media", { fresh }),
      mediaAddress(video.id, "thumbnail"),
    ]);
    element.poster = poster;
    element.src = source;
    if (resumeAt) seek(resumeAt, { play: false });
  }

  element.addEventListener("error", () => {
    if (retried || !session.token) return;
    retried = true;
    load({ fresh: true }).catch(() => {});
  });
  element.addEventListener("playing", () => (retried = false));

  /** Moves to `seconds`, once the file's metadata is known, and plays from there when asked. */
  function seek(seconds, { play = true } = {}) {
    const move = () => {
      element.currentTime = seconds;
      if (play) element.play().catch(() => {});
    };
    if (element.readyState >= HTMLMediaElement.HAVE_METADATA) move();
    else element.addEventListener("loadedmetadata", move, { once: true });
  }

  const ready = video.file ? load({ fresh: false }) : Promise.resolve();
  return { element, seek, ready };
}

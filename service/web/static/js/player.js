/**
 * The player of a video page, loading the file through its media address. A media token is
 * short-lived: when the <video> fails to load more of the file, it gets a fresh address once and
 * resumes where it was; a second failure is reported under it.
 */
import { mediaAddress, session } from "./api.js";
import { errorNotice, h } from "./dom.js";

export function createPlayer(video) {
  const player = h("video", { controls: true, preload: "metadata", playsinline: true, class: "player" });
  const element = h("div", { class: "player-frame" }, player);
  let retried = false;

  async function load({ fresh }) {
    const resumeAt = player.currentTime;
    const [source, poster] = await Promise.all([
      mediaAddress(video.id, "media", { fresh }),
      mediaAddress(video.id, "thumbnail"),
    ]);
    player.poster = poster;
    player.src = source;
    if (resumeAt) seek(resumeAt, { play: false });
  }

  function fail(reason) {
    element.querySelector(".error")?.remove();
    element.append(errorNotice(`The video cannot be played: ${reason}`));
  }

  player.addEventListener("error", () => {
    if (retried || !session.token) {
      fail("this browser could not load or decode its file");
      return;
    }
    retried = true;
    load({ fresh: true }).catch((error) => fail(error.message));
  });
  player.addEventListener("playing", () => (retried = false));

  /** Moves to `seconds`, once the file's metadata is known, and plays from there when asked. */
  function seek(seconds, { play = true } = {}) {
    const move = () => {
      player.currentTime = seconds;
      if (play) player.play().catch(() => {});
    };
    if (player.readyState >= HTMLMediaElement.HAVE_METADATA) move();
    else player.addEventListener("loadedmetadata", move, { once: true });
  }

  if (video.file) load({ fresh: false }).catch((error) => fail(error.message));
  else fail("no file is stored for it (a video migrated without its file)");
  return { element, media: player, seek };
}

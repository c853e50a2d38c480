/**
 * DOM helpers. Every element is built here with text nodes, never from an HTML string, so that no
 * filename, transcript or answer can become markup.
 */

/** An element with attributes, listeners (`onclick`, ...) and children (nodes or strings). */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") element.className = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  element.append(...present(children));
  return element;
}

/** Replaces the element's children; null, undefined and false stand for no child, as in h(). */
export function fill(element, ...children) {
  element.replaceChildren(...present(children));
}

function present(children) {
  return children.flat().filter((child) => child !== null && child !== undefined && child !== false);
}

/** 75.4 -> "1:15"; 3725 -> "1:02:05". */
export function formatTime(seconds) {
  const total = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const rest = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

export function formatSpan(start, end) {
  return `${formatTime(start)}–${formatTime(end)}`;
}

/** Says `message` to screen readers through the page's polite live region. */
export function announce(message) {
  document.getElementById("announcer").textContent = message;
}

/** A paragraph that reports a failure, announced as an alert. */
export function errorNotice(message) {
  return h("p", { class: "notice error", role: "alert" }, message);
}

/** Resolves after `milliseconds`, or rejects with an AbortError when `signal` aborts first. */
export function sleep(milliseconds, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, milliseconds);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

export function isAbort(error) {
  return error?.name === "AbortError";
}

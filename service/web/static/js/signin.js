/** The sign-in form, shown when the service asks for a user (AUTH_ENABLED=true). */
import { signIn } from "./api.js";
import { errorNotice, fill, h } from "./dom.js";

export function renderSignIn(main, reason, onSignedIn) {
  const username = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
  const password = h("input", {
    id: "password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const submit = h("button", { type: "submit" }, "Sign in");
  const problem = h("div", { "aria-live": "assertive" });
  const form = h(
    "form",
    { class: "sign-in" },
    h("label", { for: "username" }, "Username"),
    username,
    h("label", { for: "password" }, "Password"),
    password,
    submit,
    problem,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    problem.replaceChildren();
    try {
      await signIn(username.value, password.value);
      onSignedIn();
    } catch (error) {
      problem.replaceChildren(errorNotice(error.status === 401 ? "Wrong username or password." : error.message));
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  document.title = "Sign in · Video Analyzer";
  fill(main, h("h1", { tabindex: -1 }, "Sign in"), reason ? h("p", { class: "notice" }, reason) : null, form);
  username.focus();
}

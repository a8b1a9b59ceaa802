// An error said in words a person can act on, announced to screen readers when it appears.
import { html, useEffect, useState } from "../../vendor/preact.js";

export function describe(error) {
  if (!error) return null;
  if (error.status === 429 && error.retryAfter) return `${error.message}`;
  if (error.status === 0 || error instanceof TypeError) return "Parley cannot be reached. Check your connection.";
  return error.message || "Something went wrong.";
}

/** Counts down a Retry-After, so "try again in 42 s" stays true while it is shown. */
function useCountdown(seconds) {
  const [left, setLeft] = useState(seconds);
  useEffect(() => {
    setLeft(seconds);
    if (!seconds) return undefined;
    const timer = setInterval(() => setLeft((value) => (value > 1 ? value - 1 : 0)), 1000);
    return () => clearInterval(timer);
  }, [seconds]);
  return left;
}

export function ErrorText({ error }) {
  const left = useCountdown(error?.retryAfter ?? null);
  if (!error) return null;
  return html`<p class="error" role="alert">
    ${describe(error)}${left ? ` Try again in ${left} s.` : ""}
  </p>`;
}

// An error said in words a person can act on, announced to screen readers when it appears.
import { html, useEffect, useState } from "../../vendor/preact.js";

/** What the error means for the person reading it; the API's own words where they help. */
export function describe(error) {
  if (!error) return null;
  if (error.status === 0 || error instanceof TypeError) return "Parley cannot be reached. Check your connection.";
  switch (error.code) {
    case "too_many_attempts":
      return "Too many failed sign-ins: signing in is paused for a while.";
    case "budget_exceeded":
      return `The spending budget for this period is used up (${error.message}).`;
    case "rpm_limit_exceeded":
    case "tpm_limit_exceeded":
    case "parallel_limit_exceeded":
      return `Slow down: ${error.message}.`;
    case "generation_lost":
      return "This answer was lost: the server generating it stopped responding. Retry it.";
    default:
      return error.message || "Something went wrong.";
  }
}

/** "45 s", "12 min", "3 h", "2 days": a wait as a person would say it. */
export function duration(seconds) {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 2 * 3600) return `${Math.ceil(seconds / 60)} min`;
  if (seconds < 2 * 86400) return `${Math.ceil(seconds / 3600)} h`;
  return `${Math.ceil(seconds / 86400)} days`;
}

/** Seconds to wait before trying again: the Retry-After header, or a stream event's
 * `retry_after`; null when waiting would not help. */
export function waitOf(error) {
  const seconds = Number(error?.retryAfter ?? error?.retry_after);
  return Number.isFinite(seconds) && seconds > 0 ? Math.ceil(seconds) : null;
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
  const left = useCountdown(waitOf(error));
  if (!error) return null;
  return html`<p class="error" role="alert">
    ${describe(error)}${left ? ` Try again in ${duration(left)}.` : ""}
  </p>`;
}

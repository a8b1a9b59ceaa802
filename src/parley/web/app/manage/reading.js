// What the usage, overview, audit and cache pages share: the team a read is confined to
// (global admins may read everything; a team's admins one of their teams, always named,
// so the API never has to guess), and a read that refreshes itself while shown.
import { useEffect, useRef, useState } from "../../vendor/preact.js";

/** The team picker's options, and the team it starts at ("" is everything). */
export function teamChoices(teams, global) {
  const own = teams.map((t) => [t.id, t.name]);
  return global ? { options: [["", "All of Parley"], ...own], first: "" } : { options: own, first: own[0]?.[0] ?? "" };
}

/**
 * ``load()`` now, again whenever ``deps`` change, and every ``everyMs`` while the page is
 * visible (0: never again). An answer that arrives after a newer request started is
 * dropped, so a slow read never paints over the range just picked.
 */
export function usePolled(load, deps, everyMs = 0) {
  const [found, setFound] = useState(null);
  const [error, setError] = useState(null);
  const [at, setAt] = useState(null);
  const latest = useRef(0);
  useEffect(() => {
    let stopped = false;
    const run = () => {
      const ticket = ++latest.current;
      load().then(
        (body) => { if (!stopped && ticket === latest.current) { setFound(body); setError(null); setAt(Date.now()); } },
        (caught) => { if (!stopped && ticket === latest.current) setError(caught); },
      );
    };
    run();
    const timer = everyMs ? setInterval(() => { if (document.visibilityState === "visible") run(); }, everyMs) : null;
    return () => { stopped = true; if (timer) clearInterval(timer); };
  }, deps);
  return { found, error, at };
}

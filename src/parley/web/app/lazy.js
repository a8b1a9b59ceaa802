// Views and dialogs the first chat view does not show (settings, the signed-out pages, the
// share and conversation-settings dialogs) are modules loaded the first time they are
// needed: the chat page's JavaScript stays small, and the shell preloads only what
// main.js imports statically (api/web.py follows those imports).
import { html, useEffect, useState } from "../vendor/preact.js";

/**
 * A component standing in for `name` from the module `load()` imports. It renders nothing
 * (or `fallback` while it loads) until `when(props)` first holds (a dialog: once it is opened); then it
 * loads the module once, for every instance, and renders the real component with the same
 * props from then on. A module that fails to load (offline) says so, and is asked for
 * again the next time it is needed.
 */
export function lazy(load, name, { when = () => true, fallback = null } = {}) {
  let component = null;
  let pending = null;
  const fetchModule = () => {
    pending ??= load().then(
      (module) => { component = module[name]; },
      (error) => { pending = null; throw error; },
    );
    return pending;
  };
  function Lazy(props) {
    const wanted = when(props);
    const [, loaded] = useState(0);
    const [failed, setFailed] = useState(false);
    useEffect(() => {
      if (component || !wanted) return undefined;
      let live = true;
      setFailed(false);
      fetchModule().then(() => live && loaded((n) => n + 1), () => live && setFailed(true));
      return () => { live = false; };
    }, [wanted]);
    if (component) return html`<${component} ...${props} />`;
    if (failed && wanted) {
      return html`<p class="error" role="alert">This part of Parley could not be loaded. Check your connection and try again.</p>`;
    }
    return wanted ? fallback : null;
  }
  Lazy.displayName = `Lazy(${name})`;
  return Lazy;
}

// Deployments (global admins): each deployment's live state on the instance that answers,
// as /admin/deployments reports it, and each group's admission queue. Read-only; it
// refreshes itself while shown.
import { html, useEffect, useState } from "../../vendor/preact.js";
import { ErrorText } from "../components/ErrorText.js";
import * as admin from "./api.js";
import { breaker, count, ms, percent, when } from "./format.js";
import { Cell } from "./widgets.js";

export const EVERY_MS = 5000;
function checked(last) {
  if (!last) return "—";
  return `${last.ok ? "ok" : "failed"}, ${when(last.at_ms)}`;
}

/** /admin/deployments, read now and every EVERY_MS while the page is visible: the
 * Models page shows the same health beside each deployment. */
export function useDeploymentHealth() {
  const [found, setFound] = useState(null);
  const [error, setError] = useState(null);
  const [asked, ask] = useState(0); // bumped to read again now (a group was just added)
  useEffect(() => {
    let stopped = false;
    const load = () => admin.deployments().then((body) => { if (!stopped) { setFound(body); setError(null); } }, setError);
    load();
    const timer = setInterval(() => { if (document.visibilityState === "visible") load(); }, EVERY_MS);
    return () => { stopped = true; clearInterval(timer); };
  }, [asked]);
  return [found, error, () => ask((n) => n + 1)];
}

export function DeploymentsPage() {
  const [found, error] = useDeploymentHealth();
  // Open breakers first: they are what an operator opened the page for.
  const rows = [...(found?.data ?? [])].sort((a, b) => (a.breaker === "closed") - (b.breaker === "closed"));
  return html`<h1>Deployments</h1>
    <p class="hint">Live state on the instance that answered (each instance keeps its own); refreshed every ${EVERY_MS / 1000} s.</p>
    <${ErrorText} error=${error} />
    ${found === null && !error && html`<p class="boot" role="status">Loading…</p>`}
    ${found && html`<div class="table-scroll" tabindex="0"><table class="console-table" role="table">
      <caption class="visually-hidden">Deployments</caption>
      <thead role="rowgroup"><tr role="row"><th role="columnheader">Deployment</th><th role="columnheader">Group</th><th role="columnheader">Breaker</th><th role="columnheader">EWMA latency</th><th role="columnheader">EWMA first token</th>
        <th role="columnheader">Error rate (1 min)</th><th role="columnheader">Requests (1 min)</th><th role="columnheader">In flight</th><th role="columnheader">Calls / failures</th><th role="columnheader">Last health check</th></tr></thead>
      <tbody role="rowgroup">${rows.map((d) => html`<tr role="row" key=${d.deployment} class=${d.breaker !== "closed" ? "alarm" : undefined}>
        <${Cell} label="Deployment"><strong>${d.deployment}</strong><br /><span class="hint">${d.provider} · ${d.model}</span></${Cell}>
        <${Cell} label="Group">${d.group}</${Cell}>
        <${Cell} label="Breaker"><span class=${`breaker ${d.breaker}`}>${breaker(d.breaker)}</span></${Cell}>
        <${Cell} label="EWMA latency">${ms(d.ewma_latency_ms)}</${Cell}>
        <${Cell} label="EWMA first token">${ms(d.ewma_ttft_ms)}</${Cell}>
        <${Cell} label="Error rate (1 min)">${percent(d.error_rate_last_minute)}</${Cell}>
        <${Cell} label="Requests (1 min)">${count(d.requests_last_minute)}</${Cell}>
        <${Cell} label="In flight">${count(d.in_flight)}</${Cell}>
        <${Cell} label="Calls / failures">${count(d.calls)} / ${count(d.failures)}</${Cell}>
        <${Cell} label="Last health check">${checked(d.last_health_check)}</${Cell}>
      </tr>`)}</tbody>
    </table></div>
    <h2>Queues</h2>
    ${found.groups.length === 0
      ? html`<p class="empty-state">No group has a concurrency limit, so nothing queues.</p>`
      : html`<div class="table-scroll" tabindex="0"><table class="console-table" role="table">
        <caption class="visually-hidden">Admission queues</caption>
        <thead role="rowgroup"><tr role="row"><th role="columnheader">Group</th><th role="columnheader">Capacity</th><th role="columnheader">In use</th><th role="columnheader">Waiting</th></tr></thead>
        <tbody role="rowgroup">${found.groups.map((g) => html`<tr role="row" key=${g.group}>
          <${Cell} label="Group">${g.group}</${Cell}>
          <${Cell} label="Capacity">${count(g.capacity)}</${Cell}>
          <${Cell} label="In use">${count(g.in_use)}</${Cell}>
          <${Cell} label="Waiting">${count(g.waiting)}</${Cell}>
        </tr>`)}</tbody>
      </table></div>`}`}`;
}

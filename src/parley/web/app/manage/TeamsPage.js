// Teams: members and their roles (change, remove, invite), the team's MFA rule, and its
// limits and budget (set by global admins; a team's admins see them).
import { html, useEffect, useState } from "../../vendor/preact.js";
import { ErrorText } from "../components/ErrorText.js";
import { user } from "../state.js";
import * as admin from "./api.js";
import { limits, numberOf, textOf, usd, when } from "./format.js";
import { Cell, Confirm, Input, Select } from "./widgets.js";

const ROLES = [["owner", "Owner"], ["admin", "Admin"], ["member", "Member"], ["viewer", "Viewer"]];
const PERIODS = [["monthly", "Monthly"], ["weekly", "Weekly"], ["daily", "Daily"], ["total", "Total"]];

function NewTeam({ onCreated }) {
  const [error, setError] = useState(null);
  async function submit(event) {
    event.preventDefault();
    const form = event.currentTarget;
    setError(null);
    try {
      const team = await admin.createTeam({ name: textOf(new FormData(form), "team_name") ?? "" });
      form.reset();
      onCreated(team);
    } catch (caught) {
      setError(caught);
    }
  }
  return html`<form class="console-bar" onSubmit=${submit}>
    <${Input} label="New team" name="team_name" maxlength="200" required />
    <button type="submit">Create team</button>
    <${ErrorText} error=${error} />
  </form>`;
}

function Members({ team, onChange }) {
  const [error, setError] = useState(null);
  const [removing, setRemoving] = useState(null);
  const me = user.value?.id;
  async function setRole(member, role) {
    setError(null);
    try {
      onChange(await admin.setMember(team.id, member.user_id, role));
    } catch (caught) {
      setError(caught);
      onChange(null); // show the role as it is
    }
  }
  return html`<h2>Members</h2>
    <${ErrorText} error=${error} />
    <div class="table-scroll" tabindex="0"><table class="console-table" role="table">
      <caption class="visually-hidden">Members of ${team.name}</caption>
      <thead role="rowgroup"><tr role="row"><th role="columnheader">Name</th><th role="columnheader">Email</th><th role="columnheader">Role</th><th role="columnheader"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody role="rowgroup">${team.members.map((m) => html`<tr role="row" key=${m.user_id}>
        <${Cell} label="Name">${m.name}${m.user_id === me ? " (you)" : ""}</${Cell}>
        <${Cell} label="Email">${m.email}</${Cell}>
        <${Cell} label="Role">
          <label class="visually-hidden" for=${`role-${m.user_id}`}>Role of ${m.name}</label>
          <select id=${`role-${m.user_id}`} value=${m.role} onChange=${(e) => setRole(m, e.currentTarget.value)}>
            ${ROLES.map(([v, text]) => html`<option value=${v}>${text}</option>`)}
          </select>
        </${Cell}>
        <${Cell} label="Actions"><button type="button" class="danger" onClick=${() => setRemoving(m)}>Remove</button></${Cell}>
      </tr>`)}</tbody>
    </table></div>
    ${removing && html`<${Confirm} title=${`Remove ${removing.name} from ${team.name}`} action="Remove"
      onConfirm=${async () => onChange(await admin.removeMember(team.id, removing.user_id))} onClose=${() => setRemoving(null)}>
      <p>${removing.email} loses the team's models, keys and budget at once.</p>
    </${Confirm}>`}`;
}

function Invite({ team }) {
  const [error, setError] = useState(null);
  const [made, setMade] = useState(null);
  async function submit(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const fields = new FormData(form);
    setError(null);
    try {
      setMade(await admin.invite(team.id, { email: textOf(fields, "invite_email") ?? "", role: fields.get("invite_role") }));
      form.reset();
    } catch (caught) {
      setError(caught);
    }
  }
  return html`<h2>Invite</h2>
    <form class="console-bar" onSubmit=${submit}>
      <${Input} label="Email" name="invite_email" type="email" required />
      <${Select} label="Role" name="invite_role" options=${ROLES} value="member" />
      <button type="submit">Invite</button>
    </form>
    <${ErrorText} error=${error} />
    ${made && html`<p role="status">Invited ${made.email} as ${made.role}, until ${when(made.expires_ms)}. They accept it when signed in with that address.</p>`}`;
}

function Settings({ team, global, onChange }) {
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState(false);
  async function submit(event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const body = { mfa_required: form.get("mfa_required") === "on" };
    if (global) {
      for (const name of ["rpm", "tpm", "max_parallel", "budget_usd", "soft_budget_usd"]) body[name] = numberOf(form, name) ?? null;
      body.budget_period = textOf(form, "budget_period");
    }
    setError(null);
    setSaved(false);
    try {
      onChange(await admin.updateTeam(team.id, body));
      setSaved(true);
    } catch (caught) {
      setError(caught);
    }
  }
  const value = (v) => (v === null || v === undefined ? "" : String(v));
  return html`<h2>Settings</h2>
    <form class="console-form" onSubmit=${submit} key=${team.id}>
      <label class="check"><input type="checkbox" name="mfa_required" defaultChecked=${team.mfa_required} />
        Members must use two-factor sign-in</label>
      ${global
        ? html`<div class="grid3">
            <${Input} label="Requests per minute" name="rpm" type="number" min="1" step="1" defaultValue=${value(team.rpm)} />
            <${Input} label="Tokens per minute" name="tpm" type="number" min="1" step="1" defaultValue=${value(team.tpm)} />
            <${Input} label="Parallel requests" name="max_parallel" type="number" min="1" step="1" defaultValue=${value(team.max_parallel)} />
          </div>
          <div class="grid3">
            <${Input} label="Budget (USD)" name="budget_usd" type="number" min="0" step="0.01" defaultValue=${value(team.budget_usd)} />
            <${Input} label="Soft budget (USD)" name="soft_budget_usd" type="number" min="0" step="0.01" defaultValue=${value(team.soft_budget_usd)} />
            <${Select} label="Budget period" name="budget_period" options=${PERIODS} value=${team.budget_period || "monthly"} />
          </div>`
        : html`<p>Limits: ${limits(team)}. Budget: ${usd(team.budget_usd)}${team.budget_usd != null ? ` ${team.budget_period}` : ""}.
            <span class="hint">A global admin sets these.</span></p>`}
      <${ErrorText} error=${error} />
      <div class="dialog-bar start">
        <button type="submit" class="primary">Save</button>
        <span role="status" class="hint">${saved ? "Saved." : ""}</span>
      </div>
    </form>`;
}

export function TeamsPage({ teams, global, onTeamsChanged }) {
  const [chosen, setChosen] = useState(teams[0]?.id ?? null);
  const [team, setTeam] = useState(null);
  const [error, setError] = useState(null);
  const load = (id) => {
    setError(null);
    if (!id) { setTeam(null); return; }
    admin.getTeam(id).then(setTeam, setError);
  };
  useEffect(() => { load(chosen); }, [chosen]);
  useEffect(() => { if (!chosen && teams[0]) setChosen(teams[0].id); }, [teams]);
  return html`<h1>Teams</h1>
    ${global && html`<${NewTeam} onCreated=${(made) => { onTeamsChanged(); setChosen(made.id); }} />`}
    ${teams.length === 0 && html`<p class="empty-state">No teams yet.</p>`}
    ${teams.length > 0 && html`<div class="console-bar">
      <${Select} label="Team" name="team-pick" options=${teams.map((t) => [t.id, `${t.name} (${t.member_count})`])}
        value=${chosen ?? ""} onChange=${(e) => setChosen(e.currentTarget.value)} />
    </div>`}
    <${ErrorText} error=${error} />
    ${team && html`<section aria-label=${`Team ${team.name}`}>
      <${Members} team=${team} onChange=${(next) => { if (next) setTeam(next); else load(team.id); onTeamsChanged(); }} />
      <${Invite} team=${team} />
      <${Settings} team=${team} global=${global} onChange=${setTeam} />
    </section>`}`;
}

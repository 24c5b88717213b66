// The technician's Access session view: asks the server for a ticket to one machine and
// runs the session in the page (console_tunnel.js, shared with the Support page).
//
// Server contract: POST sessions_url {machine_id, technician_key} with X-CSRF-Token →
// 201 {session_id, ticket, relay_url, relay_token, agent_identity_key, permissions,
// consent_required, expires_at} or 403 {error}; then the relay as console_tunnel.js says.

import { CloseCode, generateEphemeral } from "./tunnel/index.js";
import { config, text } from "./console_text.js";
import { RELAY_CUT, ServerRefusal, openTunnel, requestTicket, runSession, setState } from "./console_tunnel.js";

export { endText } from "./console_tunnel.js";

const $ = (id) => document.getElementById(id);

// When the relay cannot get its close through, the session's record (the machine's
// history) says why it ended once the relay has written it.
const RECORD_TRIES = 30;

async function endFromRecord(sessionId) {
  const url = `${config.machines_url}/${encodeURIComponent(config.machine_id)}/sessions?limit=20`;
  for (let attempt = 0; attempt < RECORD_TRIES; attempt += 1) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const rows = await fetch(url, { credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : null))
      .catch(() => null);
    const row = Array.isArray(rows) ? rows.find((r) => r?.id === sessionId) : null;
    if (!row?.ended_at) continue;
    if (typeof row.end_reason === "string" && row.end_reason.startsWith("cut:")) {
      return { code: CloseCode.TRANSPORT_CLOSED, relayCode: RELAY_CUT, relayReason: row.end_reason.slice(0, 80) };
    }
    if (typeof row.ended_at_agent === "string" && row.ended_at_agent.startsWith("ended_by_user")) {
      return { code: CloseCode.ENDED_BY_USER, slug: "ended-by-user" };
    }
    return null;
  }
  return null;
}

function loadMachine() {
  fetch(config.machines_url, { credentials: "same-origin" })
    .then((response) => (response.ok ? response.json() : []))
    .then((machines) => {
      const machine = Array.isArray(machines) ? machines.find((m) => m.id === config.machine_id) : null;
      if (!machine) return;
      $("machine-name").textContent = machine.hostname;
      $("machine-customer").textContent = [machine.customer?.name, machine.group?.name].filter(Boolean).join(" · ");
      document.title = `${machine.hostname} · ${document.title}`;
    })
    .catch(() => {});
}

async function run() {
  setState("connecting");
  loadMachine();
  const ephemeral = await generateEphemeral();
  let info;
  try {
    info = await requestTicket(config.sessions_url, ephemeral, { machine_id: config.machine_id });
  } catch (error) {
    setState("refused", error instanceof ServerRefusal ? error.message : text("server_refusal.error", { status: 0 }));
    return;
  }
  const tunnel = await openTunnel(info, ephemeral);
  if (tunnel === null) return;
  runSession(tunnel, info, { fromRecord: endFromRecord });
}

run().catch((error) => setState("failed", String(error?.message ?? error)));

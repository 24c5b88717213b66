// The technician's session view: asks the server for a ticket, joins the relay, runs the
// end-to-end handshake in this page (the keys never leave it), then shows the consent
// state, the desktop and the other panels, and why the session ended.
//
// Server contract: POST sessions_url {machine_id, technician_key} with X-CSRF-Token →
// 201 {session_id, ticket, relay_url, relay_token, agent_identity_key, permissions,
// consent_required, expires_at} or 403 {error}; then a WebSocket to relay_url whose first
// message is the text {"role": "technician", "token": relay_token}.

import {
  AgentKeyMismatch,
  BadAgentSignature,
  CloseCode,
  Refused,
  WebSocketTransport,
  connect,
  fromBase64,
  generateEphemeral,
  toBase64,
} from "./tunnel/index.js";
import { codeText, config, hasText, keyOf, text } from "./console_text.js";
import { showSysinfo, startChat, startDesktop, startFiles, startTerminal } from "./console_panels.js";

const $ = (id) => document.getElementById(id);

// How each way of ending is shown: the user or the technician ending it is an ordinary
// end; everything else is a failure the technician should notice.
const ORDINARY_ENDS = new Set([
  CloseCode.NORMAL,
  CloseCode.ENDED_BY_USER,
  CloseCode.ENDED_BY_TECHNICIAN,
  CloseCode.TICKET_EXPIRED,
  CloseCode.GOING_AWAY,
]);
const REFUSALS = new Set([CloseCode.CONSENT_DENIED, CloseCode.CONSENT_TIMEOUT, CloseCode.REVOKED]);

/** The shown state: connecting, waiting-consent, connected, refused, ended or failed. */
function setState(state, detail) {
  const element = $("state");
  element.dataset.state = state;
  element.textContent = text(`state.${keyOf(state)}`);
  if (detail !== undefined) $("state-detail").textContent = detail;
}

class ServerRefusal extends Error {}

async function requestSession(ephemeral) {
  const response = await fetch(config.sessions_url, {
    method: "POST",
    credentials: "same-origin",
    headers: {
      "Content-Type": "application/json",
      "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]')?.content ?? "",
    },
    body: JSON.stringify({ machine_id: config.machine_id, technician_key: toBase64(ephemeral.publicKey) }),
  });
  if (response.status === 201) return response.json();
  const body = await response.json().catch(() => ({}));
  const reason = typeof body.reason === "string" ? body.reason.slice(0, 80) : null;
  if (reason === null) throw new ServerRefusal(text("server_refusal.error", { status: response.status }));
  const key = `server_refusal.${keyOf(reason)}`;
  throw new ServerRefusal(hasText(key) ? text(key) : text("server_refusal.generic", { reason }));
}

/** relay_url may be absolute (ws:, wss:) or relative to this page. */
function relayUrl(raw) {
  const url = new URL(raw, location.href);
  if (url.protocol === "http:") url.protocol = "ws:";
  if (url.protocol === "https:") url.protocol = "wss:";
  return url.href;
}

function handshakeFailure(error) {
  if (error instanceof Refused) return ["refused", codeText("refuse", error.slug, error.code)];
  if (error instanceof AgentKeyMismatch || error instanceof BadAgentSignature) {
    return ["failed", text("identity.mismatch")];
  }
  return ["failed", codeText("close", "transport-closed", CloseCode.TRANSPORT_CLOSED)];
}

// The relay's close code when the server cut the session (revocation, suspension, the
// machine removed, the server stopping); its reason is "cut:<kind>".
const RELAY_CUT = 4003;

/** The cut kind behind an end, or null: from the relay's close, or from the agent's
 *  GOODBYE(REVOKED), whose text is the kind the server told it. */
function cutKind(why) {
  if (why.relayCode === RELAY_CUT && why.relayReason?.startsWith("cut:")) return why.relayReason.slice(4);
  if (why.code === CloseCode.REVOKED && why.text) return why.text;
  return null;
}

/** Why the session ended, as a sentence for the technician (never a raw code or reason). */
export function endText(why) {
  const kind = cutKind(why);
  if (kind !== null) {
    const key = `cut.${keyOf(kind)}`;
    return hasText(key) ? text(key) : text("cut.generic");
  }
  return codeText("close", why.slug, why.code);
}

/** Once the session has ended nothing on the page can act on it any more. */
function disableActions() {
  for (const control of $("session").querySelectorAll("button, input, select, textarea")) {
    control.disabled = true;
  }
}

// When the relay cannot get its close through (the technician's socket is full of screen
// data and the server gives up after its close timeout), the page sees only a lost
// connection; the session's record says why it ended once the relay has written it.
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

function showEnd(why, sessionId) {
  const cut = cutKind(why) !== null;
  const state = cut || ORDINARY_ENDS.has(why.code) ? "ended" : REFUSALS.has(why.code) ? "refused" : "failed";
  setState(state, endText(why));
  $("end-session").hidden = true;
  $("session").dataset.closeCode = String(why.code);
  if (cut) $("session").dataset.cut = cutKind(why).slice(0, 40);
  disableActions();
  if (why.code === CloseCode.TRANSPORT_CLOSED && !cut && sessionId) {
    endFromRecord(sessionId).then((recorded) => {
      if (recorded === null) return;
      showEnd(recorded, null);
      const note = document.querySelector("#chat-log li.note");
      if (note) note.textContent = text("chat.ended_with_session", { reason: endText(recorded) });
    });
  }
}

async function readControl(tunnel, consent) {
  for (;;) {
    let message;
    try {
      message = await tunnel.control.recvJSON();
    } catch (error) {
      if (error instanceof SyntaxError || error instanceof TypeError) continue; // not JSON: ignored
      return; // the tunnel ended; showEnd says why
    }
    if (message?.type === "consent" && typeof message.state === "string") {
      const key = `consent.${keyOf(message.state)}`;
      if (!hasText(key)) continue;
      if (message.state === "given" || message.state === "not_required") consent.given();
      else if (message.state === "asked") setState("waiting-consent");
      else setState("refused");
      $("state-detail").textContent = text(key);
    } else if (message?.type === "sysinfo") {
      showSysinfo(message);
    }
  }
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
    info = await requestSession(ephemeral);
  } catch (error) {
    setState("refused", error instanceof ServerRefusal ? error.message : text("server_refusal.error", { status: 0 }));
    return;
  }
  let tunnel;
  try {
    const transport = await WebSocketTransport.open(relayUrl(info.relay_url), {
      firstMessage: JSON.stringify({ role: "technician", token: info.relay_token }),
    });
    tunnel = await connect(transport, {
      ticket: info.ticket,
      ephemeral,
      agentIdentity: fromBase64(info.agent_identity_key),
    });
  } catch (error) {
    setState(...handshakeFailure(error));
    return;
  }
  let waiting = Boolean(info.consent_required);
  const consent = {
    given() {
      waiting = false;
      if (!tunnel.closed) setState("connected");
    },
  };
  setState(waiting ? "waiting-consent" : "connected", "");
  tunnel.done.then((why) => showEnd(why, info.session_id));
  $("end-session").hidden = false;
  $("end-session").addEventListener("click", () => tunnel.close(CloseCode.ENDED_BY_TECHNICIAN));
  $("session-body").hidden = false;
  readControl(tunnel, consent);

  const permissions = new Set(Array.isArray(info.permissions) ? info.permissions : []);
  if (permissions.has("view") || permissions.has("control")) {
    // The agent holds the stream until the end user has answered; its acceptance is
    // the consent as far as the desktop is concerned.
    startDesktop(tunnel, {
      control: permissions.has("control"),
      clipboard: permissions.has("clipboard") && permissions.has("control"), // as the agent decides
      onConnect: () => waiting && consent.given(),
    });
  }
  if (permissions.has("chat")) startChat(tunnel, { endText });
  if (permissions.has("files")) startFiles(tunnel);
  if (permissions.has("terminal")) startTerminal(tunnel);
}

run().catch((error) => setState("failed", String(error?.message ?? error)));

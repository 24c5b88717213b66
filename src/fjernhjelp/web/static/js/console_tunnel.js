// What both session pages share (console.js for Access, console_support.js for Support):
// the shown state, asking the server for a ticket, joining the relay, the end-to-end
// handshake in this page (the keys never leave it), the control stream's consent
// messages, the panels, and why the session ended.
//
// Server contract: POST url {technician_key, …} with X-CSRF-Token → 201 {session_id,
// ticket, relay_url, relay_token, agent_identity_key, permissions, consent_required,
// expires_at} or a problem {reason}; then a WebSocket to relay_url whose first message is
// the text {"role": "technician", "token": relay_token}.

import {
  AgentKeyMismatch,
  BadAgentSignature,
  CloseCode,
  Refused,
  WebSocketTransport,
  connect,
  fromBase64,
  toBase64,
} from "./tunnel/index.js";
import { codeText, hasText, keyOf, text } from "./console_text.js";
import { showSysinfo, startChat, startDesktop, startFiles, startScreen, startTerminal } from "./console_panels.js";

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
export function setState(state, detail) {
  const element = $("state");
  element.dataset.state = state;
  element.textContent = text(`state.${keyOf(state)}`);
  if (detail !== undefined) $("state-detail").textContent = detail;
}

export class ServerRefusal extends Error {}

/** The sentence for a refusal's reason: the page's own texts first (`prefixes`, e.g.
 *  Support's), then the Access ones, then the generic one naming the reason. */
function refusalText(reason, prefixes) {
  for (const prefix of [...prefixes, "server_refusal"]) {
    const key = `${prefix}.${keyOf(reason)}`;
    if (hasText(key)) return text(key);
  }
  return text("server_refusal.generic", { reason });
}

/** POSTs `body` plus the ephemeral key to `url`: the ticket and the relay, or a ServerRefusal. */
export async function requestTicket(url, ephemeral, body = {}, { refusalPrefixes = [] } = {}) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: {
      "Content-Type": "application/json",
      "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]')?.content ?? "",
    },
    body: JSON.stringify({ ...body, technician_key: toBase64(ephemeral.publicKey) }),
  });
  if (response.status === 201) return response.json();
  const answer = await response.json().catch(() => ({}));
  const reason = typeof answer.reason === "string" ? answer.reason.slice(0, 80) : null;
  if (reason === null) throw new ServerRefusal(text("server_refusal.error", { status: response.status }));
  throw new ServerRefusal(refusalText(reason, refusalPrefixes));
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

/** Joins the relay and runs the handshake; `random` is HELLO's (Support: the check-word
 *  commitment). Resolves to the tunnel, or to null after showing why it failed. */
export async function openTunnel(info, ephemeral, { random } = {}) {
  try {
    const transport = await WebSocketTransport.open(relayUrl(info.relay_url), {
      firstMessage: JSON.stringify({ role: "technician", token: info.relay_token }),
    });
    return await connect(transport, {
      ticket: info.ticket,
      ephemeral,
      agentIdentity: fromBase64(info.agent_identity_key),
      random,
    });
  } catch (error) {
    setState(...handshakeFailure(error));
    return null;
  }
}

// The relay's close code when the server cut the session (revocation, suspension, the
// machine removed, the server stopping); its reason is "cut:<kind>".
export const RELAY_CUT = 4003;
// The relay's close code when the other end's socket went without a word (reason
// "agent_closed" for the end user's side).
export const RELAY_PEER_GONE = 4000;

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
  // A screen shared from the browser says how the end user ended it (static/js/share.js).
  const shareEnd = { "share-stopped": "share.stopped", "tab-closed": "share.tab_closed", "page-gone": "share.page_gone" }[
    why.text
  ];
  if (why.code === CloseCode.ENDED_BY_USER && shareEnd) return text(shareEnd);
  return codeText("close", why.slug, why.code);
}

/** A screen shared from the browser whose page went without its GOODBYE (a tab closing
 *  may not live to seal it, share.js): the relay's word that the end user's side closed
 *  is as near as the technician gets, and it is said as such, not as a lost connection. */
function pageGone(why) {
  const gone = why.code === CloseCode.TRANSPORT_CLOSED && why.relayCode === RELAY_PEER_GONE && why.relayReason === "agent_closed";
  return gone ? { code: CloseCode.ENDED_BY_USER, slug: "ended-by-user", text: "page-gone" } : why;
}

/** Once the session has ended nothing on the page can act on it any more. */
function disableActions() {
  for (const control of $("session").querySelectorAll("button, input, select, textarea")) {
    control.disabled = true;
  }
}

/**
 * Shows the end. `fromRecord(sessionId)`, when given, is asked after a lost connection:
 * when the relay cannot get its close through (the technician's socket is full of screen
 * data and the server gives up after its close timeout), the page sees only a lost
 * connection, and the session's record may say why it ended.
 */
export function showEnd(why, sessionId, fromRecord = null) {
  const cut = cutKind(why) !== null;
  const state = cut || ORDINARY_ENDS.has(why.code) ? "ended" : REFUSALS.has(why.code) ? "refused" : "failed";
  setState(state, endText(why));
  $("end-session").hidden = true;
  $("session").dataset.closeCode = String(why.code);
  if (cut) $("session").dataset.cut = cutKind(why).slice(0, 40);
  disableActions();
  if (why.code === CloseCode.TRANSPORT_CLOSED && !cut && sessionId && fromRecord) {
    fromRecord(sessionId).then((recorded) => {
      if (recorded === null) return;
      showEnd(recorded, null);
      const note = document.querySelector("#chat-log li.note");
      if (note) note.textContent = text("chat.ended_with_session", { reason: endText(recorded) });
    });
  }
}

/** Reads the agent's control messages: consent (calls consent.given(message) when given)
 *  and system information. */
export async function readControl(tunnel, consent) {
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
      if (message.state === "given" || message.state === "not_required") consent.given(message);
      else if (message.state === "asked") setState("waiting-consent");
      else setState("refused");
      $("state-detail").textContent = text(key);
    } else if (message?.type === "sysinfo") {
      showSysinfo(message);
    } else if (message?.type === "file-offered" && typeof message.name === "string") {
      // The browser share's end user picked a file for us (static/js/share.js).
      const name = message.name.slice(0, 255);
      $("download-path").value = name;
      $("files-status").textContent = text("share.file_offered", { name, size: Number(message.size) || 0 });
    }
  }
}

/**
 * The running session: the state, the end button, the control stream and the panels the
 * permissions allow. `terminalAfterConsent`: the terminal waits for the consent message
 * and opens only if the permissions it names (the end user's choice) contain it.
 */
export function runSession(tunnel, info, { fromRecord = null, terminalAfterConsent = false, browserShare = false } = {}) {
  let waiting = Boolean(info.consent_required);
  const permissions = new Set(Array.isArray(info.permissions) ? info.permissions : []);
  let terminalShown = false;
  const showTerminal = (allowed) => {
    if (terminalShown || !allowed.has("terminal") || !permissions.has("terminal")) return;
    terminalShown = true;
    startTerminal(tunnel);
  };
  const consent = {
    given(message) {
      waiting = false;
      if (!tunnel.closed) setState("connected");
      if (terminalAfterConsent && Array.isArray(message?.permissions)) {
        showTerminal(new Set(message.permissions));
      }
    },
  };
  setState(waiting ? "waiting-consent" : "connected", "");
  tunnel.done.then((why) => showEnd(browserShare ? pageGone(why) : why, info.session_id, fromRecord));
  $("end-session").hidden = false;
  $("end-session").addEventListener("click", () => tunnel.close(CloseCode.ENDED_BY_TECHNICIAN));
  $("session-body").hidden = false;
  readControl(tunnel, consent);

  if (browserShare) {
    // The end user shares the screen from the browser: video, view only (screen.js).
    startScreen(tunnel, { onConnect: () => waiting && consent.given(null) });
  } else if (permissions.has("view") || permissions.has("control")) {
    // The agent holds the stream until the end user has answered; its acceptance is
    // the consent as far as the desktop is concerned.
    startDesktop(tunnel, {
      control: permissions.has("control"),
      clipboard: permissions.has("clipboard") && permissions.has("control"), // as the agent decides
      onConnect: () => waiting && consent.given(null),
    });
  }
  if (permissions.has("chat")) startChat(tunnel, { endText });
  if (permissions.has("files")) startFiles(tunnel);
  if (!terminalAfterConsent) showTerminal(permissions);
}

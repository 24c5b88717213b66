// The technician's Support session page: while the session waits it polls the session's
// state (code entered, the end user's client started); then it opens the tunnel in the
// page as an Access session does, with HELLO's random as the commitment to a fresh nonce,
// reveals the nonce first and shows the three check words (docs/tunnel.md §18) for the
// technician to read over the telephone; then the same panels as Access.
//
// Server contract: GET support_url → {state, client_ready, …} (states: waiting, joined,
// running, expired, cancelled, ended); POST tunnel_url {technician_key} → as Access's
// sessions endpoint (console_tunnel.js).

import { generateEphemeral, sasCommitment, sasDigits, sasNonce, sasRevealMessage, sasText } from "./tunnel/index.js";
import { config, hasText, text } from "./console_text.js";
import { ServerRefusal, openTunnel, requestTicket, runSession, setState } from "./console_tunnel.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
// States after which this page can no longer open the session.
const FINAL = new Set(["expired", "cancelled", "ended", "running"]);

/** The waiting states, shown in the header and in the code's card. */
function showWaiting(state) {
  const key = `support.state_${state}`;
  $("state").dataset.state = `support-${state}`;
  $("state").textContent = hasText(key) ? text(key) : state;
  const short = config.states?.[state === "client_ready" ? "joined" : state];
  if (typeof short === "string") $("support-state").textContent = short;
}

/** Polls the session until the end user's client has logged in; resolves to how it joined
 *  then ("client", or "browser": the screen shared from the start page), or false when the session can no longer be opened here (expired, cancelled, …). */
async function waitForClient() {
  for (;;) {
    const session = await fetch(config.support_url, { credentials: "same-origin", cache: "no-store" })
      .then((response) => (response.ok ? response.json() : { failed: response.status }))
      .catch(() => null);
    if (session?.failed === 401 || session?.failed === 404) {
      $("state-detail").textContent = text("support.poll_refused");
      return false;
    }
    if (typeof session?.state === "string") {
      const state = session.state === "joined" && session.client_ready ? "client_ready" : session.state.slice(0, 20);
      showWaiting(state);
      if (state === "client_ready") return session.client_way === "browser" ? "browser" : "client";
      if (FINAL.has(state)) {
        $("support-cancel-form")?.remove();
        return false;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function showCheckWords(tunnel, nonce) {
  // The reveal goes first, before any stream: the client shows no words without it.
  await tunnel.control.sendJSON(sasRevealMessage(nonce));
  const [words, digits] = await Promise.all([
    sasText(tunnel.transcriptHash, nonce),
    sasDigits(tunnel.transcriptHash, nonce),
  ]);
  $("sas-words").textContent = words;
  $("sas-digits").textContent = text("support.digits", { digits });
  $("sas-panel").hidden = false;
}

async function run() {
  const way = await waitForClient();
  if (!way) return;
  $("support-waiting").hidden = true; // the code is spent; the session itself follows
  setState("connecting", "");
  const ephemeral = await generateEphemeral();
  let info;
  try {
    info = await requestTicket(config.tunnel_url, ephemeral, {}, { refusalPrefixes: ["support.refusal"] });
  } catch (error) {
    setState("refused", error instanceof ServerRefusal ? error.message : text("server_refusal.error", { status: 0 }));
    return;
  }
  const nonce = sasNonce();
  const tunnel = await openTunnel(info, ephemeral, { random: await sasCommitment(nonce) });
  if (tunnel === null) return;
  try {
    await showCheckWords(tunnel, nonce);
  } catch {
    tunnel.close(); // no words, no session: the client would end it anyway
    setState("failed", text("support.words_failed"));
    return;
  }
  // Support's shell is the end user's to give in the consent dialog: the terminal waits
  // for the consent message and the permissions it names.
  runSession(tunnel, info, { terminalAfterConsent: true, browserShare: way === "browser" });
}

run().catch((error) => setState("failed", String(error?.message ?? error)));

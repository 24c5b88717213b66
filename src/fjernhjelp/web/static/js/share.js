// The end user's page sharing the screen from the browser (issue 12; docs/tunnel.md §19):
// the "who wants to help" page's second way in, next to the one-time client. The page is
// the end user's end of the tunnel, as the one-time client is (support/session.py):
//
//   1. getDisplayMedia (the click is the gesture it needs), then the control link
//      (/agent/control) logged in with the end-user token and an Ed25519 key made here,
//      after checking the server's challenge against the server key the page was given;
//   2. the server's "dial": the relay, where the technician's HELLO arrives; the ticket is
//      checked against the same key (tunnel/agent.js), the handshake answered;
//   3. the technician reveals the check words' nonce; the page shows the words and the
//      end user says whether they match what the technician reads;
//   4. then the screen (view only), chat and files; "Stop sharing", the browser's own
//      stop, or closing the tab ends the session, and the technician is told which.

import {
  CloseCode,
  StreamCode,
  TicketRefused,
  WebSocketTransport,
  accept,
  fromBase64,
  fromBase64Url,
  generateIdentity,
  refuseName,
  sasCommitment,
  sasDigits,
  sasText,
  toBase64,
  utf8,
} from "./tunnel/index.js";
import { concat, equalBytes, fromHex } from "./tunnel/bytes.js";
import { CODECS, SERVICE } from "./screenwire.js";
import { serveFiles } from "./share_files.js";
import { pickCodec, shareScreen } from "./share_video.js";

const $ = (id) => document.getElementById(id);
const config = JSON.parse($("share-config")?.textContent ?? "{}");
const texts = config.texts ?? {};
const SERVER_CHALLENGE = utf8("fjernhjelp-control-server-v1\x00");
const SUPPORT_CLIENT_PROOF = utf8("fjernhjelp-control-support-client-v1\x00");
const RELAY_LABEL = utf8("fjernhjelp-relay-url-v1\x00");
// What the page offers the technician: no control, no terminal, no clipboard.
const PERMISSIONS = ["chat", "files", "view"];
// GOODBYE texts that tell the technician how the sharing ended (console_support.js).
export const STOPPED = "share-stopped";
export const TAB_CLOSED = "tab-closed";

function text(key, values = {}) {
  const raw = texts[key] ?? key;
  return raw.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

function status(key, values) {
  $("share-status").textContent = text(key, values);
  $("share-status").dataset.state = key.split(".").pop();
}

/** Resolves to whether `attempt` (a WebCrypto call) succeeds: a browser may know the
 *  algorithm's name and still refuse it, so each is tried, not looked up. */
async function works(attempt) {
  try {
    await attempt();
    return true;
  } catch {
    return false;
  }
}

/** What this browser lacks for sharing, as the catalogue key's last part, or null. Only
 *  standard APIs, each detected before use: where one is missing the page says which and
 *  offers the one-time client, and nothing is shared or sent. */
export async function missing() {
  if (!window.isSecureContext) return "secure";
  if (!navigator.mediaDevices?.getDisplayMedia) return "capture";
  // Frames of the capture: MediaStreamTrackProcessor (Chromium) or a video element's
  // requestVideoFrameCallback (Firefox); share_video.js takes whichever there is.
  const frames =
    typeof MediaStreamTrackProcessor !== "undefined" ||
    (typeof HTMLVideoElement !== "undefined" && "requestVideoFrameCallback" in HTMLVideoElement.prototype);
  if (!frames) return "capture";
  if (typeof VideoEncoder === "undefined" || typeof VideoFrame === "undefined") return "codecs";
  if ((await pickCodec(CODECS, 1280, 720)) === null) return "codec";
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) return "secure";
  if (!(await works(() => subtle.generateKey({ name: "X25519" }, false, ["deriveBits"])))) return "x25519";
  const ed25519 =
    (await works(() => subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]))) &&
    (await works(() => subtle.importKey("raw", fromBase64Url(config.server_key), { name: "Ed25519" }, false, ["verify"])));
  if (!ed25519) return "ed25519";
  return null;
}

function uuidBytes(id) {
  return fromHex(id.replaceAll("-", ""));
}

function wsUrl(raw) {
  const url = new URL(raw, location.href);
  if (url.protocol === "http:") url.protocol = "ws:";
  if (url.protocol === "https:") url.protocol = "wss:";
  return url;
}

/** The control link as a one-time client speaks it (agent/link.py), JSON both ways. */
class ControlLink {
  #ws;
  #inbox = [];
  #waiters = [];
  #closed = false;

  static async open(serverKey, identity) {
    const ws = new WebSocket(wsUrl(config.control_url).href);
    const link = new ControlLink(ws);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error("link"));
    });
    const challenge = await link.next();
    const nonce = fromBase64(String(challenge?.nonce ?? ""));
    const signature = fromBase64(String(challenge?.signature ?? ""));
    const trusted =
      challenge?.type === "challenge" &&
      nonce.length === 32 &&
      signature.length === 64 &&
      (await crypto.subtle.verify({ name: "Ed25519" }, serverKey, signature, concat(SERVER_CHALLENGE, nonce)));
    if (!trusted) {
      link.close();
      throw new Error("untrusted");
    }
    const proof = await crypto.subtle.sign(
      { name: "Ed25519" },
      identity.privateKey,
      concat(SUPPORT_CLIENT_PROOF, nonce, uuidBytes(config.session_id), identity.publicKey),
    );
    link.send({
      type: "support_hello",
      session_id: config.session_id,
      token: config.token,
      public_key: toBase64(identity.publicKey),
      signature: toBase64(new Uint8Array(proof)),
      client_version: "browser",
      way: "browser",
    });
    const welcome = await link.next();
    if (welcome?.type !== "welcome" || welcome.machine_id !== config.session_id) {
      link.close();
      throw new Error("refused");
    }
    return link;
  }

  constructor(ws) {
    this.#ws = ws;
    ws.onmessage = (event) => {
      let message = null;
      try {
        message = JSON.parse(event.data);
      } catch {
        // not JSON: the link is broken
      }
      if (this.#waiters.length) this.#waiters.shift().resolve(message);
      else this.#inbox.push(message);
    };
    ws.onclose = () => {
      this.#closed = true;
      for (const waiter of this.#waiters.splice(0)) waiter.resolve(null);
    };
  }

  /** The next message from the server, or null once the link is gone. */
  next() {
    if (this.#inbox.length) return Promise.resolve(this.#inbox.shift());
    if (this.#closed) return Promise.resolve(null);
    return new Promise((resolve) => this.#waiters.push({ resolve }));
  }

  send(message) {
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(message));
  }

  /** A session event for the audit log (control/messages.py SessionEvent). */
  event(action, reason = null, details = {}) {
    this.send({ type: "event", session_id: config.session_id, action, reason, details });
  }

  close() {
    try {
      this.#ws.close(1000);
    } catch {
      // closing already
    }
  }
}

/** The relay's URL must be this server's, or signed by its key (control/dial.py). */
async function relayAllowed(dial, serverKey) {
  const url = wsUrl(dial.relay_url);
  const ours = url.host === location.host;
  if (typeof dial.relay_signature !== "string") return ours;
  const signature = fromBase64(dial.relay_signature);
  return crypto.subtle.verify(
    { name: "Ed25519" },
    serverKey,
    signature,
    concat(RELAY_LABEL, uuidBytes(config.session_id), utf8(dial.relay_url)),
  );
}

/** Waits for the technician's reveal of the check words' nonce (docs/tunnel.md §18.1). */
async function checkWords(tunnel, randomT) {
  let reveal;
  try {
    reveal = await tunnel.control.recvJSON();
  } catch {
    return null;
  }
  const keys = reveal && typeof reveal === "object" ? Object.keys(reveal).sort().join(",") : "";
  if (keys !== "nonce,type" || reveal.type !== "sas-nonce" || !/^[0-9a-f]{64}$/.test(reveal.nonce)) return null;
  const nonce = fromHex(reveal.nonce);
  if (!equalBytes(await sasCommitment(nonce), randomT)) return null;
  return { words: await sasText(tunnel.transcriptHash, nonce), digits: await sasDigits(tunnel.transcriptHash, nonce) };
}

function showChat(message, mine) {
  const item = document.createElement("li");
  item.className = mine ? "mine" : "theirs";
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = text(mine ? "support.share.chat_you" : "support.share.chat_technician");
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = message.text;
  item.append(who, " ", body);
  $("share-chat-log").append(item);
}

function runChat(stream, link) {
  $("share-chat").hidden = false;
  let toUser = 0;
  let fromUser = 0;
  $("share-chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("share-chat-text").value;
    if (!value.trim()) return;
    const message = { text: value.slice(0, 4000), at: new Date().toISOString() };
    stream.send(utf8(JSON.stringify(message))).then(() => {
      fromUser += 1;
      showChat(message, true);
      $("share-chat-text").value = "";
    }, () => {});
  });
  (async () => {
    for (;;) {
      let message;
      try {
        message = await stream.recvJSON();
      } catch (error) {
        if (error instanceof SyntaxError || error instanceof TypeError) continue;
        break;
      }
      if (typeof message?.text !== "string" || !message.text.trim()) continue;
      toUser += 1;
      showChat(message, false);
    }
    link.event("chat.ended", null, { to_user: toUser, from_user: fromUser });
  })();
}

/** The technician's pointing: a marker on the page when this page (a tab) is what is
 *  shared, otherwise a highlighted line in the chat naming the position. */
export function showPointed({ x, y }, surface) {
  if (surface === "browser") {
    const marker = $("share-pointer");
    marker.hidden = false;
    marker.style.left = `${(x * 100).toFixed(1)}%`;
    marker.style.top = `${(y * 100).toFixed(1)}%`;
    return;
  }
  const item = document.createElement("li");
  item.className = "pointed";
  item.textContent = text("support.share.pointed", { x: Math.round(x * 100), y: Math.round(y * 100) });
  $("share-chat").hidden = false;
  $("share-chat-log").append(item);
}

/** Files: what the technician sends becomes a download link; what the end user picks is
 *  offered to the technician by name (the console fills its download form with it). */
function filesPanel(tunnel) {
  const offered = new Map();
  $("share-files").hidden = false;
  $("share-file-pick").addEventListener("change", () => {
    for (const file of $("share-file-pick").files) {
      offered.set(file.name, file);
      tunnel.control.sendJSON({ type: "file-offered", name: file.name, size: file.size }).catch(() => {});
      const item = document.createElement("li");
      item.textContent = text("support.share.file_offered", { name: file.name, size: file.size });
      $("share-file-list").append(item);
    }
  });
  return {
    offered,
    onReceived({ blob, name, size }) {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = name;
      link.dataset.testid = "share-received";
      link.textContent = text("support.share.file_received", { name, size });
      item.append(link);
      $("share-file-list").append(item);
    },
    onSent({ name, size }) {
      const item = document.createElement("li");
      item.textContent = text("support.share.file_sent", { name, size });
      $("share-file-list").append(item);
    },
  };
}

async function session(media, link, serverKey, identity) {
  const track = media.getVideoTracks()[0];
  status("support.share.waiting");
  let dial = null;
  for (;;) {
    const message = await link.next();
    if (message === null) return { ended: "lost" };
    if (message.type === "cut") return { ended: "cut" };
    if (message.type === "dial" && message.session_id === config.session_id) {
      dial = message;
      break;
    }
  }
  if (!(await relayAllowed(dial, serverKey))) {
    link.event("dial.refused", "relay_url");
    return { ended: "refused" };
  }
  const transport = await WebSocketTransport.open(wsUrl(dial.relay_url).href, {
    firstMessage: JSON.stringify({ role: "agent", token: dial.relay_token }),
  });
  let opened;
  try {
    opened = await accept(transport, { serverKey, identity, machineId: `support:${config.session_id}` });
  } catch (error) {
    if (error instanceof TicketRefused) {
      link.event("session.refused", refuseName(error.code));
      status("support.share.ticket_refused");
      return { ended: "ticket" };
    }
    return { ended: "lost" };
  }
  const { tunnel, randomT } = opened;
  if (!(await tunnel.confirmed)) return { ended: "lost" };
  link.event("session.started");
  let tabClosed = false;
  // Sharing ends the session whichever way it stops.
  const endWith = (why) => tunnel.close(CloseCode.ENDED_BY_USER, why);
  track.addEventListener("ended", () => endWith(STOPPED));
  $("share-stop").onclick = () => {
    track.stop();
    endWith(STOPPED);
  };
  // beforeunload as well as pagehide: a tab being closed runs beforeunload a moment
  // earlier, which gives WebCrypto time to seal the GOODBYE (nothing here asks the end
  // user to stay, so beforeunload always goes on to the close).
  const goingAway = () => {
    if (tunnel.closed) return;
    // A closing page may not live to seal the GOODBYE (WebCrypto answers later, and the
    // page is gone by then): the control link's report is one synchronous send, which
    // the browser puts out before the link's close, and the server records it. The
    // GOODBYE is still tried; when it is lost the technician sees the relay's close.
    link.event("session.ended_at_agent", "tab_closed", { code: CloseCode.ENDED_BY_USER, by: "local" });
    tabClosed = true;
    endWith(TAB_CLOSED);
  };
  addEventListener("beforeunload", goingAway);
  addEventListener("pagehide", goingAway);
  (async () => {
    for (;;) {
      const message = await link.next();
      if (message === null || message.type === "cut") {
        tunnel.close(CloseCode.REVOKED, message?.reason ?? "");
        return;
      }
    }
  })();

  const words = await checkWords(tunnel, randomT);
  if (words === null) {
    link.event("sas.failed");
    await tunnel.close(CloseCode.ENDED_BY_USER, "sas");
    status("support.sas.reveal_failed");
    return { ended: "sas" };
  }
  $("share-words").textContent = words.words;
  $("share-digits").textContent = text("support.sas.digits", { digits: words.digits });
  $("share-check").hidden = false;
  link.event("sas.shown");
  tunnel.control.sendJSON({ type: "consent", state: "asked" }).catch(() => {});
  link.event("consent.asked");
  const matched = await new Promise((resolve) => {
    $("share-match").onclick = () => resolve(true);
    $("share-no-match").onclick = () => resolve(false);
    tunnel.done.then(() => resolve(false));
  });
  $("share-check").hidden = true;
  if (!matched) {
    if (!tunnel.closed) {
      link.event("consent.denied", "sas_mismatch");
      await tunnel.close(CloseCode.ENDED_BY_USER, "sas-mismatch");
      status("support.sas.mismatch");
    }
    return { ended: "mismatch" };
  }
  await tunnel.control.sendJSON({ type: "consent", state: "given", permissions: PERMISSIONS }).catch(() => {});
  link.event("consent.given", null, { permissions: PERMISSIONS });
  $("share-banner").hidden = false;
  status("support.share.sharing");
  document.body.dataset.sharing = "on";

  const surface = track.getSettings().displaySurface;
  const files = filesPanel(tunnel);
  const stats = {};
  window.fjernhjelpShare = { stats, tunnel }; // read by the tests and the benchmark
  (async () => {
    for (;;) {
      let stream;
      try {
        stream = await tunnel.accept();
      } catch {
        return;
      }
      if (stream.service === SERVICE) {
        await tunnel.acceptStream(stream);
        link.event("stream.opened", null, { service: SERVICE });
        shareScreen(stream, track, { onPoint: (x, y) => showPointed({ x, y }, surface), stats }).catch(() =>
          stream.close("error"),
        );
      } else if (stream.service === "chat") {
        await tunnel.acceptStream(stream);
        runChat(stream, link);
      } else if (stream.service === "files") {
        await tunnel.acceptStream(stream);
        serveFiles(stream, {
          offered: files.offered,
          onReceived: (file) => {
            files.onReceived(file);
            link.event("file.moved", null, { direction: "to_user", size: file.size });
          },
          onSent: (file) => {
            files.onSent(file);
            link.event("file.moved", null, { direction: "from_user", size: file.size });
          },
        });
      } else {
        // No remote control from a browser: the desktop, the shell and the rest are the
        // one-time client's.
        link.event("stream.refused", "unknown_service", { service: stream.service.slice(0, 32) });
        tunnel.refuseStream(stream, StreamCode.UNKNOWN_SERVICE);
      }
    }
  })();
  const why = await tunnel.done;
  if (tabClosed) return { ended: "tab_closed" }; // reported as the page went
  return { ended: why.text === STOPPED ? "stopped" : why.by === "peer" ? "technician" : "ended", why };
}

async function start() {
  $("share-start").disabled = true;
  let media;
  try {
    media = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 30 }, audio: false });
  } catch (error) {
    $("share-start").disabled = false;
    status("support.share.declined");
    return;
  }
  status("support.share.connecting");
  const serverKey = await crypto.subtle.importKey("raw", fromBase64Url(config.server_key), { name: "Ed25519" }, false, ["verify"]);
  const identity = await generateIdentity();
  let link;
  try {
    link = await ControlLink.open(serverKey, identity);
  } catch (error) {
    for (const track of media.getTracks()) track.stop();
    status(error.message === "untrusted" ? "support.share.untrusted" : "support.share.link_refused");
    return;
  }
  let result;
  try {
    result = await session(media, link, serverKey, identity);
  } finally {
    for (const track of media.getTracks()) track.stop();
    $("share-banner").hidden = true;
    delete document.body.dataset.sharing;
  }
  if (result.why) {
    link.event("session.ended_at_agent", result.ended, { code: result.why.code, by: result.why.by });
  }
  if (["stopped", "technician", "ended", "cut", "lost"].includes(result.ended)) status(`support.share.ended_${result.ended}`);
  // The reports above leave before the close frame (a WebSocket keeps order); the server
  // waits for this close.
  link.close();
}

missing().then(
  (lacking) => {
    if (lacking !== null) {
      // Plainly which, and the other way in: the one-time client (or why there is none).
      $("share-unsupported").textContent = text(`support.share.missing_${lacking}`);
      $("share-unsupported").hidden = false;
      $("share-offer-client").hidden = false;
      return;
    }
    $("share-start").hidden = false;
    $("share-start").addEventListener("click", () => start().catch(() => status("support.share.failed")));
  },
  () => status("support.share.failed"),
);

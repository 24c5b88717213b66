// The agent's half of the handshake (docs/tunnel.md §3.3, §5.5) in WebCrypto, for the end
// user's page that shares its screen from the browser (docs/tunnel.md §19): it checks
// the ticket against the server key the page was given, answers HELLO with AGENT_HELLO
// signed by a key made for this session, and waits for the technician's first record.
// Same bytes as src/fjernhjelp/tunnel/handshake.py's AgentHandshake.

import { asBytes, concat, equalBytes, fromUtf8, readU16, toHex, u16, utf8 } from "./bytes.js";
import { RefuseCode } from "./codes.js";
import { HandshakeError, HandshakeTimeout, TransportClosed } from "./errors.js";
import {
  AGENT_HELLO,
  HELLO,
  HELLO_HEADER,
  MAGIC,
  REFUSE,
  SIGNATURE_LABEL,
  keySchedule,
  transcriptHash,
} from "./handshake.js";
import { DEFAULT_OPTIONS, KEY_SIZE, MAX_TICKET_TOKEN, PROTOCOL_VERSION, SIGNATURE_SIZE } from "./limits.js";
import { Tunnel } from "./tunnel.js";

const TICKET_LABEL = utf8("fjernhjelp ticket\x00");
const LEEWAY = 60;
const MAX_LIFETIME = 900;
const ID = /^[A-Za-z0-9._:-]{1,64}$/;
const PERMISSIONS = new Set(["view", "control", "terminal", "files", "chat", "clipboard", "terminal_admin"]);
const FIELDS = [
  "version",
  "session_id",
  "machine_id",
  "technician",
  "vendor_org",
  "customer_org",
  "permissions",
  "consent_required",
  "issued_at",
  "expires_at",
  "technician_key_sha256",
  "grant_id",
  "agreement_ref",
];
// Cc, Cf, Cs, Co, Zl, Zp (§3.2): names must read as what they are.
const FORBIDDEN_IN_NAMES = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Zl}\p{Zp}]/u;

/** The agent refused the HELLO; `code` is the REFUSE code sent (§12.1). */
export class TicketRefused extends HandshakeError {
  constructor(code, detail) {
    super(detail);
    this.code = code;
  }
}

/** Strict base64url without padding (§2): one spelling per byte string, else null. */
export function fromBase64Url(text) {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return null;
  const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/") + "=".repeat((4 - (text.length % 4)) % 4));
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  const again = btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  return again === text ? bytes : null; // non-zero unused trailing bits spell differently
}

function isInteger(value, low, high) {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= low && value <= high;
}

function isName(value, low, high) {
  if (typeof value !== "string") return false;
  const length = [...value].length;
  return length >= low && length <= high && !FORBIDDEN_IN_NAMES.test(value) && (low === 0 || value.trim() !== "");
}

function isParty(value) {
  return (
    value !== null &&
    typeof value === "object" &&
    !Array.isArray(value) &&
    Object.keys(value).length === 2 &&
    typeof value.id === "string" &&
    ID.test(value.id) &&
    isName(value.name, 1, 200)
  );
}

// JSON.parse keeps the last of two equal keys; the spec refuses such a payload. The
// payload is signed by the server, so this is belt and braces: object keys are compared
// with what a reviver sees (a duplicate collapses, so the counts differ).
function hasDuplicateKeys(text) {
  let duplicate = false;
  const counts = [];
  const scanner = /"(?:[^"\\]|\\.)*"\s*:/g;
  for (const match of text.matchAll(scanner)) counts.push(match[0]);
  let seen = 0;
  JSON.parse(text, function reviver(key, value) {
    if (value !== null && typeof value === "object" && !Array.isArray(value)) seen += Object.keys(value).length;
    return value;
  });
  duplicate = seen !== counts.length;
  return duplicate;
}

/**
 * Verifies a ticket token as §3.3 says, in its order; resolves to the payload or throws
 * TicketRefused with the REFUSE code of the first failure.
 * @param {string} token
 * @param {CryptoKey} serverKey the pinned server key (Ed25519, "verify")
 * @param {string} machineId this end's id (a Support session's: "support:<session id>")
 * @param {number} now Unix seconds
 */
export async function verifyTicket(token, serverKey, machineId, now) {
  const refuse = (code, detail) => new TicketRefused(code, detail);
  if (typeof token !== "string" || token.length > MAX_TICKET_TOKEN || !/^[\x21-\x7e]+$/.test(token)) {
    throw refuse(RefuseCode.MALFORMED_TICKET, "the token is not ASCII of the right size");
  }
  const parts = token.split(".");
  const payload = parts.length === 2 ? fromBase64Url(parts[0]) : null;
  const signature = parts.length === 2 ? fromBase64Url(parts[1]) : null;
  if (payload === null || signature === null || signature.length !== SIGNATURE_SIZE) {
    throw refuse(RefuseCode.MALFORMED_TICKET, "the token does not parse");
  }
  const valid = await crypto.subtle.verify({ name: "Ed25519" }, serverKey, signature, concat(TICKET_LABEL, payload));
  if (!valid) throw refuse(RefuseCode.BAD_TICKET_SIGNATURE, "the ticket is not signed by the server key");
  let body;
  try {
    const text = fromUtf8(payload);
    body = JSON.parse(text); // JSON.parse refuses NaN and Infinity already
    if (hasDuplicateKeys(text)) throw new SyntaxError("duplicate key");
  } catch {
    throw refuse(RefuseCode.MALFORMED_TICKET, "the payload is not JSON");
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw refuse(RefuseCode.MALFORMED_TICKET, "the payload is not an object");
  }
  if (!Number.isInteger(body.version)) throw refuse(RefuseCode.MALFORMED_TICKET, "no version");
  if (body.version !== 1) throw refuse(RefuseCode.UNSUPPORTED_TICKET_VERSION, "ticket version");
  const keys = Object.keys(body);
  const shaped =
    keys.length === FIELDS.length &&
    FIELDS.every((field) => keys.includes(field)) &&
    ID.test(String(body.session_id)) &&
    typeof body.session_id === "string" &&
    typeof body.machine_id === "string" &&
    ID.test(body.machine_id) &&
    isParty(body.technician) &&
    isParty(body.vendor_org) &&
    isParty(body.customer_org) &&
    Array.isArray(body.permissions) &&
    body.permissions.every((p) => PERMISSIONS.has(p)) &&
    new Set(body.permissions).size === body.permissions.length &&
    typeof body.consent_required === "boolean" &&
    isInteger(body.issued_at, 0, Number.MAX_SAFE_INTEGER) &&
    isInteger(body.expires_at, 0, Number.MAX_SAFE_INTEGER) &&
    body.expires_at - body.issued_at > 0 &&
    body.expires_at - body.issued_at <= MAX_LIFETIME &&
    typeof body.technician_key_sha256 === "string" &&
    /^[0-9a-f]{64}$/.test(body.technician_key_sha256) &&
    typeof body.grant_id === "string" &&
    (body.grant_id === "" || ID.test(body.grant_id)) &&
    isName(body.agreement_ref, 0, 200);
  if (!shaped) throw refuse(RefuseCode.MALFORMED_TICKET, "a field is missing or out of bounds");
  if (body.machine_id !== machineId) throw refuse(RefuseCode.WRONG_MACHINE, "the ticket names another end");
  if (now + LEEWAY < body.issued_at) throw refuse(RefuseCode.TICKET_NOT_YET_VALID, "ticket not yet valid");
  if (now >= body.expires_at + LEEWAY) throw refuse(RefuseCode.TICKET_EXPIRED, "ticket expired");
  return body;
}

export function buildRefuse(code) {
  return concat(MAGIC, new Uint8Array([REFUSE, PROTOCOL_VERSION]), u16(code));
}

/**
 * WAIT_HELLO -> receive(hello) -> {reply, keys, ticket, randomT} or TicketRefused (send
 * buildRefuse(error.code), close). `identity` is {privateKey (Ed25519, "sign"),
 * publicKey: 32 raw bytes}, the key the server recorded for this end.
 */
export class AgentHandshake {
  #serverKey;
  #identity;
  #machineId;

  constructor({ serverKey, identity, machineId }) {
    this.#serverKey = serverKey;
    this.#identity = identity;
    this.#machineId = machineId;
  }

  async receive(message, now = Math.floor(Date.now() / 1000)) {
    const hello = asBytes(message);
    const malformed = (detail) => new TicketRefused(RefuseCode.MALFORMED_HELLO, detail);
    if (hello.length < 6 || !equalBytes(hello.subarray(0, 4), MAGIC) || hello[4] !== HELLO) {
      throw malformed("not a HELLO");
    }
    if (hello[5] !== PROTOCOL_VERSION) throw new TicketRefused(RefuseCode.UNSUPPORTED_VERSION, "HELLO version");
    const length = hello.length >= HELLO_HEADER ? readU16(hello, 70) : 0;
    if (length < 1 || length > MAX_TICKET_TOKEN || hello.length !== HELLO_HEADER + length) {
      throw malformed("HELLO of the wrong size");
    }
    let token;
    try {
      token = fromUtf8(hello.subarray(HELLO_HEADER));
    } catch {
      throw new TicketRefused(RefuseCode.MALFORMED_TICKET, "the token is not text");
    }
    const ticket = await verifyTicket(token, this.#serverKey, this.#machineId, now);
    const technicianKey = hello.slice(6, 38);
    const keyHash = toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", technicianKey)));
    if (!equalBytes(utf8(keyHash), utf8(ticket.technician_key_sha256))) {
      throw new TicketRefused(RefuseCode.KEY_MISMATCH, "the HELLO key is not the ticket's");
    }
    const ephemeral = await crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveKey", "deriveBits"]);
    const ephemeralPublic = new Uint8Array(await crypto.subtle.exportKey("raw", ephemeral.publicKey));
    const random = crypto.getRandomValues(new Uint8Array(KEY_SIZE));
    const signed = concat(MAGIC, new Uint8Array([AGENT_HELLO, PROTOCOL_VERSION]), ephemeralPublic, random, this.#identity.publicKey);
    const transcript = await transcriptHash(hello, signed);
    let keys;
    try {
      keys = await keySchedule(ephemeral.privateKey, technicianKey, transcript, { role: "agent" });
    } catch {
      throw malformed("no shared secret with the HELLO key"); // all-zero X25519 result
    }
    const signature = new Uint8Array(
      await crypto.subtle.sign({ name: "Ed25519" }, this.#identity.privateKey, concat(SIGNATURE_LABEL, transcript)),
    );
    return {
      reply: concat(signed, signature),
      keys: { ...keys, transcriptHash: transcript },
      ticket,
      randomT: hello.slice(38, 70),
    };
  }
}

/**
 * Waits for HELLO on `transport` and answers it; resolves to {tunnel, ticket, randomT}.
 * The tunnel is running but not confirmed: `tunnel.confirmed` resolves once the
 * technician's first record (a PING) opened (§5.5); nothing else is accepted before.
 * Rejects with TicketRefused (after sending REFUSE), HandshakeTimeout or HandshakeError;
 * the transport is closed then.
 */
export async function accept(transport, { serverKey, identity, machineId, options = {} }) {
  const settings = { ...DEFAULT_OPTIONS, ...options };
  const handshake = new AgentHandshake({ serverKey, identity, machineId });
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new HandshakeTimeout("no HELLO came")), settings.handshakeTimeout * 1000);
  });
  let answer;
  try {
    answer = await Promise.race([(async () => handshake.receive(await transport.recv()))(), timeout]);
    transport.send(answer.reply);
  } catch (error) {
    if (error instanceof TicketRefused) {
      try {
        transport.send(buildRefuse(error.code));
      } catch {
        // the transport is gone already
      }
    }
    transport.close();
    if (error instanceof TransportClosed) throw new HandshakeError(`the transport closed during the handshake (${error.message})`);
    throw error;
  } finally {
    clearTimeout(timer);
  }
  const tunnel = new Tunnel(transport, answer.keys, { ...settings, role: "agent" });
  tunnel.start();
  return { tunnel, ticket: answer.ticket, randomT: answer.randomT };
}

/** The raw bytes of an identity key made for one session: {privateKey, publicKey}. */
export async function generateIdentity() {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  return { privateKey: pair.privateKey, publicKey: new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)) };
}

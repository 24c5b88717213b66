// The technician's half of the handshake (docs/tunnel.md §5), in WebCrypto. Nothing
// here touches a socket: connect.js moves the bytes.
//
//   HELLO(eph_t, random_t, ticket)  ->   agent verifies the ticket
//   <- AGENT_HELLO(eph_a, random_a, id_a, sig)  or  REFUSE(code)
//   check id_a is the listed key, check sig over the transcript; derive keys.
//
// Key material stays inside WebCrypto: the ephemeral private key is non-extractable,
// the X25519 secret goes straight into a non-extractable HKDF key (deriveKey), and the
// two AES-GCM keys come out of HKDF non-extractable too.

import { asBytes, concat, equalBytes, fromUtf8, readU16, toHex, u16, utf8 } from "./bytes.js";
import { AgentKeyMismatch, BadAgentSignature, MalformedHandshake, Refused } from "./errors.js";
import { KEY_SIZE, MAX_TICKET_TOKEN, PROTOCOL_VERSION, SIGNATURE_SIZE } from "./limits.js";

export const MAGIC = utf8("FJHT");
export const HELLO = 0x01;
export const AGENT_HELLO = 0x02;
export const REFUSE = 0x03;
export const HELLO_HEADER = 72;
export const AGENT_HELLO_SIGNED = 102;
export const AGENT_HELLO_SIZE = AGENT_HELLO_SIGNED + SIGNATURE_SIZE;
export const REFUSE_SIZE = 8;

export const TRANSCRIPT_LABEL = utf8("fjernhjelp tunnel v1 transcript\x00");
export const SIGNATURE_LABEL = utf8("fjernhjelp tunnel v1 agent signature\x00");
const INFO_T2A = utf8("fjernhjelp tunnel v1 technician to agent");
const INFO_A2T = utf8("fjernhjelp tunnel v1 agent to technician");

/** A fresh ephemeral X25519 pair. `publicKey` is the raw 32 bytes to send to the server
 *  (base64) when asking for a ticket; `keyHash` its SHA-256 in hex, as the ticket binds. */
export async function generateEphemeral() {
  const pair = await crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveKey", "deriveBits"]);
  return ephemeralOf(pair.privateKey, new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)));
}

/** Wraps an existing private key (tests import the vectors' PKCS#8) and its raw public half. */
export async function ephemeralOf(privateKey, publicKey) {
  const raw = asBytes(publicKey);
  if (raw.length !== KEY_SIZE) throw new TypeError("an X25519 public key is 32 bytes");
  const keyHash = toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", raw)));
  return Object.freeze({ privateKey, publicKey: raw, keyHash });
}

export function buildHello(publicKey, random, token) {
  const ticket = utf8(token);
  if (!/^[\x21-\x7e]+$/.test(token) || ticket.length > MAX_TICKET_TOKEN) {
    throw new TypeError(`the ticket must be 1 to ${MAX_TICKET_TOKEN} bytes of ASCII`);
  }
  return concat(MAGIC, new Uint8Array([HELLO, PROTOCOL_VERSION]), publicKey, random, u16(ticket.length), ticket);
}

export async function transcriptHash(hello, agentHelloSigned) {
  const digest = await crypto.subtle.digest("SHA-256", concat(TRANSCRIPT_LABEL, hello, agentHelloSigned));
  return new Uint8Array(digest);
}

/** The key schedule of §5.4 for the technician: {sendKey, receiveKey} as AES-GCM
 *  CryptoKeys. `extractable` exists for the test-vector page only, which must compare
 *  key bytes; a session never sets it. WebCrypto throws on an all-zero X25519 result. */
export async function keySchedule(privateKey, peerPublic, transcript, { extractable = false, role = "technician" } = {}) {
  const peer = await crypto.subtle.importKey("raw", asBytes(peerPublic), { name: "X25519" }, false, []);
  const ikm = await crypto.subtle.deriveKey({ name: "X25519", public: peer }, privateKey, "HKDF", false, ["deriveKey"]);
  const derive = (info, usage) =>
    crypto.subtle.deriveKey(
      { name: "HKDF", hash: "SHA-256", salt: transcript, info },
      ikm,
      { name: "AES-GCM", length: 256 },
      extractable,
      [usage],
    );
  // The agent's end (the end user's page sharing its screen, agent.js) seals the other way.
  const [sendInfo, receiveInfo] = role === "agent" ? [INFO_A2T, INFO_T2A] : [INFO_T2A, INFO_A2T];
  const [sendKey, receiveKey] = await Promise.all([derive(sendInfo, "encrypt"), derive(receiveInfo, "decrypt")]);
  return { sendKey, receiveKey };
}

/** START -> hello() -> HELLO_SENT -> receive(reply) -> DONE, or FAILED. */
export class TechnicianHandshake {
  #ticket;
  #ephemeral;
  #agentIdentity;
  #random;
  #hello = null;
  #extractable;

  /**
   * @param {object} o
   * @param {string} o.ticket the opaque token from the server
   * @param {{privateKey: CryptoKey, publicKey: Uint8Array}} o.ephemeral
   * @param {Uint8Array} o.agentIdentity the raw Ed25519 key the server listed for the machine
   * @param {Uint8Array} [o.random] 32 bytes; fresh unless a test fixes it
   */
  constructor({ ticket, ephemeral, agentIdentity, random, extractable = false }) {
    this.#ticket = ticket;
    this.#ephemeral = ephemeral;
    this.#agentIdentity = asBytes(agentIdentity);
    if (this.#agentIdentity.length !== KEY_SIZE) throw new TypeError("the agent identity key is 32 bytes");
    this.#random = random ? asBytes(random) : crypto.getRandomValues(new Uint8Array(KEY_SIZE));
    if (this.#random.length !== KEY_SIZE) throw new TypeError("random must be 32 bytes");
    this.#extractable = extractable;
    this.state = "start";
  }

  hello() {
    if (this.state !== "start") throw new Error(`hello() in state ${this.state}`);
    this.#hello = buildHello(this.#ephemeral.publicKey, this.#random, this.#ticket);
    this.state = "hello-sent";
    return this.#hello;
  }

  /** Checks the agent's reply; resolves to {sendKey, receiveKey, transcriptHash} or
   *  throws Refused, MalformedHandshake, AgentKeyMismatch or BadAgentSignature. */
  async receive(reply) {
    if (this.state !== "hello-sent") throw new Error(`receive() in state ${this.state}`);
    this.state = "failed"; // until every check below has passed
    const bytes = asBytes(reply);
    if (bytes.length < 6 || !equalBytes(bytes.subarray(0, 4), MAGIC)) {
      throw new MalformedHandshake("the reply is not a handshake message");
    }
    if (bytes[4] === REFUSE) {
      if (bytes.length !== REFUSE_SIZE) throw new MalformedHandshake("REFUSE of the wrong size");
      throw new Refused(readU16(bytes, 6));
    }
    if (bytes[4] !== AGENT_HELLO || bytes.length !== AGENT_HELLO_SIZE) {
      throw new MalformedHandshake("the reply is not an AGENT_HELLO");
    }
    if (bytes[5] !== PROTOCOL_VERSION) throw new MalformedHandshake(`AGENT_HELLO version ${bytes[5]}`);
    const agentEphemeral = bytes.slice(6, 38);
    const identity = bytes.slice(70, 102);
    if (!equalBytes(identity, this.#agentIdentity)) {
      throw new AgentKeyMismatch("the agent's identity key is not the one the server listed");
    }
    const transcript = await transcriptHash(this.#hello, bytes.subarray(0, AGENT_HELLO_SIGNED));
    const verifyKey = await crypto.subtle.importKey("raw", this.#agentIdentity, { name: "Ed25519" }, false, ["verify"]);
    const signature = bytes.subarray(AGENT_HELLO_SIGNED);
    const valid = await crypto.subtle.verify({ name: "Ed25519" }, verifyKey, signature, concat(SIGNATURE_LABEL, transcript));
    if (!valid) throw new BadAgentSignature("the agent's signature does not verify");
    let keys;
    try {
      keys = await keySchedule(this.#ephemeral.privateKey, agentEphemeral, transcript, {
        extractable: this.#extractable,
      });
    } catch (error) {
      throw new MalformedHandshake(`no shared secret with the agent's key (${error.name})`);
    }
    this.state = "done";
    return { ...keys, transcriptHash: transcript };
  }
}

/** For display only: what a ticket says (the agent verifies it; we never trust it). */
export function ticketPayload(token) {
  try {
    const part = token.split(".")[0].replaceAll("-", "+").replaceAll("_", "/");
    const binary = atob(part + "=".repeat((4 - (part.length % 4)) % 4));
    return JSON.parse(fromUtf8(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
  } catch {
    return null;
  }
}

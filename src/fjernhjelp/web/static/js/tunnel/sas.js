// The short authentication string (docs/tunnel.md §18) in WebCrypto: three words the
// technician reads aloud and the end user compares. The technician commits to a secret
// nonce in HELLO (random_t = SHA-256(label || nonce)), reveals it inside the tunnel once
// the handshake is done, and both ends derive the words from the transcript hash keyed
// with the nonce. Same bytes as src/fjernhjelp/tunnel/sas.py; vectors in
// tests/data/vectors/sas-v1.json.

import { asBytes, concat, toHex, utf8 } from "./bytes.js";
import { SAS_WORDS_NB } from "./sas_words_nb.js";

export { SAS_WORDS_NB };
export const SAS_NONCE_SIZE = 32;
export const SAS_REVEAL_TYPE = "sas-nonce";
const SAS_BYTES = 3;
const COMMITMENT_LABEL = utf8("fjernhjelp tunnel v1 sas commitment\x00");
const SAS_INFO = utf8("fjernhjelp tunnel v1 sas");

function checked(bytes, size, what) {
  const out = asBytes(bytes);
  if (out.length !== size) throw new TypeError(`${what} must be ${size} bytes`);
  return out;
}

/** A fresh secret nonce; keep it until the tunnel is open, then reveal it. */
export function sasNonce() {
  return crypto.getRandomValues(new Uint8Array(SAS_NONCE_SIZE));
}

/** HELLO's random_t for this nonce: pass it to connect() as `random`. */
export async function sasCommitment(nonce) {
  const data = concat(COMMITMENT_LABEL, checked(nonce, SAS_NONCE_SIZE, "the nonce"));
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data));
}

/** HKDF-SHA256(IKM = transcript hash, salt = nonce, info = "fjernhjelp tunnel v1 sas", L = 3). */
export async function sasBytes(transcriptHash, nonce) {
  const ikm = await crypto.subtle.importKey("raw", checked(transcriptHash, 32, "the transcript hash"), "HKDF", false, ["deriveBits"]);
  const params = { name: "HKDF", hash: "SHA-256", salt: checked(nonce, SAS_NONCE_SIZE, "the nonce"), info: SAS_INFO };
  return new Uint8Array(await crypto.subtle.deriveBits(params, ikm, SAS_BYTES * 8));
}

/** Three words: byte i of sasBytes indexes the 256-word list. */
export async function sasWords(transcriptHash, nonce) {
  return Array.from(await sasBytes(transcriptHash, nonce), (b) => SAS_WORDS_NB[b]);
}

/** The words as shown and read aloud, separated by single spaces. */
export async function sasText(transcriptHash, nonce) {
  return (await sasWords(transcriptHash, nonce)).join(" ");
}

/** The same 24 bits as eight digits, "1234 5678", for a screen reader. */
export async function sasDigits(transcriptHash, nonce) {
  const [a, b, c] = await sasBytes(transcriptHash, nonce);
  const digits = String(a * 65536 + b * 256 + c).padStart(8, "0");
  return `${digits.slice(0, 4)} ${digits.slice(4)}`;
}

/** The control message that reveals the nonce: send it once the tunnel is open. */
export function sasRevealMessage(nonce) {
  return { type: SAS_REVEAL_TYPE, nonce: toHex(checked(nonce, SAS_NONCE_SIZE, "the nonce")) };
}

// Records: AES-256-GCM with an explicit 64-bit counter (docs/tunnel.md §6).
//   record = counter (u64) || ciphertext || tag;  nonce = 0^4 || counter;  AAD = counter
// Each direction has its own non-extractable key and its own counter from 0. The
// opener accepts exactly the next counter and, after one failure, nothing ever again.

import { asBytes, concat, readU64, u64 } from "./bytes.js";
import { RecordError } from "./errors.js";
import { MAX_PLAINTEXT, MAX_RECORD, MIN_RECORD, RECORD_HEADER } from "./limits.js";

// Counters are JS numbers: the last one we seal is 2^53 - 2, far below the protocol's
// 2^64 - 2 and ~10^15 records away; past it the sealer refuses (closing the tunnel).
const LAST_COUNTER = Number.MAX_SAFE_INTEGER - 1;

function nonceFor(header) {
  const nonce = new Uint8Array(12);
  nonce.set(header, 4);
  return nonce;
}

export class RecordSealer {
  #key;
  #counter = 0;

  /** @param {CryptoKey} key AES-GCM key usable for "encrypt" */
  constructor(key) {
    this.#key = key;
  }

  get counter() {
    return this.#counter;
  }

  /** Takes the next counter now (synchronously, so call order is counter order) and
   *  resolves to the record bytes. */
  seal(plaintext) {
    const frame = asBytes(plaintext);
    if (frame.length > MAX_PLAINTEXT) {
      return Promise.reject(new RangeError(`plaintext of ${frame.length} bytes exceeds ${MAX_PLAINTEXT}`));
    }
    if (this.#counter > LAST_COUNTER) return Promise.reject(new RecordError("no counter left"));
    const header = u64(this.#counter++);
    return crypto.subtle
      .encrypt({ name: "AES-GCM", iv: nonceFor(header), additionalData: header, tagLength: 128 }, this.#key, frame)
      .then((sealed) => concat(header, new Uint8Array(sealed)));
  }
}

export class RecordOpener {
  #key;
  #expected = 0;
  #failed = false;

  /** @param {CryptoKey} key AES-GCM key usable for "decrypt" */
  constructor(key) {
    this.#key = key;
  }

  get expected() {
    return this.#expected;
  }

  /** Opens the next record. Callers MUST await each open before starting the next
   *  (the tunnel's reader loop does): records are opened strictly in arrival order. */
  async open(record) {
    const bytes = asBytes(record);
    if (this.#failed) throw new RecordError("an earlier record failed; the tunnel is closing");
    this.#failed = true; // cleared only on success below
    if (bytes.length > MAX_RECORD) throw new RecordError(`record of ${bytes.length} bytes is too large`);
    if (bytes.length < MIN_RECORD) throw new RecordError(`record of ${bytes.length} bytes is truncated`);
    const header = bytes.slice(0, RECORD_HEADER);
    const counter = readU64(header);
    if (counter !== this.#expected) {
      throw new RecordError(`record ${counter} out of order, expected ${this.#expected}`);
    }
    let plaintext;
    try {
      plaintext = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: nonceFor(header), additionalData: header, tagLength: 128 },
        this.#key,
        bytes.subarray(RECORD_HEADER),
      );
    } catch {
      throw new RecordError(`record ${counter} failed authentication`);
    }
    this.#expected += 1;
    this.#failed = false;
    return new Uint8Array(plaintext);
  }
}

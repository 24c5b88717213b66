// File transfer over a "files" stream, in the wire format of streams/files/wire.py:
//   0x01 REQUEST {"op":"get","path"} | {"op":"put","path","size","sha256","name","overwrite"}
//   0x02 OFFER   {"size","sha256"}            (get only, agent → us)
//   0x03 RESUME  {"offset"}                   receiver → sender
//   0x04 DATA    raw bytes, 1..65536          sender → receiver, in order
//   0x05 END     empty
//   0x06 DONE    {"size","sha256"[,"path"]}   receiver → sender: verified, in place
//   0x07 ERROR   {"code","message"[,"path"]}  either way; the channel then ends
// A put to a folder lands in it under the file's own name; an existing file is replaced
// only with "overwrite": true, otherwise ERROR "exists" names it (to ask the user).
// WebCrypto hashes only whole buffers, so a transfer is held in memory (up to
// MAX_IN_MEMORY); a download starts from offset 0 (the page keeps no partial files).

import { concat, fromUtf8, toHex, utf8 } from "./tunnel/bytes.js";

export const REQUEST = 1;
export const OFFER = 2;
export const RESUME = 3;
export const DATA = 4;
export const END = 5;
export const DONE = 6;
export const ERROR = 7;
export const CHUNK = 64 * 1024;
export const MAX_IN_MEMORY = 1024 ** 3; // 1 GiB
const MAX_JSON = 4096;

/** The transfer failed; `code` is machine-readable (the agent's, or ours). */
export class TransferError extends Error {
  constructor(code, message, path = null) {
    super(`${code}: ${message}`);
    this.name = "TransferError";
    this.code = code;
    this.detail = message;
    this.path = path; // "exists": the agent's full path of the file in the way
  }
}

const message = (kind, body) => concat(new Uint8Array([kind]), body === undefined ? new Uint8Array(0) : utf8(JSON.stringify(body)));

async function sha256Hex(data) {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", data)));
}

function json(payload) {
  if (payload.length > MAX_JSON) throw new TransferError("protocol", "control message over 4 KiB");
  let body;
  try {
    body = JSON.parse(fromUtf8(payload));
  } catch {
    throw new TransferError("protocol", "control message is not JSON");
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new TransferError("protocol", "control message is not an object");
  }
  return body;
}

function integer(body, key, upper) {
  const value = body[key];
  if (!Number.isSafeInteger(value) || value < 0 || value > upper) {
    throw new TransferError("protocol", `${key} must be an integer 0..${upper}`);
  }
  return value;
}

function hash(body) {
  if (typeof body.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(body.sha256)) {
    throw new TransferError("protocol", "sha256 must be 64 lowercase hex digits");
  }
  return body.sha256;
}

/** The next message, which must be one of `kinds`; the agent's ERROR becomes a TransferError. */
async function expect(stream, ...kinds) {
  let data;
  try {
    data = await stream.recv();
  } catch (error) {
    throw new TransferError("interrupted", error.message);
  }
  if (data.length === 0) throw new TransferError("protocol", "empty message");
  const kind = data[0];
  const payload = data.subarray(1);
  if (kind === ERROR && !kinds.includes(ERROR)) {
    const body = json(payload);
    const path = typeof body.path === "string" ? body.path.slice(0, MAX_JSON) : null;
    throw new TransferError(String(body.code ?? "error").slice(0, 64), String(body.message ?? "").slice(0, 1000), path);
  }
  if (!kinds.includes(kind)) throw new TransferError("protocol", `unexpected message type ${kind}`);
  if (kind === DATA && (payload.length < 1 || payload.length > CHUNK)) {
    throw new TransferError("protocol", `DATA must carry 1..${CHUNK} bytes`);
  }
  if (kind === END && payload.length) throw new TransferError("protocol", "END carries nothing");
  return [kind, payload];
}

async function failWith(stream, error) {
  if (error.code !== "interrupted") {
    await stream.send(message(ERROR, { code: error.code, message: error.detail })).catch(() => {});
  }
  await stream.close(error.code === "interrupted" ? "closed" : "error");
}

/**
 * Copies `file` (a File or Blob) to `remotePath` on the agent; a folder there takes the
 * file under its own name. An existing file rejects with TransferError "exists" (its
 * `path` says which) unless `overwrite`; ask the user, then call again with it.
 * @param {(done: number, total: number) => void} [onProgress]
 * @returns {Promise<{path, size, sha256, resumedFrom}>} rejects with TransferError or StreamRefused
 */
export async function upload(tunnel, file, remotePath, { onProgress = () => {}, overwrite = false } = {}) {
  if (file.size > MAX_IN_MEMORY) throw new TransferError("too_large", `files over ${MAX_IN_MEMORY} bytes are not sent from the browser`);
  const size = file.size;
  const sha256 = await sha256Hex(await file.arrayBuffer());
  const stream = await tunnel.open("files", {});
  try {
    const request = { op: "put", path: remotePath, size, sha256, overwrite };
    if (typeof file.name === "string" && file.name) request.name = file.name;
    await stream.send(message(REQUEST, request));
    const [, resume] = await expect(stream, RESUME);
    const offset = integer(json(resume), "offset", size);
    onProgress(offset, size);
    for (let position = offset; position < size; ) {
      const chunk = new Uint8Array(await file.slice(position, position + CHUNK).arrayBuffer());
      await stream.send(concat(new Uint8Array([DATA]), chunk));
      position += chunk.length;
      onProgress(position, size);
    }
    await stream.send(message(END));
    const [, done] = await expect(stream, DONE);
    const confirmed = json(done);
    if (confirmed.size !== size || confirmed.sha256 !== sha256) {
      throw new TransferError("protocol", "the agent confirmed something else than was sent");
    }
    await stream.close();
    const placed = typeof confirmed.path === "string" && confirmed.path ? confirmed.path.slice(0, MAX_JSON) : remotePath;
    return { path: placed, size, sha256, resumedFrom: offset };
  } catch (error) {
    await failWith(stream, error instanceof TransferError ? error : new TransferError("error", error.message));
    throw error;
  }
}

/**
 * Copies `remotePath` from the agent into memory and checks its SHA-256.
 * @returns {Promise<{blob: Blob, name: string, size: number, sha256: string}>}
 */
export async function download(tunnel, remotePath, { onProgress = () => {} } = {}) {
  const stream = await tunnel.open("files", {});
  try {
    await stream.send(message(REQUEST, { op: "get", path: remotePath }));
    const [, offerPayload] = await expect(stream, OFFER);
    const offer = json(offerPayload);
    const size = integer(offer, "size", Number.MAX_SAFE_INTEGER);
    const sha256 = hash(offer);
    if (size > MAX_IN_MEMORY) throw new TransferError("too_large", `files over ${MAX_IN_MEMORY} bytes are not fetched into the browser`);
    await stream.send(message(RESUME, { offset: 0 }));
    onProgress(0, size);
    const parts = [];
    let received = 0;
    for (;;) {
      const [kind, payload] = await expect(stream, DATA, END);
      if (kind === END) break;
      received += payload.length;
      if (received > size) throw new TransferError("protocol", "more data than the declared size");
      parts.push(payload);
      onProgress(received, size);
    }
    const whole = concat(...parts);
    if (whole.length !== size || (await sha256Hex(whole)) !== sha256) {
      throw new TransferError("checksum_mismatch", "the SHA-256 of what arrived does not match");
    }
    await stream.send(message(DONE, { size, sha256 }));
    await stream.close();
    const name = remotePath.split("/").filter(Boolean).at(-1) ?? "download";
    return { blob: new Blob([whole]), name, size, sha256 };
  } catch (error) {
    await failWith(stream, error instanceof TransferError ? error : new TransferError("error", error.message));
    throw error;
  }
}

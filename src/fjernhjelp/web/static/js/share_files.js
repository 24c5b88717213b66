// The end user's side of the "files" service (the agent's side of streams/files/wire.py)
// for the page that shares its screen: the browser has no file system to offer, so
//   put (the technician sends a file): received into memory, checked by SHA-256, then
//     offered to the end user as a download (onReceived(blob, name, size));
//   get (the technician fetches a file): only a file the end user picked on the page
//     (offered by its name), never anything else.
// One request per stream; a refusal or a mismatch ends the stream with ERROR.

import { CHUNK, DATA, DONE, END, ERROR, OFFER, REQUEST, RESUME, TransferError } from "./files.js";
import { concat, fromUtf8, toHex, utf8 } from "./tunnel/bytes.js";

export const MAX_RECEIVED = 256 * 1024 * 1024; // held in the page's memory until saved
const NAME = /^[^\/\\\x00-\x1f]{1,255}$/;

const message = (kind, body) => concat(new Uint8Array([kind]), body === undefined ? new Uint8Array(0) : utf8(JSON.stringify(body)));

async function sha256Hex(data) {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", data)));
}

function body(payload) {
  const value = JSON.parse(fromUtf8(payload));
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new TransferError("protocol", "not an object");
  return value;
}

/** The name a put lands under: the request's file name, or the last part of its path. */
function nameOf(request) {
  const raw = typeof request.name === "string" && request.name ? request.name : String(request.path ?? "").split(/[\\/]/).filter(Boolean).at(-1);
  return typeof raw === "string" && NAME.test(raw) && raw !== "." && raw !== ".." ? raw : null;
}

/**
 * Serves one files stream. `offered` maps a name to the File the end user picked;
 * `onReceived({blob, name, size})` gets what the technician sent; `onSent({name, size})`
 * what the technician fetched. Resolves when the stream is done.
 */
export async function serveFiles(stream, { offered, onReceived, onSent }) {
  const fail = async (code, text) => {
    await stream.send(message(ERROR, { code, message: text })).catch(() => {});
    await stream.close("error");
  };
  try {
    const first = await stream.recv();
    if (first.length < 2 || first[0] !== REQUEST) return fail("protocol", "expected REQUEST");
    const request = body(first.subarray(1));
    if (request.op === "put") {
      const size = request.size;
      const name = nameOf(request);
      if (!Number.isSafeInteger(size) || size < 0 || typeof request.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(request.sha256)) {
        return fail("protocol", "size and sha256 are required");
      }
      if (name === null) return fail("bad_path", "no usable file name");
      if (size > MAX_RECEIVED) return fail("too_large", "the file is too large for the browser");
      await stream.send(message(RESUME, { offset: 0 }));
      const parts = [];
      let received = 0;
      for (;;) {
        const data = await stream.recv();
        if (data[0] === END && data.length === 1) break;
        if (data[0] !== DATA || data.length < 2 || data.length > CHUNK + 1) return fail("protocol", "expected DATA or END");
        received += data.length - 1;
        if (received > size) return fail("protocol", "more data than declared");
        parts.push(data.subarray(1));
      }
      const whole = concat(...parts);
      const sha256 = await sha256Hex(whole);
      if (whole.length !== size || sha256 !== request.sha256) return fail("checksum_mismatch", "the SHA-256 does not match");
      await stream.send(message(DONE, { size, sha256, path: name }));
      onReceived({ blob: new Blob([whole]), name, size });
    } else if (request.op === "get") {
      const name = String(request.path ?? "").split(/[\\/]/).filter(Boolean).at(-1) ?? "";
      const file = offered.get(name);
      if (!file) return fail("not_found", "the user has not offered a file of that name");
      const whole = new Uint8Array(await file.arrayBuffer());
      const sha256 = await sha256Hex(whole);
      await stream.send(message(OFFER, { size: whole.length, sha256 }));
      const resume = await stream.recv();
      if (resume[0] !== RESUME) return fail("protocol", "expected RESUME");
      const offset = body(resume.subarray(1)).offset;
      if (!Number.isSafeInteger(offset) || offset < 0 || offset > whole.length) return fail("protocol", "bad offset");
      for (let position = offset; position < whole.length; position += CHUNK) {
        await stream.send(concat(new Uint8Array([DATA]), whole.subarray(position, position + CHUNK)));
      }
      await stream.send(message(END));
      const done = await stream.recv();
      if (done[0] === DONE) onSent({ name, size: whole.length });
    } else {
      return fail("protocol", "unknown op");
    }
    await stream.close();
  } catch (error) {
    if (error instanceof TransferError || error instanceof SyntaxError || error instanceof TypeError) {
      await fail(error.code ?? "protocol", "malformed message");
    }
    // otherwise the stream or the tunnel ended
  }
}

// The shell service's messages (streams/shell/wire.py): one message per tunnel
// message, its first byte the type.
//   0x06 OFFER   agent→technician  the agent's first message; JSON {choices: [{run_as,
//                                  account, uid}], default}: the accounts this session may
//                                  have a shell as (an ERROR instead when there are none)
//   0x01 OPEN    technician→agent  first message; JSON {rows, cols, term, run_as}
//   0x02 DATA    both ways         keystrokes in, terminal output out (≤ 64 KiB)
//   0x03 RESIZE  technician→agent  rows, cols as u16 each (1..1000)
//   0x04 EXIT    agent→technician  last message; i32: exit code, or minus the signal
//   0x05 ERROR   agent→technician  last message; JSON {code, message}

import { concat, fromUtf8, u16, utf8 } from "./tunnel/bytes.js";

export const OPEN = 0x01;
export const DATA = 0x02;
export const RESIZE = 0x03;
export const EXIT = 0x04;
export const ERROR = 0x05;
export const OFFER = 0x06;
export const MAX_DATA = 64 * 1024;
const MAX_DIMENSION = 1000;

const clamp = (n) => Math.min(MAX_DIMENSION, Math.max(1, Math.floor(n)));

/**
 * The agent's first message on a new shell stream: what it offers, or why not.
 * Resolves to {offer: {choices: [{run_as, account, uid}], default}} | {error: {code,
 * message}} | {closed: reason}; on anything but an offer the stream is closed.
 */
export async function readOffer(stream) {
  let message;
  try {
    message = await stream.recv();
  } catch (error) {
    return { closed: error.slug ?? error.message };
  }
  if (message[0] === OFFER) {
    const offer = parseOffer(message.subarray(1));
    if (offer) return { offer };
  } else if (message[0] === ERROR) {
    stream.close();
    return { error: parseError(message.subarray(1)) };
  }
  stream.close("error");
  return { error: { code: "protocol", message: "the agent's first message must be a well-formed OFFER" } };
}

function parseOffer(payload) {
  try {
    const body = JSON.parse(fromUtf8(payload));
    const choices = body.choices.map((c) => ({ run_as: String(c.run_as), account: String(c.account).slice(0, 64), uid: Number(c.uid) }));
    const known = choices.every((c) => c.run_as === "user" || c.run_as === "service");
    if (!choices.length || !known || !choices.some((c) => c.run_as === body.default)) return null;
    return { choices, default: body.default };
  } catch {
    return null;
  }
}

/**
 * The technician's end of one shell (after readOffer), over a tunnel stream to the "shell" service,
 * without any terminal widget (terminal.js puts xterm.js on it).
 *   onOutput(Uint8Array) receives what the shell writes;
 *   `ended` resolves to {exit: status} | {error: {code, message}} | {closed: reason}.
 */
export class ShellSession {
  #stream;
  #ended;

  constructor(stream, { rows = 24, cols = 80, term = "xterm-256color", runAs = "user", onOutput = () => {} } = {}) {
    this.#stream = stream;
    this.onOutput = onOutput;
    const open = { rows: clamp(rows), cols: clamp(cols), term, run_as: runAs };
    stream.send(concat(new Uint8Array([OPEN]), utf8(JSON.stringify(open)))).catch(() => {});
    this.#ended = this.#read();
  }

  get ended() {
    return this.#ended;
  }

  /** Keystrokes (a string is sent as UTF-8). */
  write(data) {
    const bytes = typeof data === "string" ? utf8(data) : data;
    const sends = [];
    for (let offset = 0; offset < bytes.length; offset += MAX_DATA) {
      sends.push(this.#stream.send(concat(new Uint8Array([DATA]), bytes.subarray(offset, offset + MAX_DATA))));
    }
    return Promise.all(sends);
  }

  resize(rows, cols) {
    return this.#stream.send(concat(new Uint8Array([RESIZE]), u16(clamp(rows)), u16(clamp(cols))));
  }

  close() {
    return this.#stream.close();
  }

  async #read() {
    for (;;) {
      let message;
      try {
        message = await this.#stream.recv();
      } catch (error) {
        return { closed: error.slug ?? error.message };
      }
      const kind = message[0];
      const payload = message.subarray(1);
      if (kind === DATA) {
        this.onOutput(payload);
      } else if (kind === EXIT && payload.length === 4) {
        this.#stream.close();
        return { exit: new DataView(payload.buffer, payload.byteOffset, 4).getInt32(0) };
      } else if (kind === ERROR) {
        this.#stream.close();
        return { error: parseError(payload) };
      } else {
        this.#stream.close("error");
        return { error: { code: "protocol", message: `unexpected shell message type ${kind}` } };
      }
    }
  }
}

function parseError(payload) {
  try {
    const body = JSON.parse(fromUtf8(payload));
    return { code: String(body.code).slice(0, 64), message: String(body.message).slice(0, 1000) };
  } catch {
    return { code: "protocol", message: "malformed ERROR message from the agent" };
  }
}

// Mux frames, the plaintext of one record (docs/tunnel.md §7):
//   type (u8) | flags (u8) | stream id (u32) | payload
// Parsing is strict: anything outside the table is a ProtocolError and closes the
// tunnel. Only authenticated plaintext ever reaches the parser.

import { concat, fromUtf8, readU16, readU32, u16, u32, utf8 } from "./bytes.js";
import { ProtocolError } from "./errors.js";
import { FRAME_HEADER, MAX_FRAGMENT, MAX_OPEN_REQUEST, MAX_REASON } from "./limits.js";

export const FrameType = Object.freeze({
  OPEN: 0x01,
  ACCEPT: 0x02,
  DATA: 0x03,
  CREDIT: 0x04,
  CLOSE: 0x05,
  PING: 0x06,
  PONG: 0x07,
  GOODBYE: 0x08,
});

export const FLAG_END = 0x01;
export const CONTROL_STREAM = 0;
export const SERVICE_NAME = /^[a-z][a-z0-9-]{0,31}$/;

// [payload minimum, payload maximum, stream rule]: 0 = only the control stream,
// 1 = never the control stream, null = any.
const RULES = new Map([
  [FrameType.OPEN, [2, MAX_OPEN_REQUEST, 1]],
  [FrameType.ACCEPT, [0, 0, 1]],
  [FrameType.DATA, [0, MAX_FRAGMENT, null]],
  [FrameType.CREDIT, [4, 4, null]],
  [FrameType.CLOSE, [2, 2 + MAX_REASON, 1]],
  [FrameType.PING, [8, 8, 0]],
  [FrameType.PONG, [8, 8, 0]],
  [FrameType.GOODBYE, [2, 2 + MAX_REASON, 0]],
]);

export function encodeFrame(type, stream, payload = new Uint8Array(0), flags = 0) {
  const header = new Uint8Array(FRAME_HEADER);
  header[0] = type;
  header[1] = flags;
  header.set(u32(stream), 2);
  return concat(header, payload);
}

/** Parses one frame; throws ProtocolError. Returns {type, flags, stream, payload}. */
export function parseFrame(data) {
  if (data.length < FRAME_HEADER) {
    throw new ProtocolError(`frame of ${data.length} bytes is shorter than its header`);
  }
  const type = data[0];
  const flags = data[1];
  const stream = readU32(data, 2);
  const rule = RULES.get(type);
  if (rule === undefined) throw new ProtocolError(`unknown frame type 0x${type.toString(16)}`);
  const payload = data.subarray(FRAME_HEADER);
  const [low, high, streamRule] = rule;
  if (payload.length < low || payload.length > high) {
    throw new ProtocolError(`frame type ${type} with a payload of ${payload.length} bytes`);
  }
  const allowed = type === FrameType.DATA ? FLAG_END : 0;
  if (flags & ~allowed) throw new ProtocolError(`frame type ${type} with undefined flags ${flags}`);
  if (streamRule === 0 && stream !== CONTROL_STREAM) {
    throw new ProtocolError(`frame type ${type} on stream ${stream}, not the control stream`);
  }
  if (streamRule === 1 && stream === CONTROL_STREAM) {
    throw new ProtocolError(`frame type ${type} on the control stream`);
  }
  if (type === FrameType.DATA && payload.length === 0 && !(flags & FLAG_END)) {
    throw new ProtocolError("empty DATA fragment without END"); // it would cost no window
  }
  if (type === FrameType.CREDIT && readU32(payload) === 0) {
    throw new ProtocolError("CREDIT of zero");
  }
  if (type === FrameType.CLOSE || type === FrameType.GOODBYE) reasonOf(payload);
  return { type, flags, stream, payload };
}

export function openFrame(stream, service, params) {
  if (!SERVICE_NAME.test(service)) throw new TypeError(`service name ${service} is malformed`);
  if (params === null || typeof params !== "object" || Array.isArray(params)) {
    throw new TypeError("params must be an object");
  }
  const body = utf8(JSON.stringify({ service, params }));
  if (body.length > MAX_OPEN_REQUEST) {
    throw new TypeError(`OPEN request of ${body.length} bytes exceeds ${MAX_OPEN_REQUEST}`);
  }
  return encodeFrame(FrameType.OPEN, stream, body);
}

export function dataFrame(stream, chunk, end) {
  return encodeFrame(FrameType.DATA, stream, chunk, end ? FLAG_END : 0);
}

export function creditFrame(stream, amount) {
  return encodeFrame(FrameType.CREDIT, stream, u32(amount));
}

/** CLOSE or GOODBYE; the text is cut to 200 bytes on a character boundary. */
export function reasonFrame(type, stream, code, text = "") {
  let raw = utf8(text);
  if (raw.length > MAX_REASON) {
    let end = MAX_REASON;
    while (end > 0 && (raw[end] & 0xc0) === 0x80) end--; // back to a character start
    raw = raw.subarray(0, end);
  }
  return encodeFrame(type, stream, concat(u16(code), raw));
}

export function reasonOf(payload) {
  const code = readU16(payload);
  try {
    return { code, text: fromUtf8(payload.subarray(2)) };
  } catch {
    throw new ProtocolError("reason text is not UTF-8");
  }
}

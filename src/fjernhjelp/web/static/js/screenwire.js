// The "screen" service (docs/tunnel.md §19): a screen shared from the end user's browser
// as WebCodecs video, view only. What both ends share: the message layout.
//
//   OPEN params  {"codecs": [codec string, …]}  what the technician's VideoDecoder takes,
//                                               best first
//   page → technician
//     CONFIG  0x01 || UTF-8 JSON {"codec", "width", "height"}   before the first key frame
//                                               and before every key frame after a resize
//     CHUNK   0x02 || flags (u8, bit 0 = key frame) || timestamp (u64, µs) || data
//   technician → page
//     UTF-8 JSON {"type": "key-frame"}           decode failed or the view was reset
//     UTF-8 JSON {"type": "point", "x", "y"}     a position on the shared screen, 0…1

import { concat, fromUtf8, u64, readU64, utf8 } from "./tunnel/bytes.js";

export const SERVICE = "screen";
export const CONFIG = 0x01;
export const CHUNK = 0x02;
export const KEY_FRAME = 0x01;
export const CHUNK_HEADER = 10;
// A chunk is one tunnel message (at most 256 KiB); the encoder's bitrate keeps key
// frames far below that, and a larger one is dropped and replaced by the next key frame.
export const MAX_CHUNK = 256 * 1024 - CHUNK_HEADER;
// Best first: hardware H.264 where there is one; VP8 is in every WebCodecs browser.
export const CODECS = ["avc1.42002a", "vp8", "vp09.00.10.08"];

export function configMessage(codec, width, height) {
  return concat(new Uint8Array([CONFIG]), utf8(JSON.stringify({ codec, width, height })));
}

export function chunkMessage(key, timestamp, data) {
  return concat(new Uint8Array([CHUNK, key ? KEY_FRAME : 0]), u64(Math.max(0, Math.round(timestamp))), data);
}

/** {kind: "config", codec, width, height} | {kind: "chunk", key, timestamp, data}; throws on anything else. */
export function parseScreenMessage(message) {
  if (message.length >= 1 && message[0] === CONFIG) {
    const body = JSON.parse(fromUtf8(message.subarray(1)));
    const { codec, width, height } = body ?? {};
    if (typeof codec !== "string" || codec.length > 64) throw new TypeError("bad codec");
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 2 || height < 2 || width > 8192 || height > 8192) {
      throw new TypeError("bad size");
    }
    return { kind: "config", codec, width, height };
  }
  if (message.length >= CHUNK_HEADER && message[0] === CHUNK && (message[1] & ~KEY_FRAME) === 0) {
    return { kind: "chunk", key: message[1] === KEY_FRAME, timestamp: readU64(message, 2), data: message.subarray(CHUNK_HEADER) };
  }
  throw new TypeError("not a screen message");
}

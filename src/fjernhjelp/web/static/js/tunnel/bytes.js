// Byte helpers shared by the tunnel modules: big-endian integers, UTF-8, hex, base64.

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/** Uint8Array view of an ArrayBuffer, a view, or (copied) an array of numbers. */
export function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError("expected bytes (ArrayBuffer or a typed array)");
}

export function concat(...parts) {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export function utf8(text) {
  return encoder.encode(text);
}

/** Decodes UTF-8, throwing TypeError on invalid input (never replacing characters). */
export function fromUtf8(bytes) {
  return strictDecoder.decode(bytes);
}

export function u16(value) {
  return new Uint8Array([(value >>> 8) & 0xff, value & 0xff]);
}

export function u32(value) {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

/** A u64 from a non-negative safe integer (counters never get near 2^53). */
export function u64(value) {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, Math.floor(value / 2 ** 32));
  view.setUint32(4, value >>> 0);
  return out;
}

export function readU16(bytes, offset = 0) {
  return (bytes[offset] << 8) | bytes[offset + 1];
}

export function readU32(bytes, offset = 0) {
  return new DataView(bytes.buffer, bytes.byteOffset + offset, 4).getUint32(0);
}

/** A u64 as a Number; values past 2^53 come back as Infinity, which equals no counter. */
export function readU64(bytes, offset = 0) {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, 8);
  const high = view.getUint32(0);
  if (high >= 2 ** 21) return Infinity;
  return high * 2 ** 32 + view.getUint32(4);
}

export function toHex(bytes) {
  return Array.from(asBytes(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(hex) {
  if (hex.length % 2 !== 0 || /[^0-9a-f]/i.test(hex)) throw new TypeError("not hex");
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Standard base64 (with padding), as the server's JSON API uses for keys. */
export function toBase64(bytes) {
  let binary = "";
  for (const b of asBytes(bytes)) binary += String.fromCharCode(b);
  return btoa(binary);
}

export function fromBase64(text) {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** Compares without an early exit; for public values this is tidiness, not secrecy. */
export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

// Every size and count the protocol bounds (docs/tunnel.md §13). Part of the wire
// protocol: both ends must agree, so these are constants, not options.

export const PROTOCOL_VERSION = 1;
export const MAX_TICKET_TOKEN = 4096;
export const KEY_SIZE = 32;
export const SIGNATURE_SIZE = 64;

export const RECORD_HEADER = 8;
export const TAG_SIZE = 16;
export const MAX_PLAINTEXT = 65536;
export const MAX_RECORD = RECORD_HEADER + MAX_PLAINTEXT + TAG_SIZE;
export const MIN_RECORD = RECORD_HEADER + TAG_SIZE;

export const FRAME_HEADER = 6;
export const MAX_FRAGMENT = MAX_PLAINTEXT - FRAME_HEADER;
export const MAX_OPEN_REQUEST = 4096;
export const MAX_REASON = 200;
export const MAX_MESSAGE = 256 * 1024;
export const MAX_STREAMS = 32;

export const FRAME_COST = 64;
export const INITIAL_WINDOW = 512 * 1024;
export const CREDIT_THRESHOLD = INITIAL_WINDOW / 4;

/** Local timers (seconds), not part of the wire protocol; the Python ends use the same. */
export const DEFAULT_OPTIONS = Object.freeze({
  pingInterval: 15,
  pingTimeout: 30,
  handshakeTimeout: 30,
  closeTimeout: 2,
});

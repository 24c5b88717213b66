// Failures of the tunnel as types that carry what went wrong. Every failure ends the
// whole tunnel (fail closed) except MessageTooLarge (refuses one local send before
// anything is written) and StreamRefused/StreamClosed (end one stream).

import { closeName, refuseName, streamName } from "./codes.js";

export class TunnelError extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/** The handshake did not complete; no keys exist. */
export class HandshakeError extends TunnelError {}

export class MalformedHandshake extends HandshakeError {}

export class HandshakeTimeout extends HandshakeError {}

/** The agent sent REFUSE. Unauthenticated (anyone on the path could forge it): show it,
 *  never act on it beyond stopping. */
export class Refused extends HandshakeError {
  constructor(code) {
    super(`agent refused the session: ${refuseName(code)}`);
    this.code = code;
    this.slug = refuseName(code);
  }
}

/** AGENT_HELLO carried an identity key other than the one the server listed. */
export class AgentKeyMismatch extends HandshakeError {}

/** The transcript signature does not verify under the listed identity key. */
export class BadAgentSignature extends HandshakeError {}

/** Inside the tunnel: a record failed (bad tag, wrong counter, size). */
export class RecordError extends TunnelError {}

/** A frame broke §7–§9; `code` is the GOODBYE code to send. */
export class ProtocolError extends TunnelError {
  constructor(detail, code = 1) {
    super(detail);
    this.detail = detail;
    this.code = code;
  }
}

/** A local send of a message above the 256 KiB limit; nothing was written. */
export class MessageTooLarge extends TunnelError {
  constructor(size, limit) {
    super(`message of ${size} bytes exceeds ${limit}`);
    this.size = size;
    this.limit = limit;
  }
}

/** The transport (WebSocket) is gone. */
export class TransportClosed extends TunnelError {}

/** The stream ended: closed by either side, or the tunnel under it went down. */
export class ChannelClosed extends Error {
  constructor(reason) {
    super(reason);
    this.name = new.target.name;
    this.reason = reason;
  }
}

/** The tunnel ended; `code` is a GOODBYE code, `by` is "local", "peer" or "transport". */
export class TunnelClosed extends ChannelClosed {
  constructor(code, text = "", by = "local") {
    super(`tunnel closed (${closeName(code)}${text ? `: ${text}` : ""}) by ${by}`);
    this.code = code;
    this.slug = closeName(code);
    this.text = text;
    this.by = by;
  }
}

/** One stream ended; `code` is a stream CLOSE code. */
export class StreamClosed extends ChannelClosed {
  constructor(code, text = "", by = "local") {
    super(`stream closed (${streamName(code)}${text ? `: ${text}` : ""}) by ${by}`);
    this.code = code;
    this.slug = streamName(code);
    this.text = text;
    this.by = by;
  }
}

/** The agent answered our OPEN with CLOSE (permission, unknown service, too many). */
export class StreamRefused extends StreamClosed {}

// Reason codes carried on the wire (docs/tunnel.md §12). Programs act on the number;
// the names are for logs and for looking up the translated text shown to a person.

export const RefuseCode = Object.freeze({
  UNSUPPORTED_VERSION: 1,
  MALFORMED_HELLO: 2,
  MALFORMED_TICKET: 3,
  BAD_TICKET_SIGNATURE: 4,
  TICKET_EXPIRED: 5,
  TICKET_NOT_YET_VALID: 6,
  WRONG_MACHINE: 7,
  UNSUPPORTED_TICKET_VERSION: 8,
  KEY_MISMATCH: 9,
  REPLAYED_SESSION: 10,
  TRY_LATER: 11,
  POLICY: 12,
});

export const CloseCode = Object.freeze({
  NORMAL: 0,
  PROTOCOL_ERROR: 1,
  FLOW_CONTROL: 2,
  MESSAGE_TOO_LARGE: 3,
  TIMEOUT: 4,
  RECORD_ERROR: 5,
  ENDED_BY_USER: 6,
  ENDED_BY_TECHNICIAN: 7,
  REVOKED: 8,
  TICKET_EXPIRED: 9,
  CONSENT_DENIED: 10,
  CONSENT_TIMEOUT: 11,
  GOING_AWAY: 12,
  INTERNAL_ERROR: 13,
  TRANSPORT_CLOSED: 0xffff, // never sent: the transport ended without GOODBYE
});

export const StreamCode = Object.freeze({
  NORMAL: 0,
  REFUSED: 1,
  UNKNOWN_SERVICE: 2,
  TOO_MANY_STREAMS: 3,
  BAD_REQUEST: 4,
  ERROR: 5,
  TUNNEL_CLOSED: 0xffff, // never sent: the tunnel under the stream ended
});

function namer(table) {
  const names = new Map(Object.entries(table).map(([k, v]) => [v, k.toLowerCase().replaceAll("_", "-")]));
  return (code) => names.get(code) ?? `code-${code}`;
}

/** "key-mismatch" for 9, "code-77" for an unknown code: the spec's slugs. */
export const refuseName = namer(RefuseCode);
export const closeName = namer(CloseCode);
export const streamName = namer(StreamCode);

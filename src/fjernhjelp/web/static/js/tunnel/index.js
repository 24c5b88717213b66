// The technician side of the fjernhjelp tunnel (docs/tunnel.md) in WebCrypto.
export { connect } from "./connect.js";
export { generateEphemeral, ephemeralOf, TechnicianHandshake, keySchedule, ticketPayload } from "./handshake.js";
export { WebSocketTransport } from "./transport.js";
export { Tunnel } from "./tunnel.js";
export { Stream } from "./stream.js";
export { CloseCode, RefuseCode, StreamCode, closeName, refuseName, streamName } from "./codes.js";
export * from "./errors.js";
export { toBase64, fromBase64, toHex, fromHex, utf8, fromUtf8 } from "./bytes.js";
export { SAS_WORDS_NB, sasNonce, sasCommitment, sasBytes, sasWords, sasText, sasDigits, sasRevealMessage } from "./sas.js";

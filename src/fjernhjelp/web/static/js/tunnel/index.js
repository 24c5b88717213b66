// The fjernhjelp tunnel (docs/tunnel.md) in WebCrypto: the technician's side, and the
// agent's side for the end user's page that shares its screen (agent.js).
export { accept, AgentHandshake, TicketRefused, verifyTicket, generateIdentity, fromBase64Url } from "./agent.js";
export { connect } from "./connect.js";
export { generateEphemeral, ephemeralOf, TechnicianHandshake, keySchedule, ticketPayload } from "./handshake.js";
export { WebSocketTransport } from "./transport.js";
export { Tunnel } from "./tunnel.js";
export { Stream } from "./stream.js";
export { CloseCode, RefuseCode, StreamCode, closeName, refuseName, streamName } from "./codes.js";
export * from "./errors.js";
export { toBase64, fromBase64, toHex, fromHex, utf8, fromUtf8 } from "./bytes.js";
export { SAS_WORDS_NB, sasNonce, sasCommitment, sasBytes, sasWords, sasText, sasDigits, sasRevealMessage } from "./sas.js";

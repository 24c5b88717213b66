// Opening a tunnel over a transport: the technician's handshake, then a running Tunnel.

import { HandshakeError, HandshakeTimeout, TransportClosed } from "./errors.js";
import { TechnicianHandshake } from "./handshake.js";
import { DEFAULT_OPTIONS } from "./limits.js";
import { Tunnel } from "./tunnel.js";

/**
 * @param {object} transport an open WebSocketTransport (or anything with send/recv/close)
 * @param {object} o
 * @param {string} o.ticket the server's opaque ticket
 * @param {{privateKey: CryptoKey, publicKey: Uint8Array}} o.ephemeral the key pair whose
 *   public half the server bound into the ticket (generateEphemeral())
 * @param {Uint8Array} o.agentIdentity the raw Ed25519 key the server listed for the machine
 * @param {object} [o.options] timers in seconds: pingInterval, pingTimeout, handshakeTimeout, closeTimeout
 * @returns {Promise<Tunnel>} rejects with Refused, AgentKeyMismatch, BadAgentSignature,
 *   MalformedHandshake, HandshakeTimeout or HandshakeError; the transport is closed then.
 */
export async function connect(transport, { ticket, ephemeral, agentIdentity, options = {}, random }) {
  const settings = { ...DEFAULT_OPTIONS, ...options };
  const handshake = new TechnicianHandshake({ ticket, ephemeral, agentIdentity, random });
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new HandshakeTimeout("the agent did not answer the HELLO")), settings.handshakeTimeout * 1000);
  });
  let keys;
  try {
    const exchange = (async () => {
      transport.send(handshake.hello());
      return handshake.receive(await transport.recv());
    })();
    keys = await Promise.race([exchange, timeout]);
  } catch (error) {
    transport.close();
    if (error instanceof TransportClosed) throw new HandshakeError(`the transport closed during the handshake (${error.message})`);
    throw error;
  } finally {
    clearTimeout(timer);
  }
  const tunnel = new Tunnel(transport, keys, settings);
  tunnel.start();
  return tunnel;
}

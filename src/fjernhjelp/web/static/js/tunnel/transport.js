// What the tunnel runs over: whole binary messages, in order (one record each). In the
// browser that is a WebSocket to the server's relay.

import { TransportClosed } from "./errors.js";

export class WebSocketTransport {
  #ws;
  #queue = [];
  #readers = [];
  #closed = null;

  /**
   * Opens a WebSocket and, once it is open, sends `firstMessage` (the relay's join
   * message, text) if given; after that only binary tunnel messages flow.
   * @returns {Promise<WebSocketTransport>}
   */
  static open(url, { firstMessage = null, timeout = 30 } = {}) {
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(url);
      } catch (error) {
        reject(new TransportClosed(`cannot open ${url}: ${error.message}`));
        return;
      }
      ws.binaryType = "arraybuffer";
      const timer = setTimeout(() => {
        ws.close();
        reject(new TransportClosed("the relay did not answer in time"));
      }, timeout * 1000);
      ws.onopen = () => {
        clearTimeout(timer);
        if (firstMessage !== null) ws.send(firstMessage);
        resolve(new WebSocketTransport(ws));
      };
      ws.onclose = (event) => {
        clearTimeout(timer);
        reject(new TransportClosed(`the relay refused the connection (${event.code})`));
      };
    });
  }

  /** Wraps an open WebSocket. */
  constructor(ws) {
    this.#ws = ws;
    ws.binaryType = "arraybuffer";
    ws.onmessage = (event) => {
      if (typeof event.data === "string") {
        // The tunnel speaks only binary: a text message is a protocol violation.
        this.#end(new TransportClosed("text message on a binary tunnel"));
        ws.close();
        return;
      }
      const message = new Uint8Array(event.data);
      if (this.#readers.length) this.#readers.shift().resolve(message);
      else this.#queue.push(message);
    };
    ws.onclose = (event) => {
      const error = new TransportClosed(`closed (${event.code}${event.reason ? ` ${event.reason}` : ""})`);
      // The relay says why it closed (4003 "cut:grant_revoked"); the page looks the reason
      // up in its catalogue and never shows it raw.
      error.closeCode = event.code;
      error.closeReason = String(event.reason ?? "").slice(0, 120);
      this.#end(error);
    };
    ws.onerror = () => {}; // onclose follows and says it
  }

  /** Queues one binary message; throws TransportClosed once the socket is going away. */
  send(message) {
    if (this.#closed || this.#ws.readyState !== WebSocket.OPEN) {
      throw this.#closed ?? new TransportClosed("the WebSocket is not open");
    }
    this.#ws.send(message);
  }

  /** The next message; messages that arrived before a close are still delivered. */
  recv() {
    if (this.#queue.length) return Promise.resolve(this.#queue.shift());
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise((resolve, reject) => this.#readers.push({ resolve, reject }));
  }

  /** Idempotent, never throws. */
  close() {
    this.#end(new TransportClosed("closed locally"));
    try {
      this.#ws.close(1000);
    } catch {
      // already closing
    }
  }

  get bufferedAmount() {
    return this.#ws.bufferedAmount;
  }

  #end(error) {
    if (this.#closed) return;
    this.#closed = error;
    for (const reader of this.#readers.splice(0)) reader.reject(error);
  }
}

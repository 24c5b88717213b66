// One numbered stream of a tunnel (docs/tunnel.md §8–§9): whole messages in, DATA
// fragments out and back, and the credit accounts of both directions. A stream whose
// reader is slow holds at most one window; a busy stream cannot starve another
// (fragments of different streams interleave record by record).

import { asBytes, fromUtf8, utf8 } from "./bytes.js";
import { StreamCode } from "./codes.js";
import { MessageTooLarge, ProtocolError, StreamClosed, StreamRefused } from "./errors.js";
import { CREDIT_THRESHOLD, FRAME_COST, INITIAL_WINDOW, MAX_FRAGMENT, MAX_MESSAGE } from "./limits.js";
import { CONTROL_STREAM, FrameType, creditFrame, dataFrame, reasonFrame } from "./frames.js";

const CLOSE_CODE_FOR = new Map([
  ["", StreamCode.NORMAL],
  ["closed", StreamCode.NORMAL],
  ["normal", StreamCode.NORMAL],
  ["refused", StreamCode.REFUSED],
  ["unknown-service", StreamCode.UNKNOWN_SERVICE],
  ["too-many-streams", StreamCode.TOO_MANY_STREAMS],
  ["bad-request", StreamCode.BAD_REQUEST],
]);

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export class Stream {
  #host;
  #closed = null;
  #closedSignal = deferred();
  #dropBuffered = false;
  #opened = deferred();
  // sending
  #sendWindow = INITIAL_WINDOW;
  #windowWaiters = [];
  #sendChain = Promise.resolve();
  // receiving
  #recvWindow = INITIAL_WINDOW;
  #fragments = [];
  #partialSize = 0;
  #partialCost = 0;
  #inbox = [];
  #readers = [];
  #owed = 0;

  /** Made by the tunnel: `state` is "opening" (OPEN sent) or "open" (the control stream). */
  constructor(host, id, service, params, state) {
    this.#host = host;
    this.id = id;
    this.service = service;
    this.params = params;
    this.state = state;
    this.bytesSent = 0;
    this.bytesReceived = 0;
    this.#opened.promise.catch(() => {}); // a refused open may never be awaited
    if (state === "open") this.#opened.resolve();
  }

  /** Resolves once the agent accepted; rejects with StreamRefused or TunnelClosed. */
  get opened() {
    return this.#opened.promise;
  }

  /** Resolves (never rejects) with the ChannelClosed that ended the stream. */
  get ended() {
    return this.#closedSignal.promise;
  }

  get closed() {
    return this.#closed;
  }

  /** Received bytes not yet taken by recv(), whole or partial. */
  get buffered() {
    return this.#inbox.reduce((n, [m]) => n + m.length, 0) + this.#partialSize;
  }

  /** Sends one message (0–256 KiB). Messages go out whole and in call order; resolves
   *  when the last fragment is on the transport, waiting for credit when the peer is slow. */
  send(message) {
    const bytes = typeof message === "string" ? utf8(message) : asBytes(message).slice();
    if (bytes.length > MAX_MESSAGE) return Promise.reject(new MessageTooLarge(bytes.length, MAX_MESSAGE));
    const sent = this.#sendChain.then(() => this.#sendNow(bytes));
    this.#sendChain = sent.catch(() => {});
    return sent;
  }

  sendJSON(value) {
    return this.send(utf8(JSON.stringify(value)));
  }

  /** The next whole message as a Uint8Array; rejects with the ChannelClosed once the
   *  stream has ended and every whole message received before that was taken. */
  recv() {
    if (this.#inbox.length && !this.#dropBuffered) return Promise.resolve(this.#take());
    if (this.#closed) return Promise.reject(this.#closed);
    const reader = deferred();
    this.#readers.push(reader);
    return reader.promise;
  }

  /** The next message parsed as JSON (rejects with SyntaxError or TypeError if it is not). */
  async recvJSON() {
    return JSON.parse(fromUtf8(await this.recv()));
  }

  /** Ends the stream both ways. A reason other than a known slug is sent as ERROR. */
  close(reason = "closed") {
    if (this.id === CONTROL_STREAM) return this.#host.close(0, reason === "closed" ? "" : reason);
    if (!this.#closed) this.#closeLocally(CLOSE_CODE_FOR.get(reason) ?? StreamCode.ERROR, reason);
    return Promise.resolve();
  }

  async *[Symbol.asyncIterator]() {
    for (;;) {
      try {
        yield await this.recv();
      } catch (error) {
        if (error instanceof StreamClosed && error.code === StreamCode.NORMAL) return;
        throw error;
      }
    }
  }

  // --- called by the tunnel -----------------------------------------------------------

  onData(payload, end) {
    if (this.state === "closed") return; // in flight when we closed
    if (this.state !== "open") throw new ProtocolError(`DATA on stream ${this.id} before it was accepted`);
    const cost = payload.length + FRAME_COST;
    if (cost > this.#recvWindow) throw new ProtocolError(`stream ${this.id} exceeded its window`, 2);
    this.#recvWindow -= cost;
    this.#partialSize += payload.length;
    if (this.#partialSize > MAX_MESSAGE) {
      throw new ProtocolError(`message on stream ${this.id} exceeds ${MAX_MESSAGE} bytes`, 3);
    }
    this.#fragments.push(payload); // a view of this record's own plaintext: no copy needed
    this.#partialCost += cost;
    if (!end) return;
    let message = this.#fragments[0];
    if (this.#fragments.length > 1) {
      message = new Uint8Array(this.#partialSize);
      let offset = 0;
      for (const fragment of this.#fragments) {
        message.set(fragment, offset);
        offset += fragment.length;
      }
    }
    this.#inbox.push([message, this.#partialCost]);
    this.#fragments = [];
    this.#partialSize = 0;
    this.#partialCost = 0;
    if (this.#readers.length) this.#readers.shift().resolve(this.#take());
  }

  onCredit(amount) {
    if (this.state === "closed") return;
    if (this.state !== "open") throw new ProtocolError(`CREDIT on stream ${this.id} before it was accepted`);
    if (this.#sendWindow + amount > INITIAL_WINDOW) {
      throw new ProtocolError(`CREDIT beyond the window on stream ${this.id}`);
    }
    this.#sendWindow += amount;
    this.#wakeSenders();
  }

  onAccept() {
    this.state = "open";
    this.#opened.resolve();
  }

  onPeerClose(code, text) {
    if (this.state === "closed") return;
    const Kind = this.state === "opening" ? StreamRefused : StreamClosed;
    this.#end(new Kind(code, text, "peer"));
    this.#host.forget(this);
  }

  /** The tunnel ended: whole messages stay readable, a half-reassembled one is dropped. */
  onTunnelClosed(error) {
    this.#end(error);
  }

  // --- internals ----------------------------------------------------------------------

  async #sendNow(message) {
    this.#checkSendable();
    let offset = 0;
    do {
      const chunk = message.subarray(offset, offset + MAX_FRAGMENT);
      const end = offset + chunk.length >= message.length;
      const cost = chunk.length + FRAME_COST;
      while (this.#sendWindow < cost) {
        await new Promise((resolve) => this.#windowWaiters.push(resolve));
        this.#checkSendable();
      }
      this.#sendWindow -= cost;
      offset += chunk.length;
      await this.#host.writeFrame(dataFrame(this.id, chunk, end));
      if (end) break;
    } while (offset < message.length);
    this.bytesSent += message.length;
  }

  #checkSendable() {
    if (this.#closed) throw this.#closed;
    if (this.state !== "open") throw new Error(`send on a stream in state ${this.state}`);
  }

  #take() {
    const [message, cost] = this.#inbox.shift();
    this.bytesReceived += message.length;
    this.#owed += cost;
    if (this.#owed >= CREDIT_THRESHOLD && this.state === "open") {
      this.#recvWindow += this.#owed;
      this.#host.writeFrame(creditFrame(this.id, this.#owed)).catch(() => {});
      this.#owed = 0;
    }
    return message;
  }

  #closeLocally(code, reason) {
    const was = this.state;
    this.#end(new StreamClosed(code, reason, "local"));
    this.#dropBuffered = true;
    if (was === "open" || was === "opening") {
      this.#host.writeFrame(reasonFrame(FrameType.CLOSE, this.id, code, reason)).catch(() => {});
    }
    this.#host.forget(this);
  }

  #end(error) {
    if (!this.#closed) this.#closed = error;
    this.state = "closed";
    this.#fragments = [];
    this.#partialSize = 0;
    this.#partialCost = 0;
    this.#opened.reject(error);
    this.#wakeSenders();
    this.#closedSignal.resolve(this.#closed);
    for (const reader of this.#readers.splice(0)) {
      if (this.#inbox.length && !this.#dropBuffered) reader.resolve(this.#take());
      else reader.reject(this.#closed);
    }
  }

  #wakeSenders() {
    for (const wake of this.#windowWaiters.splice(0)) wake();
  }
}

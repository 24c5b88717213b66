// A running tunnel (docs/tunnel.md §6–§11): records over a transport, streams over
// records. Technician side by default; with `role: "agent"` (the end user's page sharing
// its screen, agent.js) it waits for the technician's PING as key confirmation and takes
// the technician's OPENs (accept()) instead of sending its own. The reader opens records strictly one after the other (an await
// loop, never racing decrypts) and never waits for an application, so PING and CREDIT
// are always answered. Writers take their counter synchronously and records leave in
// counter order. Any failure closes the whole tunnel and every stream rejects.

import { CloseCode, StreamCode } from "./codes.js";
import { ProtocolError, RecordError, StreamRefused, TransportClosed, TunnelClosed } from "./errors.js";
import {
  CONTROL_STREAM,
  FrameType,
  encodeFrame,
  openFrame,
  parseFrame,
  reasonFrame,
  reasonOf,
  SERVICE_NAME,
} from "./frames.js";
import { DEFAULT_OPTIONS, MAX_STREAMS } from "./limits.js";
import { RecordOpener, RecordSealer } from "./records.js";
import { Stream } from "./stream.js";
import { fromUtf8, readU32 } from "./bytes.js";

const now = () => performance.now() / 1000;

/** The tunnel ended because its transport did; keeps the relay's close code and reason
 *  (the server's word, not the agent's: shown only through the page's catalogue). */
function transportGone(error) {
  const closed = new TunnelClosed(CloseCode.TRANSPORT_CLOSED, error.message, "transport");
  closed.relayCode = error.closeCode ?? null;
  closed.relayReason = error.closeReason ?? "";
  return closed;
}

export class Tunnel {
  #transport;
  #sealer;
  #opener;
  #options;
  #streams = new Map();
  #lastStreamId = 0;
  #writeChain = Promise.resolve();
  #lastReceived = now();
  #lastPing = now();
  #timer = null;
  #closed = null;
  #done;
  #resolveDone;
  #role;
  #confirmed = false;
  #resolveConfirmed;
  #pending = [];
  #acceptors = [];

  /** Made by connect(), not directly. */
  constructor(transport, keys, options = {}) {
    this.#transport = transport;
    this.#sealer = new RecordSealer(keys.sendKey);
    this.#opener = new RecordOpener(keys.receiveKey);
    this.#options = { ...DEFAULT_OPTIONS, ...options };
    this.#role = options.role === "agent" ? "agent" : "technician";
    this.transcriptHash = keys.transcriptHash;
    /** Resolves once the technician's first record (a PING) opened: the agent side's key
     *  confirmation (§5.5). The technician side is confirmed from the start. */
    this.confirmed = new Promise((resolve) => {
      this.#resolveConfirmed = resolve;
    });
    if (this.#role === "technician") this.#confirm();
    this.stats = { recordsSent: 0, recordsReceived: 0, bytesSent: 0, bytesReceived: 0 };
    this.#done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });
    /** Stream 0: JSON messages of the application (consent state, system information). */
    this.control = new Stream(this, CONTROL_STREAM, "control", {}, "open");
    this.#streams.set(CONTROL_STREAM, this.control);
  }

  start() {
    // The technician's first record proves to the agent that it holds the keys.
    if (this.#role === "technician") this.#writePing();
    this.#readLoop();
    const o = this.#options;
    const tick = (Math.min(o.pingInterval, o.pingTimeout) / 4) * 1000;
    this.#timer = setInterval(() => this.#keepAlive(), tick);
  }

  /** Opens a stream to `service`; rejects with StreamRefused (its `code` says why) or
   *  TunnelClosed. `signal` (an AbortSignal) gives up waiting and closes the stream. */
  async open(service, params = {}, { signal } = {}) {
    if (this.#closed) throw this.#closed;
    if (this.#streams.size >= MAX_STREAMS) {
      throw new StreamRefused(StreamCode.TOO_MANY_STREAMS, "", "local");
    }
    const frame = openFrame(this.#lastStreamId + 1, service, params); // validates first
    const stream = new Stream(this, ++this.#lastStreamId, service, params, "opening");
    this.#streams.set(stream.id, stream);
    const abandon = () => stream.close("abandoned");
    signal?.addEventListener("abort", abandon, { once: true });
    try {
      await this.writeFrame(frame);
      await stream.opened;
    } finally {
      signal?.removeEventListener("abort", abandon);
    }
    return stream;
  }

  /** Agent side: the next stream the technician opened, in state "pending": answer it
   *  with acceptStream(stream) or refuseStream(stream, code). Rejects with TunnelClosed. */
  accept() {
    if (this.#pending.length) return Promise.resolve(this.#pending.shift());
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise((resolve, reject) => this.#acceptors.push({ resolve, reject }));
  }

  acceptStream(stream) {
    if (stream.state !== "pending") return Promise.resolve();
    stream.onAccept();
    return this.writeFrame(encodeFrame(FrameType.ACCEPT, stream.id));
  }

  refuseStream(stream, code = StreamCode.REFUSED, text = "") {
    if (stream.state !== "pending") return Promise.resolve();
    stream.onTunnelClosed(new StreamRefused(code, text, "local"));
    this.#streams.delete(stream.id);
    return this.writeFrame(reasonFrame(FrameType.CLOSE, stream.id, code, text)).catch(() => {});
  }

  /** Ends the tunnel: GOODBYE(code) to the peer (best effort within closeTimeout), every
   *  stream rejects with TunnelClosed, the transport closes. Idempotent; resolves to the
   *  TunnelClosed that ended it. */
  async close(code = CloseCode.NORMAL, reason = "") {
    if (!this.#closed) {
      this.#markClosed(new TunnelClosed(code, reason, "local"));
      const goodbye = this.#seal(reasonFrame(FrameType.GOODBYE, CONTROL_STREAM, code, reason));
      let timer;
      const timeout = new Promise((resolve) => {
        timer = setTimeout(resolve, this.#options.closeTimeout * 1000);
      });
      await Promise.race([goodbye.catch(() => {}), timeout]);
      clearTimeout(timer);
      this.#teardown();
    }
    return this.#done;
  }

  /** Resolves (never rejects) with the TunnelClosed that ended the tunnel. */
  get done() {
    return this.#done;
  }

  /** The TunnelClosed once ended, else null. */
  get closed() {
    return this.#closed;
  }

  get streams() {
    return [...this.#streams.values()].filter((s) => s.id !== CONTROL_STREAM);
  }

  // --- what a Stream needs --------------------------------------------------------------

  writeFrame(frame) {
    if (this.#closed) return Promise.reject(this.#closed);
    return this.#seal(frame);
  }

  forget(stream) {
    this.#streams.delete(stream.id);
  }

  // --- internals --------------------------------------------------------------------------

  #seal(frame) {
    let record;
    try {
      record = this.#sealer.seal(frame); // takes the counter now, in call order
    } catch (error) {
      return Promise.reject(error);
    }
    const sent = this.#writeChain
      .then(() => record)
      .then((bytes) => {
        this.#transport.send(bytes);
        this.stats.recordsSent += 1;
        this.stats.bytesSent += bytes.length;
      });
    this.#writeChain = sent.catch((error) => {
      // Nothing more can go out in order: end without a GOODBYE.
      if (error instanceof TransportClosed) this.#fail(transportGone(error));
      else this.#fail(new TunnelClosed(CloseCode.INTERNAL_ERROR, error.message, "local"));
    });
    return sent;
  }

  async #readLoop() {
    try {
      for (;;) {
        const record = await this.#transport.recv();
        if (this.#closed) return;
        this.stats.recordsReceived += 1;
        this.stats.bytesReceived += record.length;
        const frame = parseFrame(await this.#opener.open(record));
        if (this.#closed) return;
        this.#lastReceived = now();
        if (!this.#confirmed) {
          // Agent side: the first record must be the technician's PING (§5.5).
          if (frame.type !== FrameType.PING) throw new ProtocolError("the first record is not a PING");
          this.#confirm();
        }
        if (frame.type === FrameType.GOODBYE) {
          const { code, text } = reasonOf(frame.payload);
          this.#fail(new TunnelClosed(code, text, "peer"));
          return;
        }
        this.#dispatch(frame);
      }
    } catch (error) {
      if (this.#closed) return;
      if (error instanceof TransportClosed) {
        this.#fail(transportGone(error));
      } else if (error instanceof RecordError) {
        await this.close(CloseCode.RECORD_ERROR, error.message);
      } else if (error instanceof ProtocolError) {
        await this.close(error.code, error.detail);
      } else {
        await this.close(CloseCode.INTERNAL_ERROR, String(error?.message ?? error));
      }
    }
  }

  #dispatch(frame) {
    const { type, stream: id, payload } = frame;
    if (type === FrameType.PING) {
      this.#seal(encodeFrame(FrameType.PONG, CONTROL_STREAM, payload)).catch(() => {});
      return;
    }
    if (type === FrameType.PONG) return; // liveness is any record
    if (type === FrameType.OPEN) {
      if (this.#role !== "agent") throw new ProtocolError("OPEN sent to the technician side");
      this.#onOpen(id, payload);
      return;
    }
    const stream = this.#streams.get(id);
    if (!stream) {
      if (id > this.#lastStreamId) throw new ProtocolError(`frame on stream ${id}, never opened`);
      return; // a stream we closed; the peer had not yet seen our CLOSE
    }
    if (type === FrameType.DATA) stream.onData(payload, (frame.flags & 1) === 1);
    else if (type === FrameType.CREDIT) stream.onCredit(readU32(payload));
    else if (type === FrameType.CLOSE) {
      const { code, text } = reasonOf(payload);
      stream.onPeerClose(code, text);
    } else if (type === FrameType.ACCEPT) {
      if (this.#role === "agent") throw new ProtocolError("ACCEPT sent to the agent side");
      if (stream.state !== "opening") throw new ProtocolError(`unexpected ACCEPT on stream ${id}`);
      stream.onAccept();
    }
  }

  #onOpen(id, payload) {
    if (id !== this.#lastStreamId + 1) throw new ProtocolError(`OPEN of stream ${id} after ${this.#lastStreamId}`);
    this.#lastStreamId = id;
    let request;
    try {
      request = JSON.parse(fromUtf8(payload));
    } catch {
      request = null;
    }
    const shaped =
      request !== null &&
      typeof request === "object" &&
      Object.keys(request).length === 2 &&
      typeof request.service === "string" &&
      SERVICE_NAME.test(request.service) &&
      request.params !== null &&
      typeof request.params === "object" &&
      !Array.isArray(request.params);
    const stream = new Stream(this, id, shaped ? request.service : "", shaped ? request.params : {}, "pending");
    this.#streams.set(id, stream);
    if (!shaped) this.refuseStream(stream, StreamCode.BAD_REQUEST);
    else if (this.#streams.size > MAX_STREAMS) this.refuseStream(stream, StreamCode.TOO_MANY_STREAMS);
    else if (this.#acceptors.length) this.#acceptors.shift().resolve(stream);
    else this.#pending.push(stream);
  }

  #confirm() {
    this.#confirmed = true;
    this.#resolveConfirmed(true);
  }

  #keepAlive() {
    if (this.#closed) return;
    const o = this.#options;
    const t = now();
    const idle = t - this.#lastReceived;
    if (idle >= o.pingInterval + o.pingTimeout) {
      this.close(CloseCode.TIMEOUT, `nothing received for ${idle.toFixed(1)} s`);
    } else if (idle >= o.pingInterval && t - this.#lastPing >= o.pingInterval) {
      this.#writePing();
    }
  }

  #writePing() {
    this.#lastPing = now();
    const payload = crypto.getRandomValues(new Uint8Array(8));
    this.#seal(encodeFrame(FrameType.PING, CONTROL_STREAM, payload)).catch(() => {});
  }

  /** Ended without us sending a GOODBYE (the peer's GOODBYE, the transport gone). */
  #fail(error) {
    if (this.#closed) return;
    this.#markClosed(error);
    this.#teardown();
  }

  #markClosed(error) {
    this.#closed = error;
    if (!this.#confirmed) this.#resolveConfirmed(false);
    for (const acceptor of this.#acceptors.splice(0)) acceptor.reject(error);
    this.#pending = [];
    for (const stream of this.#streams.values()) stream.onTunnelClosed(error);
    this.#streams.clear();
  }

  #teardown() {
    clearInterval(this.#timer);
    this.#transport.close();
    this.#resolveDone(this.#closed);
  }
}

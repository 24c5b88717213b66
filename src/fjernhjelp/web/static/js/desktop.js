// The desktop: noVNC (from the npm package, served under /vendor) fed through a channel
// object over a tunnel stream, so the relay still sees only ciphertext. The stream
// carries the RFB 3.8 byte stream as messages (the agent sends at most 64 KiB each).

import { asBytes } from "./tunnel/bytes.js";

export const NOVNC_RFB = "/vendor/novnc/core/rfb.js";
const MAX_CHUNK = 64 * 1024;

/**
 * A channel object noVNC 1.x accepts in place of a WebSocket URL. noVNC's Websock.attach
 * checks for `binaryType`, `protocol`, `readyState`, `onopen`, `onmessage`, `onerror`,
 * `onclose` as own properties and `send`/`close` on the prototype, so those are exactly
 * what is public here; the rest lives in private fields.
 *
 * Pass an open Stream, or the promise of one (tunnel.open("desktop") still waiting for
 * the agent, e.g. for the end user's consent): `onopen` fires only in the second case,
 * because noVNC starts the RFB handshake itself when the channel is already open.
 * Construct the RFB object in the same task as the channel.
 */
export class TunnelChannel {
  #stream = null;
  #sendChain = Promise.resolve();

  constructor(streamOrPromise) {
    this.binaryType = "arraybuffer";
    this.protocol = "";
    this.readyState = "connecting"; // RTCDataChannel's strings, which noVNC understands
    this.onopen = null;
    this.onmessage = null;
    this.onerror = null;
    this.onclose = null;
    if (typeof streamOrPromise?.then === "function") {
      streamOrPromise.then(
        (stream) => {
          this.#stream = stream;
          if (this.readyState !== "connecting") {
            stream.close(); // closed by noVNC while the agent was still deciding
            return;
          }
          this.readyState = "open";
          this.onopen?.({ type: "open" });
          this.#pump();
        },
        (error) => this.#ended(error),
      );
    } else {
      this.#stream = streamOrPromise;
      this.readyState = streamOrPromise.state === "open" ? "open" : "closed";
      if (this.readyState === "open") queueMicrotask(() => this.#pump());
    }
  }

  /** The tunnel stream under the channel (null while it is still being opened). */
  get stream() {
    return this.#stream;
  }

  send(data) {
    if (this.readyState !== "open") return; // noVNC checks first; a late flush is dropped
    // noVNC hands a view into its reused send buffer: copy before anything awaits.
    const bytes = asBytes(data).slice();
    const stream = this.#stream;
    for (let offset = 0; offset < bytes.length; offset += MAX_CHUNK) {
      const chunk = bytes.subarray(offset, offset + MAX_CHUNK);
      this.#sendChain = this.#sendChain.then(() => stream.send(chunk));
    }
    this.#sendChain = this.#sendChain.catch((error) => this.#ended(error));
  }

  close() {
    if (this.readyState === "closing" || this.readyState === "closed") return;
    this.readyState = "closing";
    this.#stream?.close();
    // noVNC waits for the close event (and times out after 3 s without it): answer it
    // once noVNC has finished the call that closed us.
    setTimeout(() => this.#finish({}), 0);
  }

  async #pump() {
    const stream = this.#stream;
    try {
      for (;;) {
        const message = await stream.recv(); // strictly in order, already decrypted
        if (this.readyState !== "open") return;
        const whole = message.byteOffset === 0 && message.byteLength === message.buffer.byteLength;
        this.onmessage?.({ data: whole ? message.buffer : message.slice().buffer });
      }
    } catch (error) {
      this.#ended(error);
    }
  }

  #ended(error) {
    if (this.readyState === "closed") return;
    const clean = error?.code === 0 && error?.name === "StreamClosed";
    if (!clean && this.readyState !== "closing") this.onerror?.({ type: "error", error });
    this.#finish({ code: clean ? 1000 : 1006, reason: error?.slug ?? "", wasClean: clean, error });
  }

  #finish(event) {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    this.onclose?.(event);
  }
}

/** Loads noVNC; rejects with a clear error when the npm package is not installed. */
export async function loadRFB() {
  try {
    return (await import(NOVNC_RFB)).default;
  } catch (error) {
    throw new Error(`noVNC could not be loaded from ${NOVNC_RFB} (${error.message})`);
  }
}

/**
 * Opens the "desktop" stream and a noVNC viewer on it inside `target`.
 * @returns {Promise<{rfb: object, channel: TunnelChannel, opened: Promise<Stream>}>} the
 *   viewer appears at once and connects when the agent accepts the stream (`opened`
 *   resolves); a refusal rejects `opened` with StreamRefused and closes the channel.
 */
export async function openDesktop(tunnel, target, { viewOnly = false, scale = true, params = {} } = {}) {
  const RFB = await loadRFB();
  const opened = tunnel.open("desktop", params);
  opened.catch(() => {}); // the channel reports it to noVNC; callers may await `opened`
  const channel = new TunnelChannel(opened);
  const rfb = new RFB(target, channel, { shared: true });
  rfb.viewOnly = viewOnly;
  rfb.scaleViewport = scale;
  rfb.focusOnClick = true;
  return { rfb, channel, opened };
}

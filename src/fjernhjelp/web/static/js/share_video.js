// The end user's side of the "screen" service (screenwire.js): frames of the shared
// screen through WebCodecs' VideoEncoder onto the stream. The tunnel's backpressure is
// the frame rate: a frame is encoded only when the previous chunk has left (the stream's
// credit, docs/tunnel.md §9) and the encoder is idle; every other frame is dropped before
// encoding, so a slow tunnel sees fewer frames, never a growing queue. A frame whose
// pixels equal the last one sent is dropped before the encoder too: a still screen costs
// nothing, whatever rate the browser's capture runs at.
//
// The same backpressure sets the bitrate (BitrateControl): a delta chunk that a captured
// frame had to wait for lowers it, a run of chunks that left in time raises it again, a
// step at a time; the encoder is reconfigured before its next frame (docs/tunnel.md §19).

import { CODECS, MAX_CHUNK, chunkMessage, configMessage } from "./screenwire.js";
import { fromUtf8 } from "./tunnel/bytes.js";

const BITS_PER_PIXEL = 2; // per second, at 30 frames: about 2 Mbit/s for 1280×800
const FRAME_RATE = 30;
// Down fast, up slowly: a congested tunnel costs the technician latency at once, a
// bitrate raised too early only congests it again.
export const BITRATE_DOWN = 0.7;
export const BITRATE_UP = 1.15;
export const RECOVER_AFTER = 20; // delta chunks in a row that left without a frame waiting
export const MIN_BITRATE_SHARE = 0.1; // of the screen's full bitrate
const MIN_BITRATE = 100_000;

/** The encoder's bitrate from the tunnel's backpressure, one chunk at a time. */
export class BitrateControl {
  constructor(max) {
    this.max = max;
    this.min = Math.min(max, Math.max(MIN_BITRATE, Math.round(max * MIN_BITRATE_SHARE)));
    this.current = max;
    this.clean = 0;
  }

  /** A new screen size: the same share of its full bitrate as before. */
  resize(max) {
    const share = this.current / this.max;
    this.max = max;
    this.min = Math.min(max, Math.max(MIN_BITRATE, Math.round(max * MIN_BITRATE_SHARE)));
    this.current = Math.min(max, Math.max(this.min, Math.round(max * share)));
    this.clean = 0;
  }

  /** A delta chunk encoded at `rate` has left; `stalled` if a captured frame was dropped
   *  while it was on its way. A chunk encoded before the last change says nothing about
   *  the current bitrate, so one congested moment lowers it once, not once per chunk
   *  that was already queued. Returns the new bitrate, or null when it stays. */
  sent(rate, stalled) {
    if (rate !== this.current) return null;
    if (stalled) {
      this.clean = 0;
      const lower = Math.max(this.min, Math.round(this.current * BITRATE_DOWN));
      if (lower === this.current) return null;
      this.current = lower;
      return lower;
    }
    this.clean += 1;
    if (this.clean < RECOVER_AFTER || this.current >= this.max) return null;
    this.clean = 0;
    this.current = Math.min(this.max, Math.round(this.current * BITRATE_UP));
    return this.current;
  }
}

/** Whole-buffer equality, four bytes at a time where the length allows. */
function equalWords(a, b) {
  const words = a.length >>> 2;
  if (a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0) {
    const wa = new Uint32Array(a.buffer, a.byteOffset, words);
    const wb = new Uint32Array(b.buffer, b.byteOffset, words);
    for (let i = 0; i < words; i++) if (wa[i] !== wb[i]) return false;
  } else {
    for (let i = 0; i < words * 4; i++) if (a[i] !== b[i]) return false;
  }
  for (let i = words * 4; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function even(n) {
  return Math.max(2, n - (n % 2));
}

/** The first codec of `wanted` (best first) this browser's VideoEncoder takes at that
 *  size, or null. */
export async function pickCodec(wanted, width, height) {
  for (const codec of CODECS.filter((c) => wanted.includes(c))) {
    const config = encoderConfig(codec, width, height);
    try {
      if ((await VideoEncoder.isConfigSupported(config)).supported) return codec;
    } catch {
      // not this one
    }
  }
  return null;
}

function fullBitrate(width, height) {
  return Math.round(width * height * BITS_PER_PIXEL);
}

function encoderConfig(codec, width, height, bitrate = fullBitrate(width, height)) {
  const config = {
    codec,
    width,
    height,
    bitrate,
    framerate: FRAME_RATE,
    latencyMode: "realtime",
  };
  // Annex B carries the parameter sets in the key frames: the decoder needs no description.
  if (codec.startsWith("avc1")) config.avc = { format: "annexb" };
  return config;
}

/** Frames of `track` as VideoFrames: MediaStreamTrackProcessor where there is one
 *  (Chromium), else a video element's requestVideoFrameCallback (Firefox). */
function frames(track, onFrame) {
  if (typeof MediaStreamTrackProcessor !== "undefined") {
    const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
    (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        onFrame(value);
      }
    })().catch(() => {});
    return () => reader.cancel().catch(() => {});
  }
  const video = document.createElement("video");
  video.muted = true;
  video.srcObject = new MediaStream([track]);
  let stopped = false;
  const next = () => {
    if (stopped) return;
    video.requestVideoFrameCallback((now, meta) => {
      if (video.videoWidth > 0) onFrame(new VideoFrame(video, { timestamp: Math.round(meta.mediaTime * 1e6) }));
      next();
    });
  };
  video.play().then(next, () => {});
  return () => {
    stopped = true;
    video.srcObject = null;
  };
}

/**
 * Sends `track` on the accepted stream until either ends. Resolves to a stop function;
 * rejects with Error("no-encoder") when no codec the technician asked for encodes here.
 * `onPoint(x, y)` gets the technician's pointing (0…1 of the shared screen).
 */
export async function shareScreen(stream, track, { onPoint = () => {}, stats = {} } = {}) {
  const settings = track.getSettings();
  const wanted = Array.isArray(stream.params?.codecs) ? stream.params.codecs.filter((c) => typeof c === "string") : [];
  const codec = await pickCodec(wanted, even(settings.width ?? 1280), even(settings.height ?? 800));
  if (codec === null) throw new Error("no-encoder");
  Object.assign(stats, {
    codec,
    framesCaptured: 0,
    framesEncoded: 0,
    framesDropped: 0,
    framesUnchanged: 0,
    bytes: 0,
    keyFrames: 0,
    bitrate: 0,
    bitrateChanges: 0,
  });
  let size = null; // [width, height] the encoder is configured for
  let bitrates = null; // BitrateControl, from the first frame's size
  let configured = 0; // the bitrate the encoder runs at
  const inFlight = new Set(); // delta chunks on their way: {rate, stalled}
  // The bitrate each frame was given to the encoder at, by timestamp: its chunk may come
  // out after the next configure() was queued (a realtime encoder may also drop a frame).
  const ratesAt = new Map();
  let announce = false; // a CONFIG goes before the next key frame
  let keyNext = true;
  let sending = 0;
  let stopped = false;

  const encoder = new VideoEncoder({
    output(chunk) {
      const data = new Uint8Array(chunk.byteLength);
      chunk.copyTo(data);
      const key = chunk.type === "key";
      if (data.length > MAX_CHUNK) {
        keyNext = true; // dropped: the chain needs a fresh start
        return;
      }
      const messages = [];
      if (key && announce) {
        messages.push(configMessage(codec, size[0], size[1]));
        announce = false;
      }
      messages.push(chunkMessage(key, chunk.timestamp, data));
      const rate = ratesAt.get(chunk.timestamp) ?? configured;
      for (const timestamp of ratesAt.keys()) if (timestamp <= chunk.timestamp) ratesAt.delete(timestamp);
      // A key frame is far above the per-frame budget by design: a frame waiting for it
      // is no sign of a congested tunnel.
      const tracked = key ? null : { rate, stalled: false };
      if (tracked) inFlight.add(tracked);
      messages.forEach((message, index) => {
        const last = index === messages.length - 1;
        sending += 1;
        stats.bytes += message.length;
        stream
          .send(message)
          .finally(() => {
            sending -= 1;
          })
          .then(() => {
            if (!last || !tracked) return;
            inFlight.delete(tracked);
            if (bitrates.sent(tracked.rate, tracked.stalled) !== null) stats.bitrateChanges += 1;
          })
          .catch(() => stop());
      });
      if (key) stats.keyFrames += 1;
    },
    error() {
      stop();
    },
  });

  // The last frame sent, as bytes: a captured frame equal to it is dropped before the
  // encoder (the browser's capture delivers frames at its own rate, changed or not).
  let previous = null;
  let checking = false;
  const unchanged = async (frame) => {
    try {
      const bytes = new Uint8Array(frame.allocationSize());
      await frame.copyTo(bytes);
      const same = previous !== null && previous.length === bytes.length && equalWords(previous, bytes);
      if (!same) previous = bytes;
      return same;
    } catch {
      previous = null; // a frame we cannot read is sent, not guessed at
      return false;
    }
  };

  const encode = (frame) => {
    const width = even(frame.displayWidth);
    const height = even(frame.displayHeight);
    if (size === null || size[0] !== width || size[1] !== height) {
      // A resize (or the start): a new configuration and a key frame.
      size = [width, height];
      if (bitrates === null) bitrates = new BitrateControl(fullBitrate(width, height));
      else bitrates.resize(fullBitrate(width, height));
      configured = bitrates.current;
      encoder.configure(encoderConfig(codec, width, height, configured));
      announce = true;
      keyNext = true;
    } else if (bitrates.current !== configured) {
      // The same size at another bitrate: the decoder's configuration stands, and the
      // encoder goes on from its references or, if it starts over, makes a key frame by
      // itself (the chunk says so). The encoder is idle here, nothing is lost.
      configured = bitrates.current;
      encoder.configure(encoderConfig(codec, width, height, configured));
    }
    stats.bitrate = configured;
    ratesAt.set(frame.timestamp, configured);
    encoder.encode(frame, { keyFrame: keyNext });
    keyNext = false;
    stats.framesEncoded += 1;
  };

  const onFrame = (frame) => {
    stats.framesCaptured += 1;
    if (sending > 0) for (const chunk of inFlight) chunk.stalled = true;
    if (stopped || checking || sending > 0 || encoder.state === "closed" || encoder.encodeQueueSize > 0) {
      stats.framesDropped += 1;
      frame.close();
      return;
    }
    checking = true;
    unchanged(frame)
      .then((same) => {
        // A key frame asked for is made even of a still screen.
        if (same && !keyNext) stats.framesUnchanged = (stats.framesUnchanged ?? 0) + 1;
        else if (!stopped) encode(frame);
      })
      .catch(() => stop())
      .finally(() => {
        checking = false;
        frame.close();
      });
  };

  const stopFrames = frames(track, onFrame);
  function stop() {
    if (stopped) return;
    stopped = true;
    stopFrames();
    if (encoder.state !== "closed") encoder.close();
  }

  (async () => {
    for (;;) {
      let request;
      try {
        request = JSON.parse(fromUtf8(await stream.recv()));
      } catch (error) {
        if (error instanceof SyntaxError || error instanceof TypeError) continue;
        stop();
        return;
      }
      if (request?.type === "key-frame") {
        keyNext = true;
        announce = true; // the technician's decoder may have to start over
      } else if (request?.type === "point" && Number.isFinite(request.x) && Number.isFinite(request.y)) {
        onPoint(Math.min(1, Math.max(0, request.x)), Math.min(1, Math.max(0, request.y)));
      }
    }
  })();
  return stop;
}

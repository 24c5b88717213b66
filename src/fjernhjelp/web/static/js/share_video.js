// The end user's side of the "screen" service (screenwire.js): frames of the shared
// screen through WebCodecs' VideoEncoder onto the stream. The tunnel's backpressure is
// the frame rate: a frame is encoded only when the previous chunk has left (the stream's
// credit, docs/tunnel.md §9) and the encoder is idle; every other frame is dropped before
// encoding, so a slow tunnel sees fewer frames, never a growing queue. A frame whose
// pixels equal the last one sent is dropped before the encoder too: a still screen costs
// nothing, whatever rate the browser's capture runs at.

import { CODECS, MAX_CHUNK, chunkMessage, configMessage } from "./screenwire.js";
import { fromUtf8 } from "./tunnel/bytes.js";

const BITS_PER_PIXEL = 2; // per second, at 30 frames: about 2 Mbit/s for 1280×800
const FRAME_RATE = 30;

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

async function pickCodec(wanted, width, height) {
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

function encoderConfig(codec, width, height) {
  const config = {
    codec,
    width,
    height,
    bitrate: Math.round(width * height * BITS_PER_PIXEL),
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
  Object.assign(stats, { codec, framesCaptured: 0, framesEncoded: 0, framesDropped: 0, framesUnchanged: 0, bytes: 0, keyFrames: 0 });
  let size = null; // [width, height] the encoder is configured for
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
      for (const message of messages) {
        sending += 1;
        stats.bytes += message.length;
        stream.send(message).finally(() => {
          sending -= 1;
        }).catch(() => stop());
      }
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
      encoder.configure(encoderConfig(codec, width, height));
      announce = true;
      keyNext = true;
    }
    encoder.encode(frame, { keyFrame: keyNext });
    keyNext = false;
    stats.framesEncoded += 1;
  };

  const onFrame = (frame) => {
    stats.framesCaptured += 1;
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

// The technician's view of a screen shared from the end user's browser (the "screen"
// service, screenwire.js): WebCodecs' VideoDecoder drawing on a canvas where the desktop
// usually is. View only: there is no input channel back, by design of the service.

import { CODECS, SERVICE, parseScreenMessage } from "./screenwire.js";
import { utf8 } from "./tunnel/bytes.js";

/** The codecs this browser can decode, best first (the OPEN's params). */
export async function decodableCodecs() {
  if (typeof VideoDecoder === "undefined") return [];
  const found = [];
  for (const codec of CODECS) {
    try {
      if ((await VideoDecoder.isConfigSupported({ codec, optimizeForLatency: true })).supported) found.push(codec);
    } catch {
      // not this one
    }
  }
  return found;
}

/**
 * Opens the screen stream and draws it on a canvas inside `element`. Resolves to
 * {canvas, ended, point(x, y)} once the stream is accepted; rejects with StreamRefused.
 * `onFrame(count)` is told after each frame drawn (tests, the status line).
 */
export async function openScreen(tunnel, element, { onFrame = () => {} } = {}) {
  const codecs = await decodableCodecs();
  if (!codecs.length) throw new Error("no-decoder");
  const stream = await tunnel.open(SERVICE, { codecs });
  const canvas = document.createElement("canvas");
  canvas.className = "screen-share";
  canvas.dataset.testid = "screen-canvas";
  element.replaceChildren(canvas);
  const context = canvas.getContext("2d", { alpha: false });
  let frames = 0;
  let needKey = true;
  const askKeyFrame = () => {
    needKey = true;
    stream.send(utf8(JSON.stringify({ type: "key-frame" }))).catch(() => {});
  };
  const draw = (frame) => {
    if (canvas.width !== frame.displayWidth || canvas.height !== frame.displayHeight) {
      canvas.width = frame.displayWidth;
      canvas.height = frame.displayHeight;
    }
    context.drawImage(frame, 0, 0);
    frame.close();
    frames += 1;
    canvas.dataset.frames = String(frames);
    onFrame(frames);
  };
  // After an error a decoder is closed; the next CONFIG (sent with every key frame the
  // page makes on request) gets a new one.
  let current = new VideoDecoder({ output: draw, error: askKeyFrame });
  const configure = (config) => {
    if (current.state === "closed") current = new VideoDecoder({ output: draw, error: askKeyFrame });
    current.configure({ codec: config.codec, codedWidth: config.width, codedHeight: config.height, optimizeForLatency: true });
  };
  const ended = (async () => {
    for (;;) {
      let message;
      try {
        message = parseScreenMessage(await stream.recv());
      } catch (error) {
        if (error instanceof TypeError || error instanceof SyntaxError) continue; // one bad message: skip it
        return error; // the stream or the tunnel ended
      }
      if (message.kind === "config") {
        try {
          configure(message);
        } catch {
          askKeyFrame();
        }
        continue;
      }
      if (needKey && !message.key) continue; // a delta frame means nothing without its key frame
      if (current.state !== "configured") continue;
      needKey = false;
      try {
        current.decode(new EncodedVideoChunk({ type: message.key ? "key" : "delta", timestamp: message.timestamp, data: message.data }));
      } catch {
        askKeyFrame();
      }
    }
  })();
  ended.finally(() => {
    if (current.state !== "closed") current.close();
  });
  return {
    canvas,
    ended,
    point: (x, y) => stream.send(utf8(JSON.stringify({ type: "point", x, y }))).catch(() => {}),
  };
}

// Test page: noVNC over the tunnel through desktop.js's channel object.
import { TunnelChannel, loadRFB, openDesktop } from "/static/js/desktop.js";
import { sendCombo } from "/static/js/keys.js";

const events = { connected: false, disconnected: null, clipboard: [], opened: 0, closes: [] };

function watch(rfb, channel) {
  rfb.addEventListener("connect", () => { events.connected = true; });
  rfb.addEventListener("disconnect", (e) => { events.disconnected = { clean: e.detail.clean }; });
  rfb.addEventListener("clipboard", (e) => { events.clipboard.push(e.detail.text); });
  window.rfb = rfb;
  window.channel = channel;
}

/** mode "open": the stream is accepted before the channel exists (no onopen);
 *  mode "pending": the channel wraps tunnel.open()'s promise (onopen fires later). */
async function open(mode, { viewOnly = false } = {}) {
  const target = document.getElementById("screen");
  if (mode === "open") {
    const RFB = await loadRFB();
    const stream = await window.tun.open("desktop", {});
    const channel = new TunnelChannel(stream);
    const rfb = new RFB(target, channel, { shared: true });
    rfb.viewOnly = viewOnly;
    watch(rfb, channel);
  } else {
    const { rfb, channel } = await openDesktop(window.tun, target, { viewOnly, scale: false });
    watch(rfb, channel);
  }
  return shape(window.channel);
}

function shape(channel) {
  return {
    own: Object.keys(channel).sort(),
    proto: Object.getOwnPropertyNames(Object.getPrototypeOf(channel)).sort(),
  };
}

function until(predicate) {
  return new Promise((resolve) => {
    const check = () => (predicate() ? resolve(true) : setTimeout(check, 10));
    check();
  });
}

/** RGB of the framebuffer at each [x, y], as noVNC drew it on its canvas. */
function pixels(points) {
  const canvas = document.querySelector("#screen canvas");
  const ctx = canvas.getContext("2d");
  return points.map(([x, y]) => Array.from(ctx.getImageData(x, y, 1, 1).data.slice(0, 3)));
}

window.desk = {
  events, open, until, pixels, sendCombo: (name) => sendCombo(window.rfb, name),
  connected: () => until(() => events.connected),
  disconnected: () => until(() => events.disconnected !== null).then(() => events.disconnected),
  drawn: (x, y, rgb) => until(() => pixels([[x, y]])[0].join() === rgb.join()),
};

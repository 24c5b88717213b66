// The terminal panel: xterm.js (from the npm package, served under /vendor) attached to
// a "shell" stream through ShellSession.

import { ShellSession } from "./shellwire.js";

export const XTERM = "/vendor/xterm/lib/xterm.mjs";
export const XTERM_FIT = "/vendor/xterm-addon-fit/lib/addon-fit.mjs";

/**
 * xterm.js writes its dimension and theme rules into <style> elements it creates itself,
 * and takes no CSP nonce. The page's policy allows <style> elements that carry this
 * response's nonce (style-src-elem), so every <style> created from here on gets it before
 * it is inserted (a nonce added later does not count). Style attributes stay refused.
 * Idempotent; a page without the nonce element is left alone.
 */
export function stampStyleNonce() {
  const nonce = document.getElementById("style-nonce")?.nonce;
  if (!nonce || Document.prototype.createElement.fjhStampsNonce) return;
  const create = Document.prototype.createElement;
  const stamped = function createElement(name, options) {
    const element = create.call(this, name, options);
    if (element instanceof HTMLStyleElement) element.setAttribute("nonce", nonce);
    return element;
  };
  stamped.fjhStampsNonce = true;
  Document.prototype.createElement = stamped;
}

/**
 * Opens a shell on the agent in a terminal inside `element`.
 * @returns {Promise<{term, session: ShellSession, ended: Promise<object>, dispose: Function}>}
 *   rejects with StreamRefused if the agent refuses the stream.
 */
export async function openTerminal(tunnel, element, { runAs = "user", fontSize = 14 } = {}) {
  const [{ Terminal }, { FitAddon }] = await Promise.all([import(XTERM), import(XTERM_FIT)]);
  stampStyleNonce();
  const term = new Terminal({ fontSize, cursorBlink: true, convertEol: false, scrollback: 5000 });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(element);
  fit.fit();
  let stream;
  try {
    stream = await tunnel.open("shell", {});
  } catch (error) {
    term.dispose();
    throw error;
  }
  const session = new ShellSession(stream, {
    rows: term.rows,
    cols: term.cols,
    runAs,
    onOutput: (bytes) => term.write(bytes),
  });
  const encoder = (text) => Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
  const subscriptions = [
    term.onData((text) => session.write(text).catch(() => {})),
    term.onBinary((text) => session.write(encoder(text)).catch(() => {})),
    term.onResize(({ rows, cols }) => session.resize(rows, cols).catch(() => {})),
  ];
  const observer = new ResizeObserver(() => fit.fit());
  observer.observe(element);
  const dispose = () => {
    observer.disconnect();
    subscriptions.forEach((s) => s.dispose());
    session.close();
    term.dispose();
  };
  const ended = session.ended.then((outcome) => {
    observer.disconnect();
    subscriptions.forEach((s) => s.dispose());
    term.options.disableStdin = true;
    return outcome;
  });
  return { term, session, fit, ended, dispose };
}

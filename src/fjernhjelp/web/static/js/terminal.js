// The terminal panel: xterm.js (from the npm package, served under /vendor) attached to
// a "shell" stream through ShellSession.

import { ShellSession, readOffer } from "./shellwire.js";

/** The agent refused the shell (before any terminal was shown); `code` names why. */
export class ShellRefused extends Error {
  constructor({ code, message }) {
    super(message);
    this.code = code;
  }
}

export const XTERM = "/vendor/xterm/lib/xterm.mjs";
export const XTERM_FIT = "/vendor/xterm-addon-fit/lib/addon-fit.mjs";

/**
 * xterm.js writes its dimension and theme rules into <style> elements it creates itself,
 * and takes no CSP nonce. The page's policy allows <style> elements that carry this
 * response's nonce (style-src-elem), so every <style> created from here on gets it before
 * it is inserted (a nonce added later does not count). Style attributes stay refused.
 * Idempotent; returns false on a page without the nonce element (nothing is changed).
 */
export function stampStyleNonce() {
  const nonce = document.getElementById("style-nonce")?.nonce;
  if (!nonce) return false;
  if (Document.prototype.createElement.fjhStampsNonce) return true;
  const create = Document.prototype.createElement;
  const stamped = function createElement(name, options) {
    const element = create.call(this, name, options);
    if (element instanceof HTMLStyleElement) element.setAttribute("nonce", nonce);
    return element;
  };
  stamped.fjhStampsNonce = true;
  Document.prototype.createElement = stamped;
  return true;
}

/**
 * The fallback for a page without a style nonce (stampStyleNonce returned false): the
 * CSP refuses xterm's <style> elements (each refusal is logged), and each one xterm adds
 * under `root` is mirrored into an adopted CSSStyleSheet, which CSP allows, and kept in
 * step with it. Returns a function that stops.
 */
export function adoptInlineStyles(root) {
  const sheets = new Map();
  const sync = (style) => {
    let sheet = sheets.get(style);
    if (!sheet) {
      sheet = new CSSStyleSheet();
      sheets.set(style, sheet);
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    }
    sheet.replaceSync(style.textContent ?? "");
  };
  const drop = (style) => {
    const sheet = sheets.get(style);
    if (!sheet) return;
    sheets.delete(style);
    document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => s !== sheet);
  };
  const styleOf = (node) => (node instanceof HTMLStyleElement ? node : node.parentElement instanceof HTMLStyleElement ? node.parentElement : null);
  const observer = new MutationObserver((records) => {
    for (const record of records) {
      const owner = styleOf(record.target);
      if (owner) sync(owner);
      for (const node of record.addedNodes) if (node instanceof HTMLStyleElement) sync(node);
      for (const node of record.removedNodes) if (node instanceof HTMLStyleElement) drop(node);
    }
  });
  observer.observe(root, { subtree: true, childList: true, characterData: true });
  root.querySelectorAll("style").forEach(sync);
  return () => {
    observer.disconnect();
    [...sheets.keys()].forEach(drop);
  };
}

/**
 * What a paste may give the remote shell. xterm.js 6.0.0 wraps a paste in the
 * bracketed-paste markers without escaping the markers inside it (GHSA-h62m-39wp-xq3w):
 * a clipboard holding ESC[201~ would end the paste early and type the rest, Enter and
 * all, into the customer's shell, where bracketed paste exists to stop exactly that. So
 * every ESC, and the 8-bit CSI (U+009B), arrives as the visible U+241B, as xterm.js's own
 * fix after 6.0.0 does; the rest arrives as pasted. Remove with a release carrying it.
 */
export function pasteSafe(text) {
  return text.replace(/[\u001b\u009b]/g, "\u241b");
}

/**
 * Opens a shell on the agent in a terminal inside `element`. The agent first says which
 * accounts it offers; `choose(offer)` picks one (by default the agent's default) and may
 * return a promise (the technician picking), or null to give up.
 * @returns {Promise<{term, session: ShellSession, ended: Promise<object>, dispose: Function}>}
 *   rejects with StreamRefused if the agent refuses the stream, ShellRefused if it
 *   refuses the shell.
 */
export async function openTerminal(tunnel, element, { choose = (offer) => offer.default, fontSize = 14 } = {}) {
  const modules = Promise.all([import(XTERM), import(XTERM_FIT)]);
  modules.catch(() => {}); // awaited below; a failure is reported there
  const stream = await tunnel.open("shell", {});
  const first = await readOffer(stream);
  if (!first.offer) throw new ShellRefused(first.error ?? { code: "closed", message: String(first.closed) });
  let runAs;
  let Terminal;
  let FitAddon;
  try {
    runAs = await choose(first.offer);
    [{ Terminal }, { FitAddon }] = await modules;
  } catch (error) {
    stream.close();
    throw error;
  }
  if (!runAs) {
    stream.close();
    throw new ShellRefused({ code: "cancelled", message: "no account chosen" });
  }
  const stopStyles = stampStyleNonce() ? () => {} : adoptInlineStyles(element);
  const term = new Terminal({ fontSize, cursorBlink: true, convertEol: false, scrollback: 5000 });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(element);
  // Every paste through pasteSafe: taken before xterm's own listeners (they sit on nodes
  // inside `element`; this one captures on the way down) and handed to term.paste, which
  // brackets it as before.
  const onPaste = (event) => {
    event.preventDefault();
    event.stopImmediatePropagation();
    const text = event.clipboardData?.getData("text/plain") ?? "";
    if (text) term.paste(pasteSafe(text));
  };
  element.addEventListener("paste", onPaste, { capture: true });
  fit.fit();
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
    element.removeEventListener("paste", onPaste, { capture: true });
    observer.disconnect();
    subscriptions.forEach((s) => s.dispose());
    session.close();
    term.dispose();
    stopStyles();
  };
  const ended = session.ended.then((outcome) => {
    observer.disconnect();
    subscriptions.forEach((s) => s.dispose());
    term.options.disableStdin = true;
    return outcome;
  });
  return { term, session, fit, ended, dispose, offer: first.offer, runAs };
}

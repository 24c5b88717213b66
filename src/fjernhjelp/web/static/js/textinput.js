// Text that reaches the page without key events: input methods, on-screen keyboards,
// dictation, and automation that inserts text (Playwright's keyboard.type for æ, ø, å, –).
// noVNC listens for keydown on its canvas, and a canvas receives no text at all, so such
// characters were lost. The desktop's keyboard focus lives instead in a transparent
// textarea: key presses there go through noVNC's own keyboard handling (which cancels
// them, so they never become text), and whatever still arrives as text is sent to the
// machine as X keysyms, one press and release per character, which the agent binds
// to a spare key when the machine's layout lacks them.

const NOVNC_KEYBOARD = "/vendor/novnc/core/input/keyboard.js";
const XK_RETURN = 0xff0d;
const XK_TAB = 0xff09;

/** The X keysym for one Unicode character (a code point), or null for one that cannot
 *  be typed (control characters, lone surrogates). Latin-1 keysyms equal their code
 *  points; every other character has the Unicode keysym 0x01000000 + code point. */
export function keysymFor(char) {
  const point = char.codePointAt(0);
  if (point === undefined || char.length > (point > 0xffff ? 2 : 1)) return null;
  if (char === "\n" || char === "\r") return XK_RETURN;
  if (char === "\t") return XK_TAB;
  if ((point >= 0x20 && point <= 0x7e) || (point >= 0xa0 && point <= 0xff)) return point;
  if (point < 0xa0 || (point >= 0xd800 && point <= 0xdfff) || point > 0x10ffff) return null;
  return 0x01000000 + point;
}

/** Sends `text` to the machine as key presses; returns how many characters were sent. */
export function sendText(rfb, text) {
  let sent = 0;
  for (const char of String(text).replace(/\r\n/g, "\n")) {
    const keysym = keysymFor(char);
    if (keysym === null) continue;
    rfb.sendKey(keysym, null, true);
    rfb.sendKey(keysym, null, false);
    sent += 1;
  }
  return sent;
}

/**
 * Moves the viewer's keyboard focus into a transparent textarea over the desktop that
 * takes both key presses (through noVNC's Keyboard) and text (input and composition
 * events). Call once the RFB object exists; returns the textarea.
 */
export async function attachTextInput(rfb, target) {
  const { default: Keyboard } = await import(NOVNC_KEYBOARD);
  const area = document.createElement("textarea");
  area.className = "desktop-text-input";
  area.setAttribute("aria-label", target.dataset.inputLabel ?? "");
  area.autocomplete = "off";
  area.spellcheck = false;
  area.setAttribute("autocapitalize", "off");
  area.setAttribute("autocorrect", "off");
  target.append(area);

  const keyboard = new Keyboard(area);
  keyboard.onkeyevent = (keysym, code, down) => rfb.sendKey(keysym, code, down);
  keyboard.grab();

  let composing = false;
  const flush = () => {
    const text = area.value;
    area.value = "";
    if (text) sendText(rfb, text);
  };
  area.addEventListener("compositionstart", () => {
    composing = true;
  });
  area.addEventListener("compositionend", () => {
    composing = false;
    flush(); // the input method's committed text
  });
  area.addEventListener("input", (event) => {
    if (!composing && !event.isComposing) flush();
  });
  area.addEventListener("blur", () => {
    if (!composing) area.value = "";
  });

  // noVNC focuses its canvas on a click (focusOnClick); the keys belong in the textarea.
  const canvas = target.querySelector("canvas");
  canvas?.addEventListener("focus", () => area.focus({ preventScroll: true }));
  rfb.addEventListener("disconnect", () => keyboard.ungrab());
  return area;
}

// Key combinations the technician cannot type into the browser (the local system would
// take them): sent to the remote desktop through noVNC as X keysyms.

const XK = Object.freeze({
  Control_L: 0xffe3,
  Shift_L: 0xffe1,
  Alt_L: 0xffe9,
  Super_L: 0xffeb,
  Escape: 0xff1b,
  Tab: 0xff09,
  F4: 0xffc1,
  Print: 0xff61,
  Delete: 0xffff,
  l: 0x006c,
});

// Each combination: the keys pressed in order, released in reverse; [keysym, code].
export const COMBOS = Object.freeze({
  "ctrl-alt-del": null, // noVNC's own sendCtrlAltDel()
  "ctrl-shift-esc": [[XK.Control_L, "ControlLeft"], [XK.Shift_L, "ShiftLeft"], [XK.Escape, "Escape"]],
  "ctrl-esc": [[XK.Control_L, "ControlLeft"], [XK.Escape, "Escape"]],
  "alt-tab": [[XK.Alt_L, "AltLeft"], [XK.Tab, "Tab"]],
  "alt-f4": [[XK.Alt_L, "AltLeft"], [XK.F4, "F4"]],
  "super": [[XK.Super_L, "MetaLeft"]],
  "super-l": [[XK.Super_L, "MetaLeft"], [XK.l, "KeyL"]],
  "print": [[XK.Print, "PrintScreen"]],
});

/** Sends one of COMBOS by name. noVNC ignores it in view-only mode (and the agent
 *  ignores input of a view-only session anyway). */
export function sendCombo(rfb, name) {
  if (!(name in COMBOS)) throw new RangeError(`unknown key combination ${name}`);
  const keys = COMBOS[name];
  if (keys === null) {
    rfb.sendCtrlAltDel();
    return;
  }
  for (const [keysym, code] of keys) rfb.sendKey(keysym, code, true);
  for (const [keysym, code] of [...keys].reverse()) rfb.sendKey(keysym, code, false);
}

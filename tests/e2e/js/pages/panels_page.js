// Test page: the terminal, files and chat modules over the tunnel.
import { openTerminal } from "/static/js/terminal.js";
import { download, upload } from "/static/js/files.js";
import { Chat } from "/static/js/chat.js";

function until(predicate) {
  return new Promise((resolve) => {
    const check = () => (predicate() ? resolve(true) : setTimeout(check, 10));
    check();
  });
}

function screenText(term) {
  const buffer = term.buffer.active;
  const lines = [];
  for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i).translateToString(true));
  return lines.join("\n");
}

window.panels = {
  until,
  async terminal() {
    window.shell = await openTerminal(window.tun, document.getElementById("terminal"));
    window.shellEnded = null;
    window.shell.ended.then((outcome) => { window.shellEnded = outcome; });
    return { rows: window.shell.term.rows, cols: window.shell.term.cols };
  },
  screen: () => screenText(window.shell.term),
  waitFor: (text) => until(() => screenText(window.shell.term).includes(text)),
  textColour: () => getComputedStyle(document.querySelector("#terminal .xterm-rows")).color,

  async upload(size, path) {
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = (i * 7 + (i >> 11)) & 0xff;
    const progress = [];
    try {
      const result = await upload(window.tun, new Blob([data]), path, { onProgress: (d, t) => progress.push([d, t]) });
      return { result, progress: [progress[0], progress.at(-1)], steps: progress.length };
    } catch (error) {
      return { error: { name: error.name, code: error.code } };
    }
  },
  async download(path) {
    const progress = [];
    try {
      const { blob, name, size, sha256 } = await download(window.tun, path, { onProgress: (d, t) => progress.push([d, t]) });
      return { name, size, sha256, text: size < 1000 ? await blob.text() : null, last: progress.at(-1) };
    } catch (error) {
      return { error: { name: error.name, code: error.code, message: error.detail ?? error.message } };
    }
  },

  async chat() {
    window.chatLog = [];
    window.chat = await Chat.open(window.tun, { onMessage: (m) => window.chatLog.push(m) });
  },
};
document.getElementById("status").textContent = "ready";

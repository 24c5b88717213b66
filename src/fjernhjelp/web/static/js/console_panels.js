// The panels of the session view, each on its own stream of the tunnel: desktop (with
// keys, clipboard, scaling, full screen), chat, files, terminal and system information.
// Everything from the agent is shown with textContent, never parsed as markup.

import { Chat } from "./chat.js";
import { openDesktop } from "./desktop.js";
import { download, upload } from "./files.js";
import { sendCombo } from "./keys.js";
import { openTerminal } from "./terminal.js";
import { attachTextInput } from "./textinput.js";
import { StreamCode } from "./tunnel/codes.js";
import { codeText, formatBytes, formatMoment, text } from "./console_text.js";

const $ = (id) => document.getElementById(id);

/** Why a stream could not be opened, for the person. */
export function streamFailure(error) {
  if (error?.code === StreamCode.REFUSED) return text("stream.refused");
  if (error?.code === StreamCode.UNKNOWN_SERVICE) return text("stream.unavailable");
  return text("stream.failed", { reason: error?.slug ?? error?.message ?? String(error) });
}

export async function startDesktop(tunnel, { control, onConnect }) {
  $("desktop-panel").hidden = false;
  $("clipboard-panel").hidden = false;
  $("view-only").hidden = control;
  $("clipboard-send").disabled = !control;
  const status = $("desktop-status");
  let viewer;
  try {
    viewer = await openDesktop(tunnel, $("desktop"), { viewOnly: !control, scale: $("scale").checked });
  } catch (error) {
    status.textContent = text("desktop.unavailable");
    return null;
  }
  const { rfb, opened } = viewer;
  if (control) attachTextInput(rfb, $("desktop")).catch(() => {}); // keys still reach the canvas
  opened.catch((error) => {
    status.textContent = streamFailure(error);
  });
  rfb.addEventListener("connect", () => {
    status.textContent = "";
    onConnect();
  });
  rfb.addEventListener("disconnect", () => {
    if (!status.textContent) status.textContent = text("desktop.disconnected");
  });
  rfb.addEventListener("clipboard", (event) => {
    $("clipboard-remote").value = event.detail.text;
    navigator.clipboard?.writeText(event.detail.text).catch(() => {}); // only if permitted
  });
  $("ctrl-alt-del").addEventListener("click", () => sendCombo(rfb, "ctrl-alt-del"));
  $("send-combo").addEventListener("click", () => sendCombo(rfb, $("key-combo").value));
  $("scale").addEventListener("change", (event) => {
    rfb.scaleViewport = event.target.checked;
  });
  $("fullscreen").addEventListener("click", () => {
    $("desktop").requestFullscreen?.().catch(() => {});
  });
  $("clipboard-send").addEventListener("click", () => rfb.clipboardPasteFrom($("clipboard-local").value));
  return rfb;
}

export async function startChat(tunnel, { endText }) {
  const panel = $("chat-panel");
  panel.hidden = false;
  const log = $("chat-log");
  const show = (message, mine) => {
    const item = document.createElement("li");
    item.className = mine ? "mine" : "theirs";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = text(mine ? "chat.you" : "chat.user");
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = message.text;
    const at = document.createElement("time");
    at.dateTime = message.at;
    const when = new Date(message.at);
    at.textContent = Number.isNaN(when.getTime()) ? "" : formatMoment(when, { date: false });
    item.append(who, body, at);
    log.append(item);
    log.scrollTop = log.scrollHeight;
  };
  let chat;
  try {
    chat = await Chat.open(tunnel, { onMessage: (message) => show(message, false) });
  } catch (error) {
    const item = document.createElement("li");
    item.textContent = streamFailure(error);
    log.append(item);
    $("chat-form").hidden = true;
    return;
  }
  chat.ended.then(() => {
    // The session ended (say why, as the page does), or the user's side closed the chat
    // (a refused message, the window gone).
    const item = document.createElement("li");
    item.className = "note";
    item.textContent = tunnel.closed
      ? text("chat.ended_with_session", { reason: endText(tunnel.closed) })
      : text("chat.closed_at_machine");
    log.append(item);
    $("chat-form").hidden = true;
  });
  $("chat-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("chat-text");
    if (!input.value.trim()) return;
    const sent = await chat.send(input.value).catch(() => null);
    if (sent) {
      show(sent, true);
      input.value = "";
    }
  });
}

export function startFiles(tunnel) {
  $("files-panel").hidden = false;
  const status = $("files-status");
  const bar = $("files-progress");
  const progress = (name) => (done, total) => {
    bar.hidden = false;
    bar.max = Math.max(total, 1);
    bar.value = done;
    status.textContent = text("files.progress", { name, done, total });
  };
  const failed = (error) => {
    bar.hidden = true;
    status.textContent = text("files.failed", { message: error.detail ?? streamFailure(error) });
  };
  $("upload-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = $("upload-file").files[0];
    if (!file) return;
    const path = $("upload-path").value.trim() || file.name;
    try {
      const result = await upload(tunnel, file, path, { onProgress: progress(file.name) });
      status.textContent = text("files.uploaded", { name: path, size: result.size });
    } catch (error) {
      failed(error);
    }
  });
  $("download-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const path = $("download-path").value.trim();
    if (!path) return;
    try {
      const { blob, name, size } = await download(tunnel, path, { onProgress: progress(path) });
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = name;
      link.hidden = true;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
      status.textContent = text("files.downloaded", { name, size });
    } catch (error) {
      failed(error);
    }
  });
}

export function startTerminal(tunnel) {
  $("terminal-panel").hidden = false;
  const button = $("terminal-open");
  const status = $("terminal-status");
  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = "";
    let shell;
    try {
      shell = await openTerminal(tunnel, $("terminal"));
    } catch (error) {
      status.textContent = streamFailure(error);
      button.disabled = false;
      return;
    }
    shell.term.focus();
    const outcome = await shell.ended;
    if ("exit" in outcome) status.textContent = text("terminal.exited", { code: outcome.exit });
    else if ("error" in outcome) status.textContent = text("terminal.error", { message: outcome.error.message });
    else status.textContent = text("terminal.closed");
    button.disabled = tunnel.closed !== null;
  });
}

const INFO_FIELDS = ["hostname", "os_name", "kernel", "architecture", "users", "agent_version", "cpu_count", "memory_bytes", "boot_time"];

/** Shows a {"type": "sysinfo", ...} control message (fields inline, or under "info"). */
export function showSysinfo(message) {
  const info = message.info && typeof message.info === "object" ? message.info : message;
  const list = $("sysinfo");
  list.replaceChildren();
  for (const field of INFO_FIELDS) {
    let value = info[field];
    if (value === undefined || value === null) continue;
    if (field === "users" && Array.isArray(value)) value = value.join(", ");
    else if (field === "memory_bytes" && Number.isFinite(value)) value = formatBytes(value);
    else if (field === "boot_time") {
      const when = new Date(value);
      value = Number.isNaN(when.getTime()) ? value : formatMoment(when);
    }
    const term = document.createElement("dt");
    term.textContent = text(`info.${field}`);
    const description = document.createElement("dd");
    description.textContent = String(value).slice(0, 500);
    description.dataset.field = field;
    list.append(term, description);
  }
  $("sysinfo-waiting").hidden = list.childElementCount > 0;
}

export { codeText };

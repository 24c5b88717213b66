// Chat with the end user: a "chat" stream of JSON messages {text, at} both ways.

export const MAX_TEXT = 4000;

export class Chat {
  #stream;

  /** Opens the chat stream; `onMessage({text, at})` is called for each valid message from
   *  the end user (anything else on the stream is ignored: it is shown, never run). */
  static async open(tunnel, { onMessage = () => {} } = {}) {
    return new Chat(await tunnel.open("chat", {}), onMessage);
  }

  constructor(stream, onMessage) {
    this.#stream = stream;
    this.onMessage = onMessage;
    this.ended = this.#read();
  }

  /** Sends `text` stamped with the current time; resolves to the message sent. */
  async send(text) {
    const message = { text: String(text).slice(0, MAX_TEXT), at: new Date().toISOString() };
    await this.#stream.sendJSON(message);
    return message;
  }

  close() {
    return this.#stream.close();
  }

  async #read() {
    for (;;) {
      let message;
      try {
        message = await this.#stream.recvJSON();
      } catch (error) {
        if (error instanceof SyntaxError || error instanceof TypeError) continue; // not JSON
        return error;
      }
      if (message && typeof message.text === "string" && typeof message.at === "string") {
        this.onMessage({ text: message.text.slice(0, MAX_TEXT), at: message.at.slice(0, 64) });
      }
    }
  }
}

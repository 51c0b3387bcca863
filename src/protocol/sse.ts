/**
 * The Server-Sent Events wire format of `GET /v1/events/stream` (WHATWG HTML §9.2): the server's
 * formatter and an incremental parser for the client. Each event is
 *
 *   id: <position>\nevent: event\ndata: <EventRecord JSON>\n\n
 *
 * An `id:`-only block (no data) moves the resume point without an event: sent first, so a client
 * knows where it started, and with heartbeats when filtered-out positions went by. Once per
 * connection, when everything up to the store's head has been sent, `event: caught-up` says so with
 * the head as its id and `data: {"position":<head>}`: the log's last position, which may be an
 * entry the client never sees (an audit log entry, another aggregate type). Heartbeats are comment
 * lines. A fatal error is `event: error` with a problem document, then the stream ends.
 */

export const SSE_CONTENT_TYPE = 'text/event-stream';
export const STREAM_EVENT = 'event';
export const STREAM_ERROR = 'error';
export const STREAM_CAUGHT_UP = 'caught-up';

export interface SseMessage {
  /** The `id:` field, if the block had one. */
  readonly id?: string;
  /** The `event:` field; '' when absent (the default "message"). */
  readonly event: string;
  /** The `data:` lines joined by '\n'; '' when none. */
  readonly data: string;
  /** Whether the block carried any data line (a data-less block is not an event). */
  readonly hasData: boolean;
}

/** One SSE block. `data` must not contain newlines (JSON.stringify output never does). */
export function formatSse(m: {
  id?: number | string;
  event?: string;
  data?: string;
  retry?: number;
}): string {
  let out = '';
  if (m.retry !== undefined) out += `retry: ${m.retry}\n`;
  if (m.id !== undefined) out += `id: ${m.id}\n`;
  if (m.event !== undefined) out += `event: ${m.event}\n`;
  if (m.data !== undefined) out += `data: ${m.data}\n`;
  return out + '\n';
}

export const formatComment = (text: string): string => `: ${text}\n\n`;

/** Incremental parser: feed decoded text as it arrives, get complete blocks back. */
export class SseParser {
  #buffer = '';
  #id: string | undefined;
  #event = '';
  #data: string[] = [];
  #fields = false;
  #started = false;

  push(chunk: string): SseMessage[] {
    let text = this.#buffer + chunk;
    if (!this.#started && text.length > 0) {
      this.#started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    const out: SseMessage[] = [];
    let start = 0;
    // Positions of the next '\n' and '\r', found once and refreshed only when passed: linear time.
    let lf = text.indexOf('\n');
    let cr = text.indexOf('\r');
    for (;;) {
      if (lf >= 0 && lf < start) lf = text.indexOf('\n', start);
      if (cr >= 0 && cr < start) cr = text.indexOf('\r', start);
      const end = cr < 0 ? lf : lf < 0 ? cr : Math.min(lf, cr);
      if (end < 0) break;
      // A '\r' at the end of a chunk may be the first half of '\r\n': wait for more.
      if (end === cr && end + 1 === text.length) break;
      this.#line(text.slice(start, end), out);
      start = end + (end === cr && text.charCodeAt(end + 1) === 10 ? 2 : 1);
    }
    this.#buffer = text.slice(start);
    return out;
  }

  #line(line: string, out: SseMessage[]): void {
    if (line === '') {
      if (this.#fields) {
        const data = this.#data.join('\n');
        out.push({
          ...(this.#id === undefined ? {} : { id: this.#id }),
          event: this.#event,
          data,
          hasData: this.#data.length > 0,
        });
      }
      this.#id = undefined;
      this.#event = '';
      this.#data = [];
      this.#fields = false;
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    this.#fields = true;
    if (field === 'id') {
      if (!value.includes('\0')) this.#id = value;
    } else if (field === 'event') this.#event = value;
    else if (field === 'data') this.#data.push(value);
  }
}

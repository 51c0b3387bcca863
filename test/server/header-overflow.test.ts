/**
 * Which part of a request put it over the header limit, from what Node's parser gives with its
 * "Header overflow" (QA scale finding 2): `rawPacket` is only the last read, and `bytesParsed` the end
 * of the part that crossed the limit in it. The reads below are those Node 20 reported for each case
 * (a request written in pieces is read in pieces, which a test over a socket cannot force).
 */
import { describe, expect, it } from 'vitest';
import { headerOverflow } from '../../src/server/protocol.js';

const LIMIT = 16_384;
const a = (n: number) => 'a'.repeat(n);

/** The error Node gives when it stops `at` bytes into the read `packet`. */
const overflow = (packet: string, at: number) =>
  headerOverflow({ rawPacket: Buffer.from(packet, 'latin1'), bytesParsed: at }, LIMIT);

describe('header overflow: the URL or the headers', () => {
  it('is the URL when the read holds the request line up to where the parser stopped', () => {
    const e = overflow(`GET /x/${a(17_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 7 + 17_000);
    expect(e.code).toBe('EDBX_ERR_URI_TOO_LONG');
    expect(e.status).toBe(414);
    expect(e.message).toContain('URL of 17003 bytes is over the limit of 16384 bytes');
  });

  it('is the URL when the read starts the request line but ends inside the URL (no size then)', () => {
    const e = overflow(`POST /x/${a(17_000)}`, 8 + 17_000);
    expect(e.code).toBe('EDBX_ERR_URI_TOO_LONG');
    expect(e.message).toMatch(/^the URL is over the limit of 16384 bytes/);
  });

  it('is the URL after an earlier request of the same read (keep-alive)', () => {
    const first = 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n';
    const e = overflow(`${first}GET /x/${a(17_000)} HTTP/1.1\r\n\r\n`, first.length + 7 + 17_000);
    expect(e.code).toBe('EDBX_ERR_URI_TOO_LONG');
  });

  it("is the URL when the last read is the URL's end, followed by the request line's version", () => {
    expect(overflow(`${a(8_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 8_000).code).toBe('EDBX_ERR_URI_TOO_LONG');
  });

  it("is the headers when the last read is a header value's end", () => {
    // Node stops past the value's CR.
    const e = overflow(`${a(8_000)}\r\n\r\n`, 8_001);
    expect(e).toMatchObject({ code: 'EDBX_ERR_HEADERS_TOO_LARGE', status: 431 });
    expect(e.message).toBe('the request headers are over 16384 bytes: send fewer or shorter headers');
  });

  it('is the headers, without naming a short URL, when the request line was read too', () => {
    const e = overflow(`GET /health HTTP/1.1\r\nX-Big: ${a(17_000)}\r\n\r\n`, 22 + 7 + 17_000 + 1);
    expect(e.message).toBe('the request headers are over 16384 bytes: send fewer or shorter headers');
  });

  it("is the headers when the last read is a header name's end, even with a value like a version", () => {
    expect(overflow(`${a(8_000)}: HTTP/1.1\r\n\r\n`, 8_001).code).toBe('EDBX_ERR_HEADERS_TOO_LARGE');
  });

  it('is the headers, naming the URL size, when the request line was read before the header line', () => {
    const line = `GET /x/${a(10_000)} HTTP/1.1\r\n`;
    const e = overflow(`${line}Host: x\r\nX-Big: ${a(10_000)}\r\n\r\n`, line.length + 16 + 10_000);
    expect(e.code).toBe('EDBX_ERR_HEADERS_TOO_LARGE');
    expect(e.message).toContain('(counting its URL of 10003 bytes): send fewer or shorter headers');
  });

  it('is unknown, and the message names both, when the last read is the middle of a part', () => {
    const e = overflow(a(9_000), 9_000);
    expect(e.code).toBe('EDBX_ERR_HEADERS_TOO_LARGE');
    expect(e.message).toContain('URL and headers are over 16384 bytes together');
    expect(e.message).toContain('or a shorter URL');
  });

  it('is unknown without the bytes read', () => {
    expect(headerOverflow({}, LIMIT).code).toBe('EDBX_ERR_HEADERS_TOO_LARGE');
    expect(headerOverflow({ rawPacket: Buffer.from('GET /x'), bytesParsed: 99 }, LIMIT).code).toBe(
      'EDBX_ERR_HEADERS_TOO_LARGE',
    );
  });
});

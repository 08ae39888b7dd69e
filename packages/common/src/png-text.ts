/**
 * Minimal PNG text-chunk writer/reader. sharp cannot write tEXt chunks, and the
 * A1111 `parameters` chunk is how other tools read a render's prompt, so we
 * splice the chunk into the encoded bytes ourselves.
 */
import zlib from 'node:zlib';
import { hasPngSignature } from './png-signature.js';

let crcTable: Uint32Array | undefined;

function crc32Fallback(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

// zlib.crc32 exists from Node 20.15; package.json allows >=20.9, so keep the fallback.
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;

/** CRC-32 (ISO-HDLC, as PNG uses). Exported for tests. */
export function crc32(data: Uint8Array): number {
  return nativeCrc32 ? nativeCrc32(data) >>> 0 : crc32Fallback(data);
}

/** The table implementation, exported so tests can check it against zlib's. */
export { crc32Fallback };

function assertSignature(png: Buffer): void {
  if (!hasPngSignature(png)) throw new Error('not a PNG: bad signature');
}

function isLatin1(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return false;
  return true;
}

/** PNG spec: 1–79 printable Latin-1 chars, no leading/trailing or doubled spaces. */
function assertKeyword(keyword: string): void {
  if (keyword.length < 1 || keyword.length > 79) throw new Error('PNG text keyword must be 1–79 characters');
  for (let i = 0; i < keyword.length; i++) {
    const c = keyword.charCodeAt(i);
    if (!((c >= 32 && c <= 126) || (c >= 161 && c <= 255))) {
      throw new Error(`PNG text keyword has an invalid character at ${i}`);
    }
  }
  if (keyword.startsWith(' ') || keyword.endsWith(' ') || keyword.includes('  ')) {
    throw new Error('PNG text keyword must not have leading, trailing or consecutive spaces');
  }
}

/** A chunk with its length and CRC: `type` and `data` as given. */
export function pngChunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

interface RawChunk {
  type: string;
  start: number; // offset of the length field
  end: number; // offset after the CRC
  data: Buffer;
}

function* chunks(png: Buffer): Generator<RawChunk> {
  let off = 8;
  while (off + 12 <= png.length) {
    const len = png.readUInt32BE(off);
    const end = off + 12 + len;
    if (end > png.length) throw new Error('truncated PNG chunk');
    const type = png.toString('latin1', off + 4, off + 8);
    yield { type, start: off, end, data: png.subarray(off + 8, off + 8 + len) };
    if (type === 'IEND') return;
    off = end;
  }
}

/** The keyword of a tEXt/zTXt/iTXt chunk (text before the first NUL). */
function chunkKeyword(c: RawChunk): string | undefined {
  if (c.type !== 'tEXt' && c.type !== 'zTXt' && c.type !== 'iTXt') return undefined;
  const nul = c.data.indexOf(0);
  return nul < 0 ? undefined : c.data.toString('latin1', 0, nul);
}

/**
 * A text chunk as Pillow's `add_text` writes it (no checks: callers check the
 * keyword): tEXt for Latin-1 text, else an uncompressed iTXt (UTF-8).
 * `itxt` asks for iTXt whatever the text (UTF-8 by definition: JSON).
 */
export function pngTextChunk(keyword: string, text: string, itxt = false): Buffer {
  const kw = Buffer.from(keyword, 'latin1');
  if (!itxt && isLatin1(text)) return pngChunk('tEXt', Buffer.concat([kw, Buffer.from([0]), Buffer.from(text, 'latin1')]));
  // keyword\0, compression flag 0, method 0, empty language tag\0, empty translated keyword\0, UTF-8 text
  return pngChunk('iTXt', Buffer.concat([kw, Buffer.from([0, 0, 0, 0, 0]), Buffer.from(text, 'utf8')]));
}

/**
 * Returns a copy of `png` with a text chunk `keyword` = `text` placed right
 * after IHDR (readers that stop early still see it). Latin-1 text goes in tEXt;
 * anything else in an uncompressed iTXt (UTF-8) so no prompt character is lost.
 * Existing text chunks with the same keyword are dropped, so re-tagging is idempotent.
 * `opts.itxt` writes an iTXt chunk even for Latin-1 text.
 */
export function addPngTextChunk(png: Buffer, keyword: string, text: string, opts: { itxt?: boolean } = {}): Buffer {
  assertSignature(png);
  assertKeyword(keyword);
  if (text.includes('\0')) throw new Error('PNG text must not contain NUL');

  const chunk = pngTextChunk(keyword, text, opts.itxt);

  const parts: Buffer[] = [png.subarray(0, 8)];
  let sawIhdr = false;
  let sawEnd = false;
  for (const c of chunks(png)) {
    if (!sawIhdr) {
      if (c.type !== 'IHDR') throw new Error('not a PNG: first chunk is not IHDR');
      sawIhdr = true;
      parts.push(png.subarray(c.start, c.end), chunk);
      continue;
    }
    if (chunkKeyword(c) === keyword) continue;
    parts.push(png.subarray(c.start, c.end));
    if (c.type === 'IEND') sawEnd = true;
  }
  if (!sawIhdr) throw new Error('not a PNG: no IHDR chunk');
  if (!sawEnd) throw new Error('truncated PNG: no IEND chunk');
  return Buffer.concat(parts);
}

export interface ReadTextOptions {
  /** Largest text one compressed chunk may inflate to (bytes); beyond it reading throws. For untrusted uploads. */
  maxInflatedBytes?: number;
}

/**
 * All text chunks as keyword → text (tEXt, zTXt and iTXt, compressed or not).
 * When a keyword repeats, the first one wins, matching where we write ours.
 */
export function readPngTextChunks(png: Buffer, opts: ReadTextOptions = {}): Record<string, string> {
  const inflate = (data: Buffer) => zlib.inflateSync(data, opts.maxInflatedBytes === undefined ? {} : { maxOutputLength: opts.maxInflatedBytes });
  assertSignature(png);
  const out: Record<string, string> = {};
  // defineProperty so a keyword like "__proto__" is stored as data, not a prototype change.
  const set = (k: string, v: string) =>
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  for (const c of chunks(png)) {
    const keyword = chunkKeyword(c);
    if (keyword === undefined || Object.hasOwn(out, keyword)) continue;
    const rest = c.data.subarray(keyword.length + 1);
    if (c.type === 'tEXt') {
      set(keyword, rest.toString('latin1'));
    } else if (c.type === 'zTXt') {
      if (rest[0] !== 0) continue; // unknown compression method
      set(keyword, inflate(rest.subarray(1)).toString('latin1'));
    } else {
      const flag = rest[0];
      const method = rest[1];
      const langEnd = rest.indexOf(0, 2);
      const transEnd = langEnd < 0 ? -1 : rest.indexOf(0, langEnd + 1);
      if (transEnd < 0) continue; // malformed
      const body = rest.subarray(transEnd + 1);
      if (flag === 0) set(keyword, body.toString('utf8'));
      else if (flag === 1 && method === 0) set(keyword, inflate(body).toString('utf8'));
    }
  }
  return out;
}

/** The image size from IHDR (the first chunk), for metadata that leaves it out. */
export function readPngSize(png: Buffer): { width: number; height: number } {
  assertSignature(png);
  const first = chunks(png).next();
  if (first.done || first.value.type !== 'IHDR' || first.value.data.length < 8) throw new Error('not a PNG: first chunk is not IHDR');
  return { width: first.value.data.readUInt32BE(0), height: first.value.data.readUInt32BE(4) };
}
